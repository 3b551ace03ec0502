"""Progress output for long steps: a rich status line on a terminal, plain lines otherwise.

A new user of ``nnfab verify`` waits through Verilog conversion, a Verilator build and a
simulation; each step is announced as it starts, with the seconds since the command began, so
logs of CI jobs and pipes show where the time went.
"""

import contextlib
import sys
import threading
import time

from rich.console import Console

__all__ = ["progress", "QUIET_SECONDS"]

#: Off a terminal, a step is announced only once it has run this long, so that quick
#: commands (and quick failures) print nothing but their result.
QUIET_SECONDS = 1.0


@contextlib.contextmanager
def progress(console=None):
    """Yield ``say(text)``, which announces a step.

    On a terminal, ``say`` updates one rich status line (a spinner with the step and the
    elapsed seconds); elsewhere it prints ``[  12.3 s] text`` to standard error (the time the
    step started), one line per step that runs for at least :data:`QUIET_SECONDS`, so that
    standard output stays the command's result.
    """
    console = console or Console(highlight=False)
    started = time.perf_counter()
    if console.is_terminal:
        with console.status("starting") as status:
            yield lambda text: status.update(
                f"{text} [dim]({time.perf_counter() - started:.0f} s)[/dim]")
        return
    errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    pending = []

    def announce(text, at):
        errors.print(f"[{at:6.1f} s] {text}", markup=False)

    def say(text):
        for timer in pending:
            timer.cancel()
        pending.clear()
        at = time.perf_counter() - started
        timer = threading.Timer(QUIET_SECONDS, announce, (text, at))
        timer.daemon = True
        pending.append(timer)
        timer.start()

    try:
        yield say
    finally:
        for timer in pending:
            timer.cancel()
