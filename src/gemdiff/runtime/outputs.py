"""The output folder of a command: refuse to overwrite earlier results, write result sets."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gemdiff.common.errors import OutputExistsError
from gemdiff.common.files import atomic_path


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


def write_h5ad(adata, path: str | Path) -> Path:
    """An AnnData result, written atomically (``anndata.read_h5ad`` opens it)."""
    with atomic_path(path, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return Path(path)
