"""Shared plumbing of the Hydra command-line apps: user errors as one line, the run folder."""

from __future__ import annotations

import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from gemdiff.common.errors import GemdiffError


def _remove_hydra_leftovers(output_dir: Path, task_name: str) -> None:
    """Remove what Hydra wrote for a run that was rejected, and the folder if it is then empty.

    Only Hydra's own files go (``.hydra/`` and the job log); anything else already in a
    user-chosen folder is kept.
    """
    shutil.rmtree(output_dir / ".hydra", ignore_errors=True)
    (output_dir / f"{task_name}.log").unlink(missing_ok=True)
    cwd = Path.cwd().resolve()
    folder = output_dir.resolve()
    while folder != cwd and cwd in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            break
        folder = folder.parent


def _user_error(exc: BaseException | None) -> GemdiffError | None:
    """The :class:`GemdiffError` behind ``exc``: itself, or the cause Hydra wrapped while
    building a config's ``_target_`` (a bad ``model.*`` or ``data.*`` value)."""
    while exc is not None:
        if isinstance(exc, GemdiffError):
            return exc
        exc = exc.__cause__
    return None


@contextmanager
def user_errors(output_dir: str | Path | None = None, task_name: str = ""):
    """Print a :class:`GemdiffError` as one line and exit non-zero (2 unless the error says
    otherwise), leaving no half-made output folder.

    Errors that mark a run folder as worth keeping (``keep_outputs``: an interrupted or diverged
    training with its last good checkpoint, a folder that already held results) leave it as is.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - anything but a user error is raised again
        err = _user_error(exc)
        if err is None:
            raise
        if output_dir is not None and not getattr(err, "keep_outputs", False):
            _remove_hydra_leftovers(Path(output_dir), task_name)
        print(f"gemdiff {task_name}: error: {err}".replace("  ", " "), file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))


def hydra_output_dir() -> tuple[Path | None, str]:
    """The running Hydra job's output folder and task name, or (None, "") outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, ""
    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), hc.job.name


def run_task(task, cfg) -> None:
    """Body of every Hydra app's ``main``: run ``task(cfg)``, user errors printed as one line."""
    output_dir, name = hydra_output_dir()
    with user_errors(output_dir, name):
        task(cfg)


def rounded(metrics: dict, digits: int = 4) -> dict:
    """Metrics with floats rounded, for log lines."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in metrics.items()}
