"""The paper's Table 1 on the kidney RNAseqDB data: augmentation quality by feature size and
training fraction.

    GEMDIFF_DATA_DIR=../shared/data python experiments/table1/run.py

For each feature size (random genes of the whole transcriptome, seeded) and each training
fraction (share of each class's training samples kept), trains a model with
``experiment=kidney_16`` and the overrides given (``GEMDiff.fit``), draws DDPM samples matched
to the test split's class counts and scores them as ``gemdiff.sample`` does (``GEMDiff.sample``,
``GEMDiff.score``): MMD (gamma = 1/n_genes) against real
test with its baseline (real train vs real test, the full training split), accuracy on the
synthetic samples of an RBF-SVM trained on real train (baseline: its accuracy on real test) and
train-on-synthetic-test-on-real. Finished cells are kept in ``results.csv`` and skipped on a
re-run. Writes ``results.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from gemdiff import GEMDiff

HERE = Path(__file__).resolve().parent


def cell(n_genes: int, fraction: float, seed: int, steps: int, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    model = GEMDiff.from_config("kidney", n_genes=n_genes, train_fraction=fraction).fit(
        steps, overrides=["experiment=kidney_16", "preset=paper",
                          f"trainer.val_check_interval={steps}",
                          f"callbacks.checkpoint.every_n_train_steps={steps}",
                          "callbacks.progress_bar=null", *extra], seed=seed, progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = model.sample(sampler="ddpm", seed=seed, metrics=False, umap=False)
    sample_s = time.perf_counter() - t0
    split = model.reference().obs["split"]
    return {"n_genes": n_genes, "train_fraction": fraction, "seed": seed, "steps": steps,
            "overrides": " ".join(extra),
            "n_train": int((split == "train").sum()), "n_test": int((split == "test").sum()),
            "train_seconds": round(train_s, 1), "sample_seconds": round(sample_s, 1),
            **model.score(synth, seed=seed)}


def write_tables(rows: list[dict], overrides: str, note: str) -> None:
    """Every row goes to ``results.csv``; the table averages the rows run with ``overrides``."""
    pd.DataFrame(rows).to_csv(HERE / "results.csv", index=False, float_format="%.6g")
    df = pd.DataFrame([r for r in rows if r.get("overrides") == overrides])
    g = df.groupby(["n_genes", "train_fraction"]).mean(numeric_only=True).reset_index()
    full = df[df.train_fraction == 1.0].groupby("n_genes").mean(numeric_only=True)
    lines = ["| genes | baseline MMD | baseline acc. | "
             + " | ".join(f"GEMDiff ({f:.0%}) MMD | ratio | acc. | TSTR"
                          for f in sorted(df.train_fraction.unique(), reverse=True)) + " |"]
    lines.append("| ---: " * (3 + 4 * df.train_fraction.nunique()) + "|")
    for n in sorted(df.n_genes.unique()):
        row = [f"{n}", f"{full.loc[n, 'mmd_baseline']:.2e}", f"{full.loc[n, 'svm_acc_test']:.1%}"]
        for f in sorted(df.train_fraction.unique(), reverse=True):
            r = g[(g.n_genes == n) & (g.train_fraction == f)]
            if r.empty:
                row += ["", "", "", ""]
                continue
            r = r.iloc[0]
            row += [f"{r.mmd:.2e}", f"{r.mmd_ratio:.2f}", f"{r.svm_acc_synthetic:.1%}",
                    f"{r.tstr_acc:.1%}"]
        lines.append("| " + " | ".join(row) + " |")
    (HERE / "results.md").write_text(note + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--extra", nargs="*", default=[
        "model.denoiser.d_model=128", "model.denoiser.depth=4",
        "model.denoiser.tokenization=patch", "model.denoiser.patch_size=16"])
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")

    path = HERE / "results.csv"
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    for seed in args.seeds:
        for n in args.genes:
            for f in args.fractions:
                if any(r["n_genes"] == n and r["train_fraction"] == f and r["seed"] == seed
                       and r["steps"] == args.steps and r.get("overrides") == " ".join(args.extra)
                       for r in rows):
                    continue
                row = cell(n, f, seed, args.steps, args.extra)
                print({k: row[k] for k in ("n_genes", "train_fraction", "seed", "mmd_ratio",
                                           "svm_acc_test", "svm_acc_synthetic", "tstr_acc",
                                           "train_seconds")}, flush=True)
                rows.append(row)
                mine = [r for r in rows if r.get("overrides") == " ".join(args.extra)]
                write_tables(rows, " ".join(args.extra), f"Overrides: `experiment=kidney_16 "
                             f"trainer.max_steps={args.steps} {' '.join(args.extra)}`; "
                             "mean over seeds " + ", ".join(map(str, sorted(
                                 {r['seed'] for r in mine}))) + ".")


if __name__ == "__main__":
    main()
