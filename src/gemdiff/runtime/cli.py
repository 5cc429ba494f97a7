"""Shared plumbing of the Hydra command-line apps: user errors as one line, the run folder."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gemdiff.common.devices import THREAD_VARIABLES
from gemdiff.common.errors import GemdiffError, OutputWriteError, filesystem_problem


def _remove_hydra_leftovers(output_dir: Path, task_name: str) -> None:
    """Remove what Hydra wrote for a run that was rejected, and the folder if it is then empty.

    Only Hydra's own files go (``.hydra/`` and the job log); anything else already in a
    user-chosen folder is kept.
    """
    from gemdiff.runtime.outputs import release_folder

    release_folder(output_dir, remove=True)
    shutil.rmtree(output_dir / ".hydra", ignore_errors=True)
    with suppress(OSError):
        (output_dir / f"{task_name}.log").unlink(missing_ok=True)
    cwd = Path.cwd().resolve()
    folder = output_dir.resolve()
    while folder != cwd and cwd in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            break
        folder = folder.parent


# Filesystem faults a user can fix: reported in one line like any bad input.
FILESYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                     errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ENOENT}


def _user_error(exc: BaseException | None) -> GemdiffError | None:
    """The :class:`GemdiffError` behind ``exc``: itself, the cause Hydra wrapped while
    building a config's ``_target_`` (a bad ``model.*`` or ``data.*`` value), or a filesystem
    fault (disk full, read-only folder) raised by a library writing a file."""
    while exc is not None:
        if isinstance(exc, GemdiffError):
            return exc
        if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS and exc.filename:
            return OutputWriteError(exc.filename, filesystem_problem(exc))
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


def limit_threads(n: int) -> None:
    """Use at most ``n`` CPU threads: PyTorch, the BLAS and OpenMP pools (threadpoolctl) and
    numba (UMAP), for this process and the ones it starts. Set before the work imports them."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def passive_wait() -> None:
    """Let idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``) unless the
    environment says otherwise; set before torch starts its pool. Spinning threads starve
    another job on the same cores and are starved by it (benchmarks/README.md, threads)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_task(task, cfg) -> None:
    """Body of every Hydra app's ``main``: check the options (a job of a multirun has its own),
    hold the run folder, run ``task(cfg)``; user errors are printed as one line."""
    output_dir, name = hydra_output_dir()
    with user_errors(output_dir, name):
        from hydra.core.hydra_config import HydraConfig

        from gemdiff.runtime.options import check_options
        from gemdiff.runtime.outputs import hold_folder, holds_folder, release_folder

        check_options(HydraConfig.get().job.config_name, cfg)
        passive_wait()
        if cfg.get("threads"):
            limit_threads(int(cfg.threads))
        # A single run's folder is held since the run started (RunGuard); a job of a multirun
        # holds its own folder while it runs.
        own = output_dir is not None and not _worker_rank() and not holds_folder(output_dir)
        if own:
            hold_folder(output_dir, f"gemdiff {name}")
        try:
            task(cfg)
        finally:
            if own:
                release_folder(output_dir)


def rounded(metrics: dict, digits: int = 4) -> dict:
    """Metrics with floats rounded (in nested tables too), for log lines."""
    return {k: round(v, digits) if isinstance(v, float)
            else rounded(v, digits) if isinstance(v, dict) else v for k, v in metrics.items()}


def _worker_rank() -> bool:
    """Whether this process is a non-zero rank of a distributed run (a DDP rank Lightning
    launched, a SLURM task, a torchrun worker): its rank zero holds the folder."""
    return any(os.environ.get(k, "0") not in ("", "0")
               for k in ("LOCAL_RANK", "RANK", "SLURM_PROCID", "NODE_RANK"))


class RunGuard(Callback):
    """Registered by every app's Hydra config: before Hydra writes anything into a run (or
    sweep) folder, check the app's options against its schema and take the folder's lock;
    release it when the run ends. Bad options, a folder in use and a folder that cannot be
    written each stop the run with one line and exit status 2."""

    def _start(self, config: DictConfig, folder_key: str, check: bool) -> None:
        if _worker_rank():
            return
        app = str(OmegaConf.select(config, "hydra.job.config_name") or "")
        name = str(OmegaConf.select(config, "hydra.job.name") or app)
        with user_errors(None, name):
            if check:
                from gemdiff.runtime.options import check_options

                check_options(app, config)
            from gemdiff.runtime.outputs import hold_folder

            hold_folder(OmegaConf.select(config, folder_key), f"gemdiff {name}")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config, "hydra.run.dir", check=True)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        from gemdiff.runtime.outputs import release_folder

        release_folder(OmegaConf.select(config, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config, "hydra.sweep.dir", check=False)  # each job's options are its own

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from gemdiff.runtime.outputs import release_folder

        release_folder(OmegaConf.select(config, "hydra.sweep.dir"))
