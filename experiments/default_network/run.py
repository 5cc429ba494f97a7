"""Which network should `python -m gemdiff.train` train by default: 32 gene tokens, patches of
genes, or one token? Judged on quality per second of the whole default run.

    python experiments/default_network/run.py --seeds 0 1 2

Trains the default config (built-in synthetic data: 32 genes, 6 planted drivers, seed = data
seed; width 64, depth 2, batch 64, 2000 steps, then the calibration) once per tokenisation and
seed through the Python API, as ``python -m gemdiff.train`` would, and times it. Then scores
each model as the default commands do: DDPM samples matched to the test split's class counts
(``gemdiff.sample``: MMD ratio, C2ST, SD ratio, correlation slope, DCR ratio) and the test
tumours carried to normal (``gemdiff.perturb``: share called normal, MMD to normal, cycle error,
and how well the per-gene scores find the planted drivers: ROC AUC of the score, drivers among
the core genes). Writes ``results.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from gemdiff import GEMDiff
from gemdiff.data.synthetic import simulate_gem

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "gene": ["model.denoiser.tokenization=gene"],
    "patch8": ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=8"],
    "patch32": ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=32"],
    "patch16": ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=16"],
    "patch4": ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=4"],
    "single": ["model.denoiser.tokenization=single"],
}
SAMPLE_KEYS = ("mmd_ratio", "c2st_auc", "sd_ratio", "corr_slope", "corr_slope_real",
               "dcr_ratio", "svm_acc_synthetic")
PERTURB_KEYS = ("frac_to_target", "frac_to_target_real", "mmd_to_target_ratio", "cycle_error")


def planted_drivers(model: GEMDiff) -> set[str]:
    source = dict(model.settings["data"]["source"])
    source.pop("format")
    return set(simulate_gem(**source).drivers)


def evaluate(model: GEMDiff, seed: int) -> dict:
    t0 = time.perf_counter()
    synth = model.sample(seed=seed, umap=False)
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    moved = model.perturb(source="tumor", target="normal", seed=seed, umap=False)
    perturb_s = time.perf_counter() - t0
    drivers = planted_drivers(model)
    var = moved.var
    is_driver = var.index.isin(drivers)
    core = set(var.index[var["core"]])
    return ({k: synth.uns["metrics"][k] for k in SAMPLE_KEYS}
            | {k: moved.uns["metrics"][k] for k in PERTURB_KEYS}
            | {"driver_auc": roc_auc_score(is_driver, var["score"]),
               "core_genes": len(core), "core_drivers": len(core & drivers),
               "sample_seconds": round(sample_s, 1), "perturb_seconds": round(perturb_s, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--extra", nargs="*", default=[], help="more training overrides")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")

    out = HERE / "results.csv"
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    extra = " ".join(args.extra)
    for seed in args.seeds:
        for name in args.variants:
            if any(r["tokenization"] == name and r["seed"] == seed and r["steps"] == args.steps
                   and (r["extra"] if isinstance(r["extra"], str) else "") == extra
                   for r in rows):
                continue  # already measured
            t0 = time.perf_counter()
            model = GEMDiff.from_config("synthetic").fit(
                args.steps, overrides=["callbacks.progress_bar=null", "preset=paper",
                                       *VARIANTS[name], *args.extra], seed=seed, progress=False)
            train_s = time.perf_counter() - t0
            row = {"tokenization": name, "seed": seed, "steps": args.steps, "extra": extra,
                   "train_seconds": round(train_s, 1),
                   "val_loss_ema": model.training["metrics"].get("val/loss"),
                   **evaluate(model, seed)}
            print(row, flush=True)
            rows.append(row)
            pd.DataFrame(rows).to_csv(out, index=False, float_format="%.6g")
    df = pd.DataFrame(rows)
    df["extra"] = df["extra"].fillna("")
    cols = ["train_seconds", "val_loss_ema", "mmd_ratio", "c2st_auc", "sd_ratio", "corr_slope",
            "dcr_ratio", "frac_to_target", "mmd_to_target_ratio", "cycle_error", "driver_auc",
            "core_drivers", "core_genes", "sample_seconds"]
    table = df.groupby(["steps", "extra", "tokenization"], sort=False)[cols].agg(["mean", "std"])
    table.columns = [f"{a} {b}" for a, b in table.columns]
    (HERE / "results.md").write_text(
        f"Seeds {sorted(df['seed'].unique().tolist())}; mean and SD over seeds; the real test "
        f"split's correlation slope is corr_slope_real "
        f"({df['corr_slope_real'].mean():.3f} on average).\n\n"
        + table.to_markdown(floatfmt=".4g") + "\n")
    print(table.T)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
