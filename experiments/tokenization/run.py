"""Which tokenisation of genes works better on real data: one token per gene, patches, or the
reference implementation's single token?

    GEMDIFF_DATA_DIR=../shared/data python experiments/tokenization/run.py --steps 6000

Trains ``experiment=breast_16`` once per tokenisation (same width, depth, steps and seed), then
scores each model on the held-out split: the EMA validation loss (same timesteps and noise for
every model), DDPM samples matched to the test split's class counts (MMD with gamma = 1/n_genes
against real test data, relative to real train vs test; accuracy of an RBF-SVM trained on real
train data on the synthetic samples) and the DDIM encode-decode cycle error. Writes
``results.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.svm import SVC

from gemdiff.checkpoint import load_checkpoint
from gemdiff.cli import compose_config
from gemdiff.data.dataset import prepare_data, read_dataset
from gemdiff.metrics import mmd_rbf
from gemdiff.train import train

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "gene": ["model.denoiser.tokenization=gene"],
    "patch4": ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=4"],
    "single": ["model.denoiser.tokenization=single"],
}


def evaluate(ckpt: Path, seed: int) -> dict:
    model = load_checkpoint(ckpt)
    cfg = model.config["data"]
    train_gem, test_gem = read_dataset(cfg["source"])
    data = prepare_data(train_gem, test_gem, seed=cfg["seed"])
    assert data.genes == model.genes
    gen = torch.Generator().manual_seed(seed)
    y = torch.from_numpy(data.y_test)
    with torch.inference_mode():
        t0 = time.perf_counter()
        synth = model.diffusion.ddpm_sample(model.denoiser, y, (len(y), data.n_genes),
                                            generator=gen).x.numpy()
        sample_s = time.perf_counter() - t0
        x = torch.from_numpy(data.x_test)
        z = model.diffusion.ddim_encode(model.denoiser, x, y, steps=100, t_end=990).x
        back = model.diffusion.ddim_decode(model.denoiser, z, y, steps=100, t_end=990).x
    svm = SVC().fit(data.x_train, data.y_train)
    baseline = mmd_rbf(data.x_train, data.x_test)
    mmd = mmd_rbf(synth, data.x_test)
    return {
        "mmd": mmd,
        "mmd_baseline": baseline,
        "mmd_ratio": mmd / baseline,
        "svm_acc_test": svm.score(data.x_test, data.y_test),
        "svm_acc_synthetic": svm.score(synth, data.y_test),
        "cycle_error_ddim100": float((back - x).abs().mean()),
        "sample_seconds": sample_s,
    }


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
            out = Path(args.work) / f"{name}_seed{seed}_steps{args.steps}"
            cfg = compose_config(["experiment=breast_16", "logger=none", f"seed={seed}",
                                  f"trainer.max_steps={args.steps}",
                                  f"trainer.val_check_interval={args.steps}",
                                  "callbacks.progress_bar=null", *args.extra,
                                  *VARIANTS[name]], out)
            t0 = time.perf_counter()
            summary = train(cfg)
            train_s = time.perf_counter() - t0
            row = {"tokenization": name, "seed": seed, "steps": args.steps,
                   "train_seconds": round(train_s, 1),
                   "steps_per_second": round(args.steps / train_s, 1),
                   "val_loss_ema": summary["metrics"].get("val/loss"),
                   **evaluate(Path(summary["checkpoint"]), seed)}
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
