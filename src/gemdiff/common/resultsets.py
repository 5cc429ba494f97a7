"""Result sets: a command's result files, published together and trusted only when complete.

A command's result files form a set. ``results.json`` is written first as "incomplete" (with
the files the set will hold) and rewritten last, atomically, with each file's size and sha256,
so a set whose run was killed midway says so. Every reader of results (evaluate, core
aggregation, sweep summaries, the rerun check) goes through :func:`trusted_result`: a file of a
folder with a ``results.json`` is read only when its set is complete and the file is as listed;
files without one (made by other tools) are read as given.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from contextlib import contextmanager, suppress
from typing import Iterator, Sequence

from gemdiff.common.errors import InputError, OutputExistsError
from gemdiff.common.files import sha256, write_json

log = logging.getLogger("gemdiff")
MANIFEST = "results.json"
TEMPORARY = re.compile(r"^\..+\.\d+\.(tmp|h5ad)")  # what atomic_path writes before its rename


def read_manifest(folder: str | Path) -> dict | None:
    """The ``results.json`` of a folder, or None where it has none (or an unreadable one)."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return {"complete": False, "expected": [], "files": {}}
    return data if isinstance(data, dict) else {"complete": False, "expected": [], "files": {}}


def _missing(folder: Path, manifest: dict) -> list[str]:
    """The files a set should hold that are not there (each file is written whole or not at
    all, so a file present is complete)."""
    return [n for n in manifest.get("expected", []) if not (folder / n).is_file()]


def trusted_result(path: str | Path, verify: bool = True) -> Path:
    """``path`` once it may be read as a result: a file of a complete result set (unchanged
    since, where ``verify``) or a file with no result set around it.

    Raises :class:`~gemdiff.common.errors.InputError` naming the file and what is missing.
    """
    path = Path(path)
    manifest = read_manifest(path.parent)
    if manifest is None:
        return path
    if not manifest.get("complete"):
        missing = _missing(path.parent, manifest)
        raise InputError(path, "belongs to an incomplete result set (the run writing it stopped "
                               "before finishing" + (f"; missing {', '.join(missing)}"
                                                     if missing else "") + "); run it again")
    entry = (manifest.get("files") or {}).get(path.name)
    if entry is None:
        return path  # a file the set does not claim (a plot, a log)
    if not path.is_file():
        raise InputError(path, f"is missing from its result set ({path.parent / MANIFEST} "
                               "lists it)")
    if verify and (path.stat().st_size != entry.get("bytes") or sha256(path) != entry.get(
            "sha256")):
        raise InputError(path, f"was changed after its run finished (size or checksum differs "
                               f"from {path.parent / MANIFEST})")
    return path


def complete_set(folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete result set."""
    manifest = read_manifest(folder)
    return bool(manifest and manifest.get("complete"))


class ResultSet:
    """The result files of one command in one folder, published together.

    Create it before the work (it checks the folder, see :meth:`check`), then write every file
    inside ``with results.writing():``. ``products`` are the files (relative paths) the set
    always holds; anything else written in the block (plots) joins the set too.
    """

    def __init__(self, folder: str | Path, products: Sequence[str], overwrite: bool = False,
                 command: str = ""):
        self.folder = Path(folder)
        self.products = list(products)
        self.overwrite = overwrite
        self.command = command
        self.check()

    def check(self) -> None:
        """Refuse a folder holding results of an earlier run unless ``overwrite``; remove the
        files of a set whose run was interrupted (its ``results.json`` says incomplete)."""
        manifest = read_manifest(self.folder)
        if manifest is not None and not manifest.get("complete"):
            removed = self._remove(manifest.get("expected", []) + list(manifest.get("files", {})))
            (self.folder / MANIFEST).unlink(missing_ok=True)
            log.warning("%s held the incomplete results of an interrupted run: removed %s",
                        self.folder, ", ".join(removed) or "nothing")
            return
        check_fresh(self.folder, self.products, self.overwrite)

    def _remove(self, names) -> list[str]:
        removed = []
        for name in dict.fromkeys(names):
            p = self.folder / name
            if p.is_file():
                p.unlink()
                removed.append(name)
        for tmp in self.folder.glob(".*"):  # temporary files of a killed writer
            if TEMPORARY.match(tmp.name) and tmp.is_file():
                tmp.unlink(missing_ok=True)
        return removed

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        if not self.folder.is_dir():
            return {}
        out = {}  # the folder's own files: a set never claims what lies in subfolders
        for p in self.folder.iterdir():
            if p.is_file() and not p.name.startswith(".") and p.suffix != ".log" \
                    and p.name != MANIFEST:
                st = p.stat()
                out[p.name] = (st.st_size, st.st_mtime_ns)
        return out

    @contextmanager
    def writing(self) -> Iterator["ResultSet"]:
        """Write the set's files inside this block: ``results.json`` says "incomplete" until
        the block ends, then lists every file the block wrote with its size and sha256. A
        failure inside takes back what the block wrote."""
        self.folder.mkdir(parents=True, exist_ok=True)
        before = self._snapshot()
        written = lambda: sorted(n for n, sig in self._snapshot().items()  # noqa: E731
                                 if before.get(n) != sig)
        write_json({"complete": False, "command": self.command, "expected": self.products,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}, self.folder / MANIFEST)
        try:
            yield self
        except BaseException:
            with suppress(OSError):  # a full disk: take back what this set wrote
                self._remove(written())
                if not any((self.folder / p).is_file() for p in self.products):
                    (self.folder / MANIFEST).unlink(missing_ok=True)
            raise
        names = sorted(set(written()) | {p for p in self.products if (self.folder / p).is_file()})
        missing = [p for p in self.products if p not in names]
        if missing:
            raise RuntimeError(f"result set of {self.folder} lacks {missing}")
        files = {n: {"bytes": (self.folder / n).stat().st_size, "sha256": sha256(self.folder / n)}
                 for n in names}
        write_json({"complete": True, "command": self.command, "expected": self.products,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "files": files},
                   self.folder / MANIFEST)


def check_fresh(output_dir: str | Path, products: Sequence[str], overwrite: bool = False
                ) -> None:
    """Refuse to write into a folder that already holds any of ``products`` (relative paths;
    a folder counts when it holds a file) unless ``overwrite`` is set.

    Runs go to a new time-stamped folder by default; this guards a folder chosen by hand
    (``hydra.run.dir=...``) or two runs started in the same second.
    """
    out = Path(output_dir)
    found = []
    for name in products:
        p = out / name
        if p.is_file() or (p.is_dir() and any(f.is_file() for f in p.rglob("*"))):
            found.append(name)
    if found and not overwrite:
        raise OutputExistsError(
            out, f"already holds results of an earlier run ({', '.join(found)}); pass "
            "overwrite=true to replace them, or choose another folder with hydra.run.dir=...")
