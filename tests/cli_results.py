"""Checks of ``nnfab`` command output shared by the CLI tests."""

import re

__all__ = ["assert_verify_passed", "without_progress"]

#: Off a terminal, ``nnfab`` announces a step on standard error once it has run for a second
#: (``[   1.0 s] loading model``, :mod:`nnfab.cli.progress`): on a loaded machine any command
#: may print such lines before its result or its error.
_PROGRESS = re.compile(r"^\[ *\d+\.\d s\] .*\n", re.M)


def without_progress(output):
    """``output`` without its progress lines."""
    return _PROGRESS.sub("", output)


def assert_verify_passed(result, n):
    """``result`` (a click ``CliRunner`` result of ``nnfab verify``) tried ``n`` vectors, found
    0 mismatches, and its cocotb test passed."""
    out = result.output
    assert result.exit_code == 0, out
    assert f"{n} vectors tried" in out, out
    assert re.search(r"^0 mismatches$", out, re.M), out
    assert "cocotb: 1 passed, 0 failed of 1" in out, out
