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


class OutputExistsError(InputError):
    """The output folder (``source``) already holds results of an earlier run; nothing there is
    touched."""

    keep_outputs = True


class OutputWriteError(InputError):
    """A file or folder (``source``) cannot be written: a full disk, a read-only folder, a path
    that is a file. Nothing half-written is left behind."""


def filesystem_problem(err: OSError) -> str:
    """What went wrong with the filesystem, in words: the OS's message and its errno name."""
    import errno as errno_names

    text = err.strerror or (str(err).strip().splitlines() or [type(err).__name__])[0]
    name = errno_names.errorcode.get(err.errno or 0, "")
    return f"{text} ({name})" if name else text


class TrainingDiverged(GemdiffError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""

    keep_outputs = True


class TrainingInterrupted(GemdiffError):
    """Training stopped on SIGTERM (e.g. a cluster scheduler) after saving a checkpoint."""

    keep_outputs = True
    exit_code = 143  # 128 + SIGTERM, as a process killed by the signal reports


class ScreenInterrupted(GemdiffError):
    """A screen stopped by Ctrl-C or SIGTERM; the scores computed so far stay in its cache."""

    keep_outputs = True
    exit_code = 130
