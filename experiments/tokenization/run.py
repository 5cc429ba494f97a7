"""Which tokenisation of genes works better on real data: one token per gene, patches, or the
reference implementation's single token?

    GEMDIFF_DATA_DIR=../shared/data python experiments/tokenization/run.py --steps 6000

Trains ``experiment=breast_16`` once per tokenisation (same width, depth, steps and seed) with
the Python API, then scores each model on the held-out split: the EMA validation loss (same
timesteps and noise for every model), DDPM samples matched to the test split's class counts (MMD
with gamma = 1/n_genes against real test data, relative to real train vs test; accuracy of an
RBF-SVM trained on real train data on the synthetic samples) and the DDIM encode-decode cycle
error. Writes ``results.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gemdiff import GEMDiff

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "gene": ["model.denoiser.tokenization=gene"],
    "patch4": ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=4"],
    "single": ["model.denoiser.tokenization=single"],
}


def evaluate(model: GEMDiff, seed: int) -> dict:
    """DDPM samples matched to the test split scored against it, and the DDIM encode-decode
    cycle error of the test samples with their own labels (100 steps, to t = 990)."""
    t0 = time.perf_counter()
    synth = model.sample(sampler="ddpm", seed=seed, metrics=False, umap=False)
    sample_s = time.perf_counter() - t0
    m = model.score(synth, seed=seed)
    cycles = [model.perturb(source=c, ddim_steps=100, t_end=990, umap=False).uns["metrics"]
              for c in model.classes]
    cycle = sum(r["cycle_error"] * r["n_samples"] for r in cycles) / sum(
        r["n_samples"] for r in cycles)
    return {k: m[k] for k in ("mmd", "mmd_baseline", "mmd_ratio", "svm_acc_test",
                              "svm_acc_synthetic")} | {"cycle_error_ddim100": float(cycle),
                                                       "sample_seconds": sample_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--extra", nargs="*", default=["model.denoiser.d_model=128",
                                                       "model.denoiser.depth=4"])
    parser.add_argument("--work", default="outputs/experiments/tokenization")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")

    done = pd.read_csv(HERE / "results.csv") if (HERE / "results.csv").exists() else None
    rows = [] if done is None else done.to_dict("records")
    for seed in args.seeds:
        for name in args.variants:
            if any(r["tokenization"] == name and r["seed"] == seed and r["steps"] == args.steps
                   for r in rows):
                continue  # already measured
            t0 = time.perf_counter()
            model = GEMDiff.from_config("breast").fit(
                args.steps, overrides=["experiment=breast_16", "preset=paper",
                                       f"trainer.val_check_interval={args.steps}",
                                       "callbacks.progress_bar=null", *args.extra,
                                       *VARIANTS[name]], seed=seed, progress=False)
            train_s = time.perf_counter() - t0
            model.save(Path(args.work) / f"{name}_seed{seed}_steps{args.steps}", overwrite=True)
            row = {"tokenization": name, "seed": seed, "steps": args.steps,
                   "train_seconds": round(train_s, 1),
                   "steps_per_second": round(args.steps / train_s, 1),
                   "val_loss_ema": model.training["metrics"].get("val/loss"),
                   **evaluate(model, seed)}
            print(row, flush=True)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(HERE / "results.csv", index=False, float_format="%.6g")
    cols = ["val_loss_ema", "mmd_ratio", "svm_acc_synthetic", "cycle_error_ddim100",
            "steps_per_second"]
    seeds = sorted(df["seed"].unique().tolist())
    table = df.groupby(["steps", "tokenization"])[cols].agg(["mean", "std"])
    table.columns = [f"{a} {b}" for a, b in table.columns]
    (HERE / "results.md").write_text(
        f"Extra overrides: `{' '.join(args.extra)}`; seeds {seeds}; mean and SD over seeds.\n"
        f"svm_acc_test (real test) = {df['svm_acc_test'].iloc[0]:.4f}; "
        f"mmd_baseline (train vs test) = {df['mmd_baseline'].iloc[0]:.3g}\n\n"
        + table.to_markdown(floatfmt=".4g") + "\n")
    print(table)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
