"""GEMDiff against the full-covariance Gaussian as the training set shrinks (breast example).

    GEMDIFF_DATA_DIR=../shared/data python experiments/baselines/sample_size.py \
        [--fractions 0.3] [--seeds 0 1 2] [--gemdiff-steps 20000 6000]

Kidney RNAseqDB classes hold about 40 training samples, the breast example's 125 and 663. This
keeps a fraction of each breast class's training samples (``train_fraction``; the test split
stays whole), trains GEMDiff with the breast recipe of ``run.py`` and the per-class full
Gaussian on them, and scores each model over three sample draws with the metrics of
``GEMDiff.score`` (``sd_ratio``: the median per-gene SD of a class's samples over its training
SD). Writes ``sample_size.csv`` (every model and draw-averaged metric) and ``sample_size.md``
(mean ± SD over seeds); finished (fraction, seed, generator) rows and trained models are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gemdiff import GEMDiff

HERE = Path(__file__).resolve().parent
COLS = ["mmd_ratio", "c2st_auc", "dcr_ratio", "corr_slope", "tstr_acc", "sd_ratio"]
DRAWS = 3
GAUSSIAN = ["model=gaussian", "model.covariance=full"]
GEMDIFF = ["model.denoiser.tokenization=single", "diffusion.scale=3",
           "trainer.val_check_interval=5000", "callbacks.checkpoint.every_n_train_steps=5000"]


def trained(fraction: float, seed: int, overrides: list[str], folder: Path):
    """Train on ``fraction`` of each breast class, or load the model saved in ``folder``."""
    if (folder / "trained.json").exists():
        return GEMDiff.load(folder), json.loads((folder / "trained.json").read_text())
    t0 = time.perf_counter()
    model = GEMDiff.from_config("breast", train_fraction=fraction).fit(
        overrides=["experiment=breast_16", "preset=paper", "callbacks.progress_bar=null",
                   *overrides],
        seed=seed, progress=False)
    info = {"train_seconds": round(time.perf_counter() - t0, 1)}
    model.save(folder, overwrite=True)
    (folder / "trained.json").write_text(json.dumps(info))
    return model, info


def score(model: GEMDiff, seed: int) -> tuple[dict, dict]:
    """Draw-averaged metrics of one trained model (draw seeds seed, seed + 100, seed + 200),
    and the same for the null reference: two random halves of real test (MMD ratio, C2ST),
    real test itself (correlation slope on real train, TSTR = the real-trained SVM)."""
    rows = [model.sample(sampler="ddpm", seed=seed + 100 * d, umap=False).uns["metrics"]
            for d in range(DRAWS)]
    out = {k: float(np.mean([r[k] for r in rows])) for k in COLS}
    null = {"mmd_ratio": float(np.mean([r["mmd_null"] / r["mmd_baseline"] for r in rows])),
            "c2st_auc": float(np.mean([r["c2st_auc_null"] for r in rows])),
            "corr_slope": rows[0]["corr_slope_real"], "tstr_acc": rows[0]["svm_acc_test"]}
    counts = model.reference().obs.query("split == 'train'")["label"].value_counts(sort=False)
    out["n_train"] = null["n_train"] = "/".join(str(n) for n in counts)
    return out, null


def write_table(df: pd.DataFrame, path: Path) -> str:
    df.to_csv(path.with_suffix(".csv"), index=False, float_format="%.6g")
    lines = ["Mean ± SD over seeds; every model in sample_size.csv.", "",
             "| train fraction | training samples per class | method | n | "
             + " | ".join(COLS) + " |", "| ---: | --- | --- | ---: |" + " ---: |" * len(COLS)]
    for (frac, gen), g in df.groupby(["fraction", "method"], sort=True):
        cells = ["" if g[c].isna().all() else
                 f"{g[c].mean():.3g} ± {g[c].std(ddof=1) if len(g) > 1 else 0:.2g}"
                 for c in COLS]
        lines.append(f"| {frac:g} | {g.n_train.iloc[0]} | {gen} | {len(g)} | "
                     + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gemdiff-steps", type=int, nargs="+", default=[20000],
                        help="GEMDiff training steps (20000: the breast recipe of run.py); "
                             "other counts are rows of their own, gemdiff_<steps>")
    parser.add_argument("--work", default="outputs/experiments/baselines_sample_size")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")

    generators = {"gaussian_full": GAUSSIAN}
    for steps in args.gemdiff_steps:
        name = "gemdiff" if steps == 20000 else f"gemdiff_{steps}"
        generators[name] = [*GEMDIFF, f"trainer.max_steps={steps}"]
    path = HERE / "sample_size.csv"
    df = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["fraction", "seed",
                                                                      "method"])
    for frac in args.fractions:
        for seed in args.seeds:
            for gen, overrides in generators.items():
                if ((df.fraction == frac) & (df.seed == seed) & (df.method == gen)).any():
                    continue
                folder = Path(args.work) / f"breast_16_f{frac:g}_seed{seed}_{gen}"
                model, info = trained(frac, seed, overrides, folder)
                metrics, null = score(model, seed)
                rows = [{"fraction": frac, "seed": seed, "method": gen, **info, **metrics}]
                if gen == "gaussian_full":  # the null once per split
                    rows.append({"fraction": frac, "seed": seed, "method": "real (null)",
                                 **null})
                df = pd.concat([df, pd.DataFrame(rows)], ignore_index=True)
                print(write_table(df, path), flush=True)


if __name__ == "__main__":
    main()
