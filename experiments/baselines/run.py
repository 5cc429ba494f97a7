"""GEMDiff against the baselines a user would pick instead, on the same data and metrics.

    GEMDIFF_DATA_DIR=../shared/data python experiments/baselines/run.py [--seeds 0 1 2]

For each dataset (the breast example at 16 genes; kidney RNAseqDB at 16, 64 and 256 random
genes) and seed, trains GEMDiff, a per-class Gaussian (full covariance and Ledoit-Wolf
shrinkage) and a WGAN-GP through ``gemdiff.train``; draws synthetic samples matched to the
test split's class counts, post-processes them as ``gemdiff.sample`` does and scores them with
its metrics, averaged over ``--draws`` draws; then carries the test tumours to normal with
GEMDiff's bridge, the class mean shift and the exact optimal-transport map, scored as
``gemdiff.perturb`` does. The "real" rows are the null references: two random halves of real
test data for augmentation, real test normals for perturbation. Finished (dataset, seed) cells
are kept in ``results.csv`` and skipped on a re-run; ``results.md`` has mean and SD over seeds,
and GEMDiff minus each baseline paired by seed (mean, 95% t interval, paired t-test).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from gemdiff.checkpoint import calibrate_checkpoint, load_checkpoint
from gemdiff.cli import compose_config
from gemdiff.data.preprocess import detection_floors, zero_shares
from gemdiff.metrics import augmentation_metrics, fit_svm, perturbation_metrics
from gemdiff.perturb import apply_map, perturb, split_samples
from gemdiff.sample import generate
from gemdiff.train import train

HERE = Path(__file__).resolve().parent
QUIET = ["logger=none", "callbacks.progress_bar=null", "trainer.enable_model_summary=false"]
DATASETS = {
    "breast_16": ["experiment=breast_16"],
    "kidney_16": ["experiment=kidney_16", "data.n_genes=16"],
    "kidney_64": ["experiment=kidney_16", "data.n_genes=64"],
    "kidney_256": ["experiment=kidney_16", "data.n_genes=256"],
}
# Training budgets: GEMDiff on breast as in experiments/README.md (quality), on kidney the Table 1
# network diffusing the data times 3 for 1500 steps (baselines section); WGAN-GP about the wall
# time of GEMDiff's kidney runs before that change (its steps count critic and generator
# updates).
GENERATORS = {
    "gemdiff": {
        "breast": ["model.denoiser.tokenization=single", "diffusion.scale=3",
                   "trainer.max_steps=20000",
                   "trainer.val_check_interval=5000",
                   "callbacks.checkpoint.every_n_train_steps=5000"],
        "kidney": ["model.denoiser.d_model=128", "model.denoiser.depth=4",
                   "model.denoiser.tokenization=patch", "model.denoiser.patch_size=16",
                   "diffusion.scale=3", "trainer.max_steps=1500",
                   "trainer.val_check_interval=1500",
                   "callbacks.checkpoint.every_n_train_steps=1500"],
    },
    "gaussian_full": {"breast": ["model=gaussian", "model.covariance=full"]},
    "gaussian_lw": {"breast": ["model=gaussian", "model.covariance=ledoit_wolf"]},
    "wgan": {
        "breast": ["model=wgan", "trainer.max_steps=6000", "trainer.val_check_interval=3000",
                   "callbacks.checkpoint.every_n_train_steps=3000"],
        "kidney": ["model=wgan", "trainer.max_steps=3000", "trainer.val_check_interval=3000",
                   "callbacks.checkpoint.every_n_train_steps=3000"],
    },
}
AUG_COLS = ["mmd_ratio", "svm_acc_synthetic", "tstr_acc", "c2st_auc", "dcr_ratio", "corr_slope"]
PAIRED_COLS = ["c2st_auc", "mmd_ratio"]  # lower is better for both
PERT_COLS = ["frac_to_target", "mmd_to_target_ratio", "transport_cost"]


def _overrides(generator: str, dataset: str) -> list[str]:
    budgets = GENERATORS[generator]
    kind = dataset.split("_")[0]
    return budgets[kind] if kind in budgets else budgets["breast"]


def _trained(dataset: str, seed: int, gen: str, out: Path):
    """Train, or reuse the model a killed run of this driver finished in ``out`` (same
    overrides: delete the work folder after changing them)."""
    done = out / "trained.json"
    if done.exists():
        info = json.loads(done.read_text())
        model = load_checkpoint(info["checkpoint"])
        if model.kind == "diffusion" and model.diffusion.calibration is None:
            # Saved before training ended with a calibration: calibrate it as training does
            # now (train.yaml's rows and levels, the run's seed).
            calib = compose_config(DATASETS[dataset], out).calibrate
            data = model.data()
            calibrate_checkpoint(info["checkpoint"], data.x_train, data.y_train,
                                 calib.rows, calib.levels, seed=seed, shrink=calib.shrink)
            model = load_checkpoint(info["checkpoint"])
        return model, info["train_seconds"]
    cfg = compose_config([*DATASETS[dataset], *QUIET, f"seed={seed}", "overwrite=true",
                          *_overrides(gen, dataset)], out)
    t0 = time.perf_counter()
    ckpt = train(cfg)["checkpoint"]
    info = {"checkpoint": ckpt, "train_seconds": round(time.perf_counter() - t0, 1)}
    done.write_text(json.dumps(info))
    return load_checkpoint(ckpt), info["train_seconds"]


def _as_trained_now(model):
    """A reused model saved before the current defaults is scored as a new one would be: it gets
    per-gene detection floors and each class's share of unexpressed values from its own
    training split, as training computes them now, and samples without clipping the predicted
    x_0 (``diffusion.clip_x0``, a sampling setting only; the weights do not depend on it)."""
    pre = model.preprocessor
    if not pre.gene_floor or not pre.zero_share:
        data = model.data()
        v = pre.to_log2p1_scale(data.x_train)
        pre.gene_floor = detection_floors(v).tolist()
        # Scaled values round-trip with float32 error: unexpressed cells come back near 0.
        pre.zero_share = zero_shares(np.where(v < 1e-4, 0.0, v), data.y_train).tolist()
    if model.diffusion is not None:
        model.diffusion.clip_x0 = False
    return model


def _scored(model, data, labels: np.ndarray, seed: int, draws: int) -> dict:
    """Augmentation metrics averaged over ``draws`` sample draws (seeds seed, seed + 100, ...),
    each after the post-processing ``gemdiff.sample`` applies; ``sample_seconds`` is the first
    draw's."""
    runs = []
    for d in range(draws):
        s = seed + 100 * d
        t0 = time.perf_counter()
        synth = model.preprocessor.snap_unexpressed(generate(model, labels, "ddpm", seed=s),
                                                    labels)
        secs = time.perf_counter() - t0
        m = augmentation_metrics(data.x_train, data.y_train, data.x_test, data.y_test, synth,
                                 labels, seed=s).to_dict()
        runs.append({"sample_seconds": round(secs, 1), **m})
    out = {k: float(np.mean([r[k] for r in runs])) for k, v in runs[0].items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**out, "sample_seconds": runs[0]["sample_seconds"], "draws": draws}


def run_cell(dataset: str, seed: int, work: Path, draws: int = 1) -> list[dict]:
    rows, bridge_model = [], None
    for gen in GENERATORS:
        model, train_s = _trained(dataset, seed, gen, work / f"{dataset}_seed{seed}_{gen}")
        model = _as_trained_now(model)
        data = model.data()
        labels = np.sort(data.y_test)
        m = _scored(model, data, labels, seed, draws)
        base = {"dataset": dataset, "seed": seed, "task": "augment"}
        rows.append({**base, "method": gen, "train_seconds": round(train_s, 1), **m})
        if gen == "gemdiff":
            bridge_model = model
            rows.append({**base, "method": "real (null)", "draws": draws,
                         "mmd_ratio": m["mmd_null"] / m["mmd_baseline"],
                         "svm_acc_synthetic": m["svm_acc_test"], "tstr_acc": m["svm_acc_test"],
                         "c2st_auc": m["c2st_auc_null"],
                         "corr_slope": m["corr_slope_real"]})

    model, data = bridge_model, bridge_model.data()
    src, tgt = model.classes.index("tumor"), model.classes.index("normal")
    x, y, _, x_o, y_o = split_samples(data, "test")
    x_src, x_t_eval, x_t_ref = x[y == src], x[y == tgt], x_o[y_o == tgt]
    svm = fit_svm(data.x_train, data.y_train)
    base = {"dataset": dataset, "seed": seed, "task": "perturb"}
    for method in ("bridge", "mean_shift", "ot"):
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        res = perturb(model, x_src, src, tgt) if method == "bridge" else \
            apply_map(method, x_src, data, src, tgt)
        m = perturbation_metrics(res.x_source, res.x_moved, res.x_cycle, x_t_eval, x_t_ref,
                                 svm, tgt).to_dict()
        rows.append({**base, "method": method, "sample_seconds": round(time.perf_counter() - t0,
                                                                        1), **m})
    rows.append({**base, "method": "real (null)", "frac_to_target": m["frac_to_target_real"],
                 "mmd_to_target_ratio": 1.0})
    return rows


def _fmt(values: pd.Series, pct: bool) -> str:
    v = values.dropna()
    if v.empty:
        return ""
    mean, sd = v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{mean:.1%} ± {sd:.1%}" if pct else f"{mean:.3g} ± {sd:.2g}"


def paired_differences(df: pd.DataFrame) -> list[str]:
    """Markdown rows of GEMDiff minus each other generator, paired by seed (the same split and
    genes): mean difference, its 95% t interval and the paired t-test's p-value. Negative means
    GEMDiff scores lower, i.e. better."""
    aug = df[(df.task == "augment") & (df.method != "real (null)")]
    lines = []
    for dataset, g in aug.groupby("dataset", sort=False):
        if "gemdiff" not in set(g.method):
            continue
        for method in (m for m in g.method.unique() if m != "gemdiff"):
            cells, n = [], 0
            for col in PAIRED_COLS:
                wide = g.pivot_table(index="seed", columns="method", values=col)
                diff = (wide["gemdiff"] - wide[method]).dropna()
                n = len(diff)
                if n < 2:
                    cells += ["", ""]
                    continue
                mean, sem = diff.mean(), diff.std(ddof=1) / np.sqrt(n)
                half = stats.t.ppf(0.975, n - 1) * sem
                p = f"{stats.ttest_1samp(diff, 0.0).pvalue:.2g}" if sem > 0 else ""
                cells += [f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]", p]
            lines.append(f"| {dataset} | {method} | {n} | " + " | ".join(cells) + " |")
    return lines


def write_tables(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    df.to_csv(HERE / "results.csv", index=False, float_format="%.6g")
    seeds = sorted(df.seed.unique())
    draws = sorted(int(d) for d in df.get("draws", pd.Series([1])).dropna().unique())
    parts = [f"Mean ± SD over seeds {', '.join(map(str, seeds))} (n: how many of them a row "
             f"holds; every run in results.csv). Each generator's augmentation metrics are the "
             f"mean of {' or '.join(map(str, draws))} sample draw(s) per trained model.", ""]
    for task, cols in (("augment", AUG_COLS + ["train_seconds"]), ("perturb", PERT_COLS)):
        sub = df[df.task == task]
        parts += [f"### {task}", "", "| dataset | method | n | " + " | ".join(cols) + " |",
                  "| --- | --- | ---: |" + " ---: |" * len(cols)]
        for (dataset, method), g in sub.groupby(["dataset", "method"], sort=False):
            cells = [_fmt(g[c], c.endswith("acc") or c.startswith("svm") or c.startswith("frac"))
                     if c in g else "" for c in cols]
            parts.append(f"| {dataset} | {method} | {g.seed.nunique()} | " + " | ".join(cells)
                         + " |")
        parts.append("")
    paired = paired_differences(df)
    if paired:
        parts += ["### GEMDiff minus each baseline, paired by seed", "",
                  "Mean difference over the seeds both ran [95% t interval] and the paired "
                  "t-test's p. Both metrics are lower-better: negative favours GEMDiff.", "",
                  "| dataset | against | n | C2ST AUC | p | MMD ratio | p |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |", *paired, ""]
    text = "\n".join(parts)
    (HERE / "results.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=3,
                        help="sample draws per trained model; its metrics are their mean")
    parser.add_argument("--work", default="outputs/experiments/baselines")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")

    path = HERE / "results.csv"
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    for seed in args.seeds:
        for dataset in args.datasets:
            if any(r["dataset"] == dataset and r["seed"] == seed for r in rows):
                continue
            rows += run_cell(dataset, seed, Path(args.work), args.draws)
            print(write_tables(rows), flush=True)


if __name__ == "__main__":
    main()
