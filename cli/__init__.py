"""The ``nnfab`` command line: the generator's commands (:mod:`.commands`), the board flow's
(:mod:`.boards`) and ``nnfab train`` (:mod:`.train`), on top of :mod:`nnfab.gen` and
:mod:`nnfab.boards`; neither of those imports it."""

from .cli import main

__all__ = ["main"]
