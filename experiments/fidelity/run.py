"""Fidelity benchmark: does a generator learn the joint distribution, and does a map carry
held-out samples to the target class? One command, every dataset, generator and map.

    GEMDIFF_DATA_DIR=../shared/data python experiments/fidelity/run.py            # full grid
    GEMDIFF_DATA_DIR=../shared/data python experiments/fidelity/run.py --quick    # minutes

Datasets: the built-in simulator with mean, spread and rewired drivers at 64 and 256 genes,
the breast example (16 genes) and kidney RNAseqDB at 16, 64, 256 and 1024 random genes.
Generators, each trained or fitted on the training split through the Python API
(``GEMDiff.fit``) with the package defaults and nothing tuned per dataset: ``gemdiff`` (the
default ``python -m gemdiff.train``), ``paper`` (``preset=paper``: global min-max scaling,
eps prediction), the per-class full-covariance Gaussian and the per-class Gaussian copula.
Maps, fitted on the training split and applied to the held-out source samples (tumour ->
normal): the default model's bridge, the paper preset's bridge, the entropic OT map, the mean
shift, and the exact OT map solved on the held-out samples themselves (a ceiling).

Every metric is taken in one space that no model chooses: log2(n + 1) expression min-max
scaled to [-1, 1] by the real training split (the paper's space). Synthetic samples match the
test split's class counts. Augmentation: C2ST AUC (gradient-boosted trees, real test against
synthetic), MMD ratio (RBF, gamma = 1 / genes; synthetic vs test over train vs test), energy
distance (pertpy's: squared Euclidean, 2 E|x-y|^2 - E|x-x'|^2 - E|y-y'|^2), within-class
correlation-matrix error over the real floor (RMS of R_synthetic - R_test over RMS of R_train -
R_test), per-gene Wasserstein-1 over the real floor, the Pearson r of the synthetic and real
test class log2 fold changes, SD ratio and correlation slope. Maps: MMD and energy distance to
the real test targets (MMD over train targets vs test targets), the share an RBF-SVM trained on
real training data calls target, and on simulated data the AUPRC of the per-gene score (mean
|moved - original|, log2 units) for each kind of planted driver.

Finished (dataset, seed) cells are kept in ``results.csv`` (``quick.csv`` for ``--quick``) and
skipped on a re-run; the tables (``results.md``) hold mean ± SD over seeds and the default
minus each other generator (and the bridge minus the entropic OT map) paired by seed: mean, 95%
t interval and the paired t-test's p.
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
from gemdiff.data import simulate_gem
from gemdiff.data.preprocess import to_log2p1
from gemdiff.evaluation.metrics import c2st_auc, corr_slope, fit_svm, mmd_rbf, sd_ratio

HERE = Path(__file__).resolve().parent
QUIET = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false", "sample_plot=false"]
SIM = {"n_samples": 600, "n_drivers": 6, "n_spread": 3, "n_rewired": 3}
# name: (data config, data options, overrides of the data source)
DATASETS = {
    "sim_64": ("synthetic", {}, {**SIM, "n_genes": 64, "n_modules": 4}),
    "sim_256": ("synthetic", {}, {**SIM, "n_genes": 256, "n_modules": 8}),
    "breast_16": ("breast", {}, {}),
    "kidney_16": ("kidney", {"n_genes": 16}, {}),
    "kidney_64": ("kidney", {"n_genes": 64}, {}),
    "kidney_256": ("kidney", {"n_genes": 256}, {}),
    "kidney_1024": ("kidney", {"n_genes": 1024}, {}),
}
GENERATORS = {
    "gemdiff": [],
    "paper": ["preset=paper"],
    "gaussian": ["model=gaussian", "model.covariance=full"],
    "copula": ["model=copula"],
}
DEFAULT = "gemdiff"  # the generator the paired tables compare with the others
QUICK = {"datasets": ["sim_64", "kidney_64"], "seeds": [0]}
SOURCE, TARGET = "tumor", "normal"
# Maps applied by the default model (in its scaled units); every diffusion model's bridge too,
# named "bridge" for the default and "bridge <generator>" for the others.
MAPS = {"entropic_ot": "entropic_ot", "mean_shift": "mean_shift",
        "ot (in-sample ceiling)": "ot"}
AUG = ["c2st_auc", "mmd_ratio", "edist", "corr_err_ratio", "w1_ratio", "lfc_r", "sd_ratio",
       "corr_slope", "train_seconds"]
PERT = ["mmd_to_target_ratio", "edist_to_target", "frac_to_target", "auprc_mean",
        "auprc_spread", "auprc_rewired", "seconds"]


class Space:
    """The benchmark's metric space: log2(n + 1), min-max scaled by the real training split."""

    def __init__(self, model: GEMDiff):
        ref = model.reference()
        self.input_scale = model.settings["data"]["input_scale"]
        self.classes = list(model.classes)
        v = self.log2p1(ref)
        train = (ref.obs["split"] == "train").to_numpy()
        self.lo, self.hi = float(v[train].min()), float(v[train].max())
        y = self.labels(ref)
        self.x_train, self.y_train = self.scale(v[train]), y[train]
        self.x_test, self.y_test = self.scale(v[~train]), y[~train]

    def log2p1(self, adata) -> np.ndarray:
        return to_log2p1(np.asarray(adata.X, dtype=np.float64), self.input_scale)

    def scale(self, v: np.ndarray) -> np.ndarray:
        return 2.0 * (v - self.lo) / (self.hi - self.lo) - 1.0

    def labels(self, adata, key: str = "label") -> np.ndarray:
        return np.array([self.classes.index(c) for c in adata.obs[key]])

    def of(self, adata) -> np.ndarray:
        return self.scale(self.log2p1(adata))


def edistance(x: np.ndarray, y: np.ndarray) -> float:
    """pertpy's energy distance: squared Euclidean, 2 E|x-y|^2 - E|x-x'|^2 - E|y-y'|^2."""
    from scipy.spatial.distance import cdist

    return float(2 * cdist(x, y, "sqeuclidean").mean() - cdist(x, x, "sqeuclidean").mean()
                 - cdist(y, y, "sqeuclidean").mean())


def _corr_rms(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of the two samples' correlation matrices (pairs with a constant gene
    left out)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ra, rb = np.corrcoef(a.T), np.corrcoef(b.T)
    iu = np.triu_indices(a.shape[1], 1)
    d = (ra - rb)[iu]
    return float(np.sqrt(np.nanmean(d ** 2)))


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([stats.wasserstein_distance(a[:, g], b[:, g])
                          for g in range(a.shape[1])]))


def _lfc(x: np.ndarray, y: np.ndarray, src: int, tgt: int) -> np.ndarray:
    return x[y == tgt].mean(axis=0) - x[y == src].mean(axis=0)


def augmentation(s: Space, xs: np.ndarray, ys: np.ndarray, seed: int) -> dict:
    """Synthetic samples ``xs`` (classes ``ys``) against the real test split."""
    tr, yt, te, ye = s.x_train, s.y_train, s.x_test, s.y_test
    per_class = [(tr[yt == c], te[ye == c], xs[ys == c]) for c in np.unique(ye)]
    src, tgt = s.classes.index(SOURCE), s.classes.index(TARGET)
    with np.errstate(invalid="ignore"):
        lfc_r = float(np.corrcoef(_lfc(xs, ys, src, tgt), _lfc(te, ye, src, tgt))[0, 1])
    return {
        "c2st_auc": c2st_auc(te, xs, seed=seed, dims=None),
        "mmd_ratio": mmd_rbf(xs, te) / mmd_rbf(tr, te),
        "edist": edistance(xs, te), "edist_real": edistance(tr, te),
        "corr_err_ratio": float(np.mean([_corr_rms(c, b) / _corr_rms(a, b)
                                         for a, b, c in per_class])),
        "w1_ratio": float(np.mean([_w1(c, b) / _w1(a, b) for a, b, c in per_class])),
        "lfc_r": lfc_r,
        "sd_ratio": sd_ratio(xs, ys, te, ye),
        "corr_slope": corr_slope(xs, ys, te, ye),
        "corr_slope_real": corr_slope(tr, yt, te, ye),
    }


def _auprc(scores: pd.Series, positives: list[str], others: list[str]) -> float:
    """AUPRC of ``scores`` for ``positives`` against the genes in neither list (drivers of
    another kind are left out)."""
    from sklearn.metrics import average_precision_score

    if not positives:
        return float("nan")
    scores = scores[~scores.index.isin(others)]
    return float(average_precision_score(scores.index.isin(positives), scores.to_numpy()))


def perturbation(s: Space, moved, svm, truth) -> dict:
    """Held-out source samples carried to the target against the real test targets."""
    tgt = s.classes.index(TARGET)
    xm = s.of(moved)
    target_test, target_train = s.x_test[s.y_test == tgt], s.x_train[s.y_train == tgt]
    out = {"mmd_to_target_ratio": mmd_rbf(xm, target_test) / mmd_rbf(target_train, target_test),
           "edist_to_target": edistance(xm, target_test),
           "edist_real": edistance(target_train, target_test),
           "frac_to_target": float(np.mean(svm.predict(xm) == tgt))}
    if truth is not None:
        score = moved.var["score_log2"]
        for kind in ("mean", "spread", "rewired"):
            mine = truth.drivers_of(kind)
            out[f"auprc_{kind}"] = _auprc(score, mine, [g for g in truth.drivers
                                                         if g not in mine])
    return out


def split_sampler(overrides: list[str]) -> tuple[list[str], str | None]:
    """A generator's training overrides, and the sampler its ``sampler=...`` item names (None:
    ``GEMDiff.sample``'s default)."""
    sampler = [o.partition("=")[2] for o in overrides if o.startswith("sampler=")]
    return [o for o in overrides if not o.startswith("sampler=")], (sampler or [None])[-1]


def trained(dataset: str, seed: int, gen: str, overrides: list[str], work: Path
            ) -> tuple[GEMDiff, float]:
    """Train, or load what a killed run of this driver saved for the same cell."""
    folder = work / f"{dataset}_seed{seed}_{gen}"
    done = folder / "trained.json"
    if done.exists():
        return GEMDiff.load(folder), json.loads(done.read_text())["train_seconds"]
    data, options, source = DATASETS[dataset]
    extra = [f"data.source.{k}={v}" for k, v in source.items()]
    t0 = time.perf_counter()
    model = GEMDiff.from_config(data, **options).fit(
        overrides=[*QUIET, *extra, *overrides], seed=seed, progress=False)
    seconds = round(time.perf_counter() - t0, 1)
    model.save(folder, overwrite=True)
    done.write_text(json.dumps({"train_seconds": seconds}))
    return model, seconds


def run_cell(dataset: str, seed: int, generators: dict[str, list[str]], work: Path) -> list[dict]:
    models, rows = {}, []
    base = {"dataset": dataset, "seed": seed}
    for gen, spec in generators.items():
        overrides, sampler = split_sampler(spec)
        model, seconds = trained(dataset, seed, gen, overrides, work)
        models[gen] = model
        space = Space(model)
        how = {"sampler": sampler} if sampler else {}
        synth = model.sample(seed=seed, metrics=False, umap=False, **how)
        m = augmentation(space, space.of(synth), space.labels(synth), seed)
        rows.append({**base, "task": "augment", "method": gen, "train_seconds": seconds, **m})
        print(f"  {dataset} seed {seed} {gen}: C2ST {m['c2st_auc']:.3f}, MMD ratio "
              f"{m['mmd_ratio']:.2f}, corr. error {m['corr_err_ratio']:.2f}x", flush=True)
    mapper = DEFAULT if DEFAULT in models else next(iter(models))  # applies the baseline maps
    space = Space(models[mapper])
    svm = fit_svm(space.x_train, space.y_train)
    data, _, source = DATASETS[dataset]
    truth = simulate_gem(**source, seed=seed) if data == "synthetic" else None
    bridges = {"bridge" if g == DEFAULT else f"bridge {g}": (g, "bridge")
               for g, m in models.items() if m.kind == "diffusion"}
    for name, (gen, how) in (bridges | {k: (mapper, v) for k, v in MAPS.items()}).items():
        t0 = time.perf_counter()
        moved = models[gen].perturb(source=SOURCE, target=TARGET, map=how, seed=seed, beside=None,
                                    metrics=False, umap=False)
        secs = round(time.perf_counter() - t0, 1)
        rows.append({**base, "task": "perturb", "method": name, "seconds": secs,
                     **perturbation(space, moved, svm, truth)})
    return rows


def _fmt(values: pd.Series) -> str:
    v = values.dropna()
    if v.empty:
        return ""
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.3g} ± {sd:.2g}"


def paired(df: pd.DataFrame, task: str, ours: str, cols: list[str]) -> list[str]:
    """Rows of ``ours`` minus each other method, paired by seed: mean difference [95% t
    interval] and the paired t-test's p, per column."""
    lines = []
    sub = df[df.task == task]
    for dataset, g in sub.groupby("dataset", sort=False):
        if ours not in set(g.method):
            continue
        for method in (m for m in g.method.unique() if m != ours):
            cells, n = [], 0
            for col in cols:
                wide = g.pivot_table(index="seed", columns="method", values=col)
                if method not in wide:
                    cells += ["", ""]
                    continue
                diff = (wide[ours] - wide[method]).dropna()
                n = max(n, len(diff))
                if len(diff) < 2:
                    cells += [f"{diff.mean():+.3f}" if len(diff) else "", ""]
                    continue
                mean, sem = diff.mean(), diff.std(ddof=1) / np.sqrt(len(diff))
                half = stats.t.ppf(0.975, len(diff) - 1) * sem
                p = f"{stats.ttest_1samp(diff, 0.0).pvalue:.2g}" if sem > 0 else ""
                cells += [f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]", p]
            lines.append(f"| {dataset} | {method} | {n} | " + " | ".join(cells) + " |")
    return lines


def write_tables(df: pd.DataFrame, csv: Path) -> str:
    df.to_csv(csv, index=False, float_format="%.6g")
    seeds = ", ".join(map(str, sorted(df.seed.unique())))
    parts = [f"Mean ± SD over seeds {seeds} (n: seeds in the row). Written by "
             f"`experiments/fidelity/run.py`; every run in `{csv.name}`.", ""]
    for task, cols in (("augment", AUG), ("perturb", PERT)):
        sub = df[df.task == task]
        cols = [c for c in cols if c in sub and sub[c].notna().any()]
        parts += [f"### {task}", "", "| dataset | method | n | " + " | ".join(cols) + " |",
                  "| --- | --- | ---: |" + " ---: |" * len(cols)]
        for (dataset, method), g in sub.groupby(["dataset", "method"], sort=False):
            parts.append(f"| {dataset} | {method} | {g.seed.nunique()} | "
                         + " | ".join(_fmt(g[c]) for c in cols) + " |")
        real = sub.groupby("dataset", sort=False)["edist_real"].mean()
        pair = "train vs test" if task == "augment" else "train vs test targets"
        parts += ["", f"Real floor of the energy distance ({pair}): "
                  + ", ".join(f"{d} {v:.3g}" for d, v in real.items()), ""]
    aug = paired(df, "augment", DEFAULT, ["c2st_auc", "mmd_ratio", "corr_err_ratio"])
    if aug:
        parts += [f"### {DEFAULT} minus each other generator, paired by seed", "",
                  "Mean difference [95% t interval], paired t-test p. Lower is better for all "
                  "three: negative favours the default.", "",
                  "| dataset | against | n | C2ST AUC | p | MMD ratio | p | corr. error | p |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *aug, ""]
    pert = paired(df, "perturb", "bridge", ["mmd_to_target_ratio", "edist_to_target"])
    if pert:
        parts += ["### The bridge minus each other map, paired by seed", "",
                  "Lower is better for both: negative favours the bridge.", "",
                  "| dataset | against | n | MMD to target | p | energy distance | p |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |", *pert, ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{', '.join(QUICK['datasets'])}, seed 0: minutes, to iterate")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--generators", nargs="+", choices=list(GENERATORS),
                        default=list(GENERATORS))
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDES",
                        help="one more generator: a name and space-separated gemdiff.train "
                             "overrides, e.g. 'v=diffusion.prediction=v trainer.max_steps=4000'")
    parser.add_argument("--work", default="outputs/experiments/fidelity")
    parser.add_argument("--out", help="the CSV to keep results in (default: results.csv, or "
                                      "quick.csv with --quick)")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    datasets = args.datasets or (QUICK["datasets"] if args.quick else list(DATASETS))
    seeds = args.seeds or (QUICK["seeds"] if args.quick else [0, 1, 2])
    generators = {g: GENERATORS[g] for g in args.generators}
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        generators[name] = overrides.split()
    csv = HERE / (args.out or ("quick.csv" if args.quick else "results.csv"))
    df = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["dataset", "seed"])
    t0 = time.perf_counter()
    for seed in seeds:
        for dataset in datasets:
            if ((df.dataset == dataset) & (df.seed == seed)).any():
                continue
            rows = run_cell(dataset, seed, generators, Path(args.work))
            df = pd.concat([df, pd.DataFrame(rows)], ignore_index=True)
            text = write_tables(df, csv)
            (csv.with_suffix(".md")).write_text(text)
    print(write_tables(df, csv))
    print(f"\n{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
