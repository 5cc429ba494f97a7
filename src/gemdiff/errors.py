"""Project exceptions.

A :class:`GemdiffError` is a user error: bad input, an unknown class, a missing file. Command-line
entry points print its message on one line and exit non-zero without a traceback. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class GemdiffError(Exception):
    """A problem the user can fix; printed without a traceback."""


class InputError(GemdiffError):
    """An input file (or an input given in the config) cannot be used.

    Parameters
    ----------
    source
        The file (or config key) at fault.
    problem
        One sentence saying what is wrong.
    """

    def __init__(self, source: str | Path | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)
