"""Time and peak memory of reading, training, sampling and perturbing single-cell-sized data.

    python benchmarks/scale.py [--sizes 10000x2000 100000x2000 1000000x2000 100000x19000]
                               [--genes 2000] [--steps 100] [--cells 100]

For each size (cells x genes in the file) it writes an ``.h5ad`` of synthetic sparse counts
(5% non-zero, uneven library sizes, two states with 10% of genes shifted 2-fold) and, in a
fresh process, times what a user runs on it with the defaults (``input_scale=auto``, which
finds counts; ``--genes`` most variable genes; the file read backed):

- read: opening the file and preparing the data (library sizes, variable genes, split, the
  chosen genes of every cell loaded sparse),
- fit: ``--steps`` training steps, timed by Lightning's ``Timer`` (the training loop only),
  as seconds per 1,000 steps and steps per second; and the whole fit (data preparation
  included; the calibration and the samples figure, which cost the same at every size, left
  out),
- sample: ``--cells`` cells (half per class, 1,000 DDPM steps) with their metrics,
- perturb: ``--cells`` normal cells of the file carried to tumour, with their gene scores.

Peak memory is the process's resident peak after each stage (it only grows).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_counts(path: Path, cells: int, genes: int, seed: int = 0, density: float = 0.05,
                 block: int = 100_000) -> None:
    """Sparse counts of two states, written with anndata."""
    import anndata
    import pandas as pd
    from scipy import sparse

    rng = np.random.default_rng(seed)
    shifted = rng.random(genes) < 0.1
    state = np.where(rng.random(cells) < 0.5, "tumor", "normal")
    parts = []
    for start in range(0, cells, block):
        n = min(block, cells - start)
        per_row = rng.binomial(genes, density, n)
        indptr = np.concatenate([[0], np.cumsum(per_row)])
        cols = rng.integers(0, genes, indptr[-1]).astype(np.int32)
        depth = np.repeat(rng.lognormal(0.0, 0.5, n), per_row)
        rate = 2.0 * depth * np.where(shifted[cols] & np.repeat(state[start:start + n] ==
                                                                 "tumor", per_row), 2.0, 1.0)
        data = (1 + rng.poisson(rate)).astype(np.float32)
        part = sparse.csr_matrix((data, cols, indptr), shape=(n, genes))
        part.sum_duplicates()
        parts.append(part)
    x = sparse.vstack(parts, format="csr")
    obs = pd.DataFrame({"state": state}, index=[f"cell{i}" for i in range(cells)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(genes)])
    anndata.AnnData(X=x, obs=obs, var=var).write_h5ad(path)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def measure(path: Path, genes: int, steps: int, cells: int) -> dict:
    """Run in a fresh process: the stages on one file, with their seconds and peak memory."""
    import anndata
    import hydra

    import gemdiff

    out: dict = {}
    source = [f"data.source.path={path}", "data.source.label_key=state",
              "data.source.backed=true"]
    options = {} if genes is None else {"n_genes": genes}
    model = gemdiff.GEMDiff.from_config("h5ad", **options)
    t0 = time.perf_counter()
    data = hydra.utils.instantiate(model.config(overrides=source).data).prepare()
    out["read_s"], out["read_gb"] = time.perf_counter() - t0, peak_gb()
    out["train_cells"] = sum(data.summary()["train"].values())
    del data
    t0 = time.perf_counter()
    model.fit(steps, overrides=[*source, "calibrate.rows=0", "sample_plot=false",
                                "+callbacks.timer._target_=lightning.pytorch.callbacks.Timer"],
              progress=False)
    out["fit_s"] = time.perf_counter() - t0
    timer = next(v for k, v in model._checkpoint["callbacks"].items() if "Timer" in k)
    out["steps_per_s"] = steps / timer["time_elapsed"]["train"]
    out["fit_s_per_1000_steps"] = 1000 / out["steps_per_s"]
    out["fit_gb"] = peak_gb()
    t0 = time.perf_counter()
    model.sample(n_per_class=cells // 2)
    out["sample_s"], out["sample_gb"] = time.perf_counter() - t0, peak_gb()
    backed = anndata.read_h5ad(path, backed="r")
    normal = np.flatnonzero(backed.obs["state"].to_numpy() == "normal")[:cells]
    cells = backed[normal].to_memory()
    t0 = time.perf_counter()
    model.perturb(cells, "normal", "tumor", label_key="state")
    out["perturb_s"], out["perturb_gb"] = time.perf_counter() - t0, peak_gb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+",
                        default=["10000x2000", "100000x2000", "1000000x2000", "100000x19000"])
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: measure this file
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one), args.genes, args.steps, args.cells)))
        return
    print(f"| cells | genes in file | genes | read s (GB) | s / 1000 steps | steps/s | "
          f"fit of {args.steps} steps s (GB) | sample {args.cells} s (GB) | "
          f"perturb {args.cells} s (GB) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="gemdiff-scale-") as tmp:
        for size in args.sizes:
            cells, genes = (int(v) for v in size.split("x"))
            path = Path(tmp) / f"{size}.h5ad"
            write_counts(path, cells, genes)
            proc = subprocess.run([sys.executable, __file__, "--one", str(path), "--genes",
                                   str(args.genes), "--steps", str(args.steps), "--cells",
                                   str(args.cells)],
                                  capture_output=True, text=True)
            path.unlink()
            if proc.returncode:
                print(f"| {cells:,} | {genes:,} | failed: {proc.stderr.strip()[-300:]} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {cells:,} | {genes:,} | {min(genes, args.genes):,} | "
                  f"{r['read_s']:.1f} ({r['read_gb']:.2f}) | {r['fit_s_per_1000_steps']:.0f} | "
                  f"{r['steps_per_s']:.2f} | {r['fit_s']:.0f} ({r['fit_gb']:.2f}) | "
                  f"{r['sample_s']:.1f} ({r['sample_gb']:.2f}) | "
                  f"{r['perturb_s']:.1f} ({r['perturb_gb']:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
