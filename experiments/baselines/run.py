"""GEMDiff against the baselines a user would pick instead, on the same data and metrics.

    GEMDIFF_DATA_DIR=../shared/data python experiments/baselines/run.py [--seeds 0 1 2]

For each dataset (the breast example at 16 genes; kidney RNAseqDB at 16, 64 and 256 random
genes) and seed, trains GEMDiff, a per-class Gaussian (full covariance and Ledoit-Wolf
shrinkage) and a WGAN-GP with the Python API (``GEMDiff.fit``, what ``gemdiff.train`` runs);
draws synthetic samples matched to the test split's class counts (``GEMDiff.sample``, what
``gemdiff.sample`` runs) and scores them with its metrics (``GEMDiff.score``), averaged over
``--draws`` draws; then carries the test tumours to normal with GEMDiff's bridge, the class mean
shift and the exact optimal-transport map (``GEMDiff.perturb``). The "real" rows are the null
references: two random halves of real test data for augmentation, real test normals for
perturbation. Finished (dataset, seed) cells are kept in ``results.csv`` and skipped on a re-
run; ``results.md`` has mean and SD over seeds, and GEMDiff minus each baseline paired by seed
(mean, 95% t interval, paired t-test).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from gemdiff import GEMDiff

HERE = Path(__file__).resolve().parent
QUIET = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false",
         "preset=paper"]  # the package default when this was recorded
# Dataset: (data config, its options, the experiment config of its models).
DATASETS = {
    "breast_16": ("breast", {}, "experiment=breast_16"),
    "kidney_16": ("kidney", {"n_genes": 16}, "experiment=kidney_16"),
    "kidney_64": ("kidney", {"n_genes": 64}, "experiment=kidney_16"),
    "kidney_256": ("kidney", {"n_genes": 256}, "experiment=kidney_16"),
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


def trained(dataset: str, seed: int, gen: str, folder: Path) -> tuple[GEMDiff, float]:
    """Train, or load the model a killed run of this driver saved in ``folder`` (same
    overrides: delete the work folder after changing them)."""
    done = folder / "trained.json"
    if done.exists():
        return GEMDiff.load(folder), json.loads(done.read_text())["train_seconds"]
    data, options, experiment = DATASETS[dataset]
    t0 = time.perf_counter()
    model = GEMDiff.from_config(data, **options).fit(
        overrides=[experiment, *QUIET, *_overrides(gen, dataset)], seed=seed, progress=False)
    train_s = round(time.perf_counter() - t0, 1)
    model.save(folder, overwrite=True)
    done.write_text(json.dumps({"train_seconds": train_s}))
    return model, train_s


def scored(model: GEMDiff, seed: int, draws: int) -> dict:
    """Augmentation metrics averaged over ``draws`` draws matched to the test split's class
    counts (seeds seed, seed + 100, ...); ``sample_seconds`` is the first draw's sampling."""
    runs = []
    for d in range(draws):
        s = seed + 100 * d
        t0 = time.perf_counter()
        synth = model.sample(sampler="ddpm", seed=s, metrics=False, umap=False)
        secs = time.perf_counter() - t0
        runs.append({"sample_seconds": round(secs, 1), **model.score(synth, seed=s)})
    out = {k: float(np.mean([r[k] for r in runs])) for k, v in runs[0].items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**out, "sample_seconds": runs[0]["sample_seconds"], "draws": draws}


def run_cell(dataset: str, seed: int, work: Path, draws: int = 1) -> list[dict]:
    rows, bridge_model = [], None
    base = {"dataset": dataset, "seed": seed, "task": "augment"}
    for gen in GENERATORS:
        model, train_s = trained(dataset, seed, gen, work / f"{dataset}_seed{seed}_{gen}")
        m = scored(model, seed, draws)
        rows.append({**base, "method": gen, "train_seconds": train_s, **m})
        if gen == "gemdiff":
            bridge_model = model
            rows.append({**base, "method": "real (null)", "draws": draws,
                         "mmd_ratio": m["mmd_null"] / m["mmd_baseline"],
                         "svm_acc_synthetic": m["svm_acc_test"], "tstr_acc": m["svm_acc_test"],
                         "c2st_auc": m["c2st_auc_null"],
                         "corr_slope": m["corr_slope_real"]})
    base = {"dataset": dataset, "seed": seed, "task": "perturb"}
    for method in ("bridge", "mean_shift", "ot"):
        t0 = time.perf_counter()
        moved = bridge_model.perturb(source="tumor", target="normal", map=method, seed=seed,
                                     umap=False)
        m = dict(moved.uns["metrics"])
        rows.append({**base, "method": method,
                     "sample_seconds": round(time.perf_counter() - t0, 1),
                     **{k: v for k, v in m.items() if isinstance(v, (int, float))}})
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
