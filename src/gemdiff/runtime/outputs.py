"""The output folder of a command: one run at a time (:func:`hold_folder`), h5ad results.

A run holds an exclusive lock on its folder (``.gemdiff.lock``, via filelock) from before Hydra
writes anything until it ends; a second run into the same folder stops at once, naming the
folder and the run holding it. The lock dies with its process, so a folder left by ``kill -9``
is free again. What a run writes there is published as a result set
(:mod:`gemdiff.common.resultsets`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from gemdiff.common.errors import InputError, OutputWriteError, filesystem_problem
from gemdiff.common.files import atomic_path, write_json

LOCK = ".gemdiff.lock"
OWNER = ".gemdiff.owner"  # who holds the lock: pid, host, command, since
_held: dict[Path, object] = {}  # folder -> its FileLock, held by this process


class FolderInUse(InputError):
    """Another run holds the output folder; nothing was written."""

    keep_outputs = True


def _key(folder: str | Path) -> Path:
    return Path(os.path.abspath(folder))


def prepare_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) or say in one line why it cannot be used."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputWriteError(folder, "is a file, not a folder; choose another output folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputWriteError(err.filename or folder,
                               f"cannot create the output folder: {filesystem_problem(err)}"
                               ) from None
    return folder


def hold_folder(folder: str | Path, command: str = "") -> None:
    """Take the exclusive lock on a run folder for this process (creating the folder).

    Raises :class:`FolderInUse` when another process holds it and
    :class:`~gemdiff.common.errors.OutputWriteError` when the folder cannot be written.
    Taking a lock this process already holds does nothing.
    """
    from filelock import FileLock, Timeout

    key = _key(folder)
    if key in _held:
        return
    prepare_folder(key)
    lock = FileLock(str(key / LOCK), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise FolderInUse(key, f"is in use by another gemdiff run ({_owner(key)}); wait for "
                               "it to finish or choose another folder") from None
    except OSError as err:
        raise OutputWriteError(key, f"cannot be written: {filesystem_problem(err)}") from None
    _held[key] = lock
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "command": command or Path(sys.argv[0]).name,
             "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        write_json(owner, key / OWNER)
    except OutputWriteError:
        release_folder(key, remove=True)
        raise


def _owner(folder: Path) -> str:
    try:
        o = json.loads((folder / OWNER).read_text())
        return f"{o['command']}, pid {o['pid']} on {o['host']}, since {o['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its details unknown"


def release_folder(folder: str | Path, remove: bool = True) -> None:
    """Release this process's lock on ``folder`` (if it holds one), removing the lock files."""
    key = _key(folder)
    lock = _held.pop(key, None)
    if lock is None:
        return
    if remove:
        for name in (OWNER, LOCK):
            try:
                (key / name).unlink(missing_ok=True)
            except OSError:
                pass
    lock.release()


def holds_folder(folder: str | Path) -> bool:
    return _key(folder) in _held


def write_h5ad(adata, path: str | Path) -> Path:
    """An AnnData result, written atomically (``anndata.read_h5ad`` opens it).

    The HDF5 file is built in memory and its bytes written like every other file: HDF5 left to
    write to a full disk itself fails in ways that crash the interpreter later, when its
    half-written objects are freed.
    """
    import io

    import h5py

    try:
        from anndata.io import write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import write_elem

    adata.strings_to_categoricals()  # what AnnData.write_h5ad does first
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        write_elem(f, "/", adata)
    with atomic_path(path, ".h5ad") as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)
