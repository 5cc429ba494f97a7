"""Speed of `gemdiff.screen` at the paper's scale, and what each speed-up costs in agreement.

    python benchmarks/screen_speed.py --agreement     # UMAP variants against the plain score
    python benchmarks/screen_speed.py --full          # the whole screen, 1181 x 19,738
    GEMDIFF_DATA_DIR=../shared/data python benchmarks/screen_speed.py --agreement --data kidney

Agreement: for a sample of gene subsets (library subsets and random sets), the silhouette of
the plain seeded UMAP (UMAP's own neighbour search, 500 epochs: what the reference approach
runs) against each faster variant, as Spearman's rho and mean |difference| over the sample;
the same UMAP with another seed gives the noise floor. Full: `python -m gemdiff.screen` on
the simulator at 1181 samples x 19,738 genes with a library of about 423 subsets of 16 and 1000
random controls, timed end to end in a fresh process (numba compilation included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from gemdiff.evaluation.embedding import UmapParams
from gemdiff.tools.cluster_potential import score_subset
from gemdiff.data.genesets import split_gene_sets
from gemdiff.data.synthetic import simulate_gem

N_SAMPLES, N_GENES, N_MODULES = 1181, 19738, 140


def simulated_library(n_subsets: int = 423, seed: int = 0):
    """The benchmark matrix and the first modules holding about ``n_subsets`` subsets of 16."""
    sim = simulate_gem(n_samples=N_SAMPLES, n_genes=N_GENES, n_drivers=60, n_modules=N_MODULES,
                       drivers_in_module=True, frac_second=0.56, seed=seed)
    library, total = {}, 0
    for name, genes in sim.gene_sets.items():
        library[name] = genes
        total += len(genes) // 16
        if total >= n_subsets:
            break
    return sim, library


def write_gmt(library: dict[str, list[str]], path: Path) -> None:
    path.write_text("".join(f"{k}\tmodule\t" + "\t".join(v) + "\n" for k, v in library.items()))


def agreement(args) -> None:
    if args.data == "kidney":
        from gemdiff.common.config import compose_config
        from gemdiff.data.io import read_gmt
        from gemdiff.tools.screening import load_screen_data

        cfg = compose_config(["data=kidney"], "/tmp", "screen")
        data = load_screen_data(cfg.data)
        x, y, genes = data.x, data.y, data.genes
        library = read_gmt(Path(cfg.paths.data_dir) / "genesets/h.all.v7.0.symbols.gmt")
        available = [g for g, v in zip(genes, data.varying, strict=True) if v]
    else:
        sim, library = simulated_library()
        from gemdiff.data.preprocess import to_log2p1

        x = to_log2p1(sim.gem.values, "log2").astype(np.float32)
        y = np.searchsorted(sim.gem.classes, sim.gem.labels)
        genes, available = sim.gem.genes, sim.gem.genes
    index = {g: i for i, g in enumerate(genes)}
    rng = np.random.default_rng(0)
    subsets = split_gene_sets(library, available, 16, 0, True)
    pick = rng.choice(len(subsets), min(args.n // 2, len(subsets)), replace=False)
    columns = [[index[g] for g in subsets[i].genes] for i in pick]
    varying = [index[g] for g in available]
    columns += [rng.choice(varying, 16, replace=False) for _ in range(args.n - len(columns))]
    print(f"{args.data}: {x.shape[0]} samples, {len(columns)} sets of 16 genes "
          f"({len(pick)} library subsets, {len(columns) - len(pick)} random)")

    variants = {
        "plain (umap knn, 500 epochs)": (UmapParams(n_epochs=None, knn="umap"), "umap"),
        "plain, another seed": (UmapParams(n_epochs=None, knn="umap", seed=1), "umap"),
        "exact knn, 500 epochs": (UmapParams(n_epochs=None), "umap"),
        "exact knn, 200 epochs": (UmapParams(n_epochs=200), "umap"),
        "exact knn, 100 epochs": (UmapParams(n_epochs=100), "umap"),
        "exact knn, 50 epochs": (UmapParams(n_epochs=50), "umap"),
        "gene space (no UMAP)": (UmapParams(), "gene"),
    }
    score_subset(x[:, columns[0]], y, None, UmapParams(n_epochs=10), "umap")  # numba warm-up
    scores, times = {}, {}
    for name, (params, score) in variants.items():
        t = time.perf_counter()
        scores[name] = np.array([score_subset(np.ascontiguousarray(x[:, c]), y, None, params,
                                              score)["silhouette"] for c in columns])
        times[name] = (time.perf_counter() - t) / len(columns)
    ref = scores["plain (umap knn, 500 epochs)"]
    print(f"{'variant':32s} {'s/set':>7s} {'rho':>6s} {'mean|d|':>8s} {'max|d|':>7s}")
    for name, s in scores.items():
        ok = np.isfinite(s) & np.isfinite(ref)
        rho = stats.spearmanr(ref[ok], s[ok])[0]
        d = np.abs(ref[ok] - s[ok])
        print(f"{name:32s} {times[name]:7.3f} {rho:6.3f} {d.mean():8.3f} {d.max():7.3f}")


def full(args) -> None:
    sim, library = simulated_library()
    with tempfile.TemporaryDirectory() as tmp:
        gmt = Path(tmp) / "library.gmt"
        write_gmt(library, gmt)
        cmd = [sys.executable, "-m", "gemdiff.screen", "data=synthetic_sets",
               f"data.source.n_samples={N_SAMPLES}", f"data.source.n_genes={N_GENES}",
               f"data.source.n_modules={N_MODULES}", "data.source.n_drivers=60",
               "data.source.frac_second=0.56", f"gmt={gmt}", f"hydra.run.dir={tmp}/run",
               f"n_control={args.n_control}", f"umap.n_epochs={args.epochs}",
               f"feature_size_repeats={args.size_repeats}", "progress=false",
               *args.overrides]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
        wall = time.perf_counter() - t
        import json

        summary = json.loads((Path(tmp) / "run/summary.json").read_text())
    print(f"{summary['n_samples']} samples x {summary['n_genes']} genes, {summary['n_subsets']} "
          f"subsets + {summary['n_control']} controls + feature sizes x {args.size_repeats}: "
          f"{wall:.0f} s wall ({summary['seconds']})")
    print(f"subsets {summary['subset_mean']:.3f} +- {summary['subset_sd']:.3f}, control "
          f"{summary['control_mean']:.3f} +- {summary['control_sd']:.3f}, high {summary['n_high']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agreement", action="store_true")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--data", choices=["synthetic", "kidney"], default="synthetic")
    ap.add_argument("--n", type=int, default=80, help="sets in the agreement sample")
    ap.add_argument("--n_control", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--size_repeats", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="more gemdiff.screen overrides for --full")
    args = ap.parse_args()
    if args.agreement:
        agreement(args)
    if args.full:
        full(args)


if __name__ == "__main__":
    main()
