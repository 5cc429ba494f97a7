"""Writing files atomically: a temporary file in the same folder, renamed over the target.

A reader never sees half a file, and a failed write (a full disk, a kill) leaves the previous
file whole and no temporary file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from gemdiff.common.errors import OutputWriteError, filesystem_problem


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``; renamed to ``path`` when the block ends without error,
    removed when it raises.

    A filesystem fault while writing (a full disk, a read-only folder, a parent that is a file)
    raises :class:`~gemdiff.common.errors.OutputWriteError` naming ``path`` and the OS error.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise OutputWriteError(path, f"cannot be written: {filesystem_problem(err)}") from err
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(data: Any, path: str | Path) -> Path:
    return write_text(json.dumps(data, indent=2, default=float) + "\n", path)


def write_table(df, path: str | Path) -> Path:
    """A pandas table, tab-separated, without its index."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g", lineterminator="\n")
    return Path(path)


def write_matrix(values: np.ndarray, samples: Sequence[str], genes: Sequence[str],
                 path: str | Path) -> Path:
    """GEMDiff format: tab-separated samples x genes, empty cell for a missing value."""
    import pandas as pd

    df = pd.DataFrame(values, index=list(samples), columns=list(genes))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", na_rep="", float_format="%.6g", lineterminator="\n")
    return Path(path)


def write_labels(samples: Sequence[str], labels: Sequence[str], path: str | Path) -> Path:
    """``sample<TAB>label`` per line, no header."""
    return write_text("".join(f"{s}\t{lab}\n" for s, lab in zip(samples, labels, strict=True)),
                      path)
