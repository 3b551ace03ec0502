"""Checks of ``nnfab verify`` output shared by the CLI tests."""

import re

__all__ = ["assert_verify_passed"]


def assert_verify_passed(result, n):
    """``result`` (a click ``CliRunner`` result of ``nnfab verify``) tried ``n`` vectors, found
    0 mismatches, and its cocotb test passed."""
    out = result.output
    assert result.exit_code == 0, out
    assert f"{n} vectors tried" in out, out
    assert re.search(r"^0 mismatches$", out, re.M), out
    assert "cocotb: 1 passed, 0 failed of 1" in out, out
