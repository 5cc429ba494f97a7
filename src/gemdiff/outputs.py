"""Writing result files atomically: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gemdiff.errors import OutputExistsError


def check_fresh(output_dir: str | Path, products: Sequence[str], overwrite: bool = False) -> None:
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


def _replace(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


def write_matrix(values: np.ndarray, samples: Sequence[str], genes: Sequence[str],
                 path: str | Path) -> Path:
    """GEMDiff format: tab-separated samples x genes, empty cell for a missing value."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    df = pd.DataFrame(values, index=list(samples), columns=list(genes))
    df.to_csv(tmp, sep="\t", na_rep="", float_format="%.6g", lineterminator="\n")
    return _replace(tmp, path)


def write_labels(samples: Sequence[str], labels: Sequence[str], path: str | Path) -> Path:
    """``sample<TAB>label`` per line, no header."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{s}\t{lab}\n" for s, lab in zip(samples, labels, strict=True)))
    return _replace(tmp, path)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, sep="\t", index=False, float_format="%.6g", lineterminator="\n")
    return _replace(tmp, path)


def write_json(data: Any, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return _replace(tmp, path)


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    return _replace(tmp, path)
