"""Screen gene sets for cluster potential: which K-gene subsets separate the phenotypes?

    python -m gemdiff.screen data=kidney gmt=$GEMDIFF_DATA_DIR/genesets/h.all.v7.0.symbols.gmt

Every set of the GMT library is split after a seeded shuffle into K-gene subsets (K = 16, genes
absent from the matrix or constant in it left out, leftovers dropped). Each subset is scored by
the silhouette by class of a 2-D UMAP of all samples (see :mod:`gemdiff.cluster_potential`),
compared with R random K-gene sets from all genes (t-test, empirical p-values) and flagged
``high`` or ``low`` at mean +- 1 SD. A feature-size study scores random sets from all genes and
from the library's genes at K = 8 to 256 (the paper's Table 2).

Writes into the run folder: ``subsets.tsv``, ``sets.tsv`` (Table 3), ``feature_sizes.tsv``
(Table 2), ``control.tsv``, ``subsets.gmt`` (every subset as a gene set, to train on one with
``data.gmt=<run>/subsets.gmt data.gene_set=<subset>``), ``summary.json`` and the plots
``scores.png``, ``umaps.png`` and ``feature_sizes.png``. Scores are cached in ``cache.jsonl``
as they are computed: a screen stopped early resumes when run again in the same folder
(``hydra.run.dir=<run>``).
"""

from __future__ import annotations

import logging
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy import stats

from gemdiff.cli import config_dir, run_task
from gemdiff.cluster_potential import (
    ScoreCache, ScoreSettings, UmapParams, balanced_rows, compare_to_control, empirical_p,
    flags, score_many, umap_2d,
)
from gemdiff.data.dataset import _restrict_classes, read_dataset
from gemdiff.data.genesets import GeneSubset, split_gene_sets
from gemdiff.data.io import read_gmt
from gemdiff.data.preprocess import check_choice, missing_genes, to_log2p1
from gemdiff.errors import GemdiffError, InputError, ScreenInterrupted
from gemdiff.outputs import check_fresh, write_json, write_table, write_text
from gemdiff.tracking import log_results

log = logging.getLogger("gemdiff.screen")
PRODUCTS = ("subsets.tsv", "sets.tsv", "feature_sizes.tsv", "control.tsv", "subsets.gmt",
            "summary.json")
FlagReference = Literal["subsets", "control"]
SCORE_COLUMNS = ("silhouette", "silhouette_balanced", "silhouette_gene")


@dataclass
class ScreenData:
    """All samples of a matrix on the log2(n + 1) scale, for scoring gene subsets."""

    x: np.ndarray  # (n_samples, n_genes) float32
    genes: list[str]
    y: np.ndarray  # (n_samples,) class index
    classes: list[str]
    varying: np.ndarray  # (n_genes,) bool: the gene takes more than one value
    source: str
    gene_sets: dict[str, list[str]] | None  # the simulator's modules, for synthetic data


def load_screen_data(data_cfg) -> ScreenData:
    """Read the matrix of a data config (train and test files together) for screening.

    Values go to log2(n + 1); with ``scaling=per_gene`` each gene is min-max scaled. The global
    min-max scaling changes no silhouette and no UMAP (one factor on every distance), so it is
    not applied.
    """
    gem, test = read_dataset(data_cfg.source)
    if test is not None:
        absent = [g for g in gem.genes if g not in set(test.genes)]
        if absent:
            raise InputError(test.source, f"lacks {len(absent)} gene(s) of the training "
                                          f"matrix, e.g. {absent[0]!r}")
        test = test.take_genes(gem.genes)
        gem = type(gem)(np.vstack([gem.values, test.values]), gem.samples + test.samples,
                        gem.genes, np.concatenate([gem.labels, test.labels]), gem.source,
                        gem.meta)
    gem = _restrict_classes(gem, data_cfg.get("classes"))
    classes = gem.classes
    if len(classes) < 2:
        raise InputError(gem.source, f"has one class ({classes[0]}); screening needs two")
    if data_cfg.get("nan_policy", "replace") == "drop":
        keep = ~missing_genes(gem.values)
        gem = gem.take_genes([g for g, k in zip(gem.genes, keep, strict=True) if k])
    x = to_log2p1(gem.values, data_cfg.get("input_scale", "log2"), gem.source)
    lo, hi = x.min(axis=0), x.max(axis=0)
    varying = hi > lo
    if data_cfg.get("scaling", "global") == "per_gene":
        x = np.where(varying, 2.0 * (x - lo) / np.where(varying, hi - lo, 1.0) - 1.0, 0.0)
    y = np.searchsorted(classes, gem.labels)
    return ScreenData(x.astype(np.float32), list(gem.genes), y, classes, varying, gem.source,
                      gem.meta.get("gene_sets"))


@dataclass
class Job:
    """One gene set to score: a library subset, a random control or a feature-size draw."""

    kind: str  # subset | control | size
    name: str
    columns: np.ndarray  # column indices into ScreenData.x
    pool: str = ""  # for size draws: all or sets


def _library(cfg: DictConfig, data: ScreenData) -> tuple[dict[str, list[str]], str]:
    if cfg.gmt:
        return read_gmt(cfg.gmt), str(cfg.gmt)
    if data.gene_sets:
        return data.gene_sets, "the simulator's gene modules"
    raise GemdiffError("give the gene-set library: gmt=<file.gmt> (e.g. "
                       "${paths.data_dir}/genesets/h.all.v7.0.symbols.gmt)")


def make_jobs(cfg: DictConfig, data: ScreenData, subsets: list[GeneSubset],
              library: dict[str, list[str]]) -> list[Job]:
    """Library subsets, then R random control sets, then the feature-size draws (seeded)."""
    index = {g: i for i, g in enumerate(data.genes)}
    varying = np.flatnonzero(data.varying)
    jobs = [Job("subset", s.name, np.array([index[g] for g in s.genes])) for s in subsets]
    k = cfg.subset_size
    rng = np.random.default_rng([cfg.seed, 1])
    jobs += [Job("control", f"control_{r + 1}", np.sort(rng.choice(varying, k, replace=False)))
             for r in range(cfg.n_control)]
    in_sets = {g for genes in library.values() for g in genes}
    set_pool = np.array([i for i in varying if data.genes[i] in in_sets])
    rng = np.random.default_rng([cfg.seed, 2])
    for size in cfg.feature_sizes:
        for pool_name, pool in (("all", varying), ("sets", set_pool)):
            if len(pool) < size:
                log.warning("feature size %d skipped for %s genes: only %d genes", size,
                            pool_name, len(pool))
                continue
            jobs += [Job("size", f"{pool_name}_{size}_{r + 1}",
                         np.sort(rng.choice(pool, size, replace=False)), pool_name)
                     for r in range(cfg.feature_size_repeats)]
    return jobs


@contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM (a scheduler's stop) into KeyboardInterrupt while scoring."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _score_all(cfg: DictConfig, data: ScreenData, jobs: list[Job], settings: ScoreSettings,
               balanced: np.ndarray | None, out: Path) -> pd.DataFrame:
    from tqdm.auto import tqdm

    cache = ScoreCache(out / "cache.jsonl")
    bar = tqdm(total=len(jobs), desc="screen", unit="set", disable=not cfg.progress,
               dynamic_ncols=True)
    try:
        with _sigterm_as_interrupt():
            scores = score_many(data.x, data.y, [j.columns for j in jobs], settings, cache,
                                balanced, cfg.n_jobs, progress=bar.update)
    except KeyboardInterrupt:
        raise ScreenInterrupted(
            f"screen stopped after {len(cache.scores)} of {len(jobs)} gene sets; run the same "
            f"command with hydra.run.dir={out} to go on from there") from None
    finally:
        bar.close()
    table = pd.DataFrame({"kind": [j.kind for j in jobs], "name": [j.name for j in jobs],
                          "pool": [j.pool for j in jobs],
                          "size": [len(j.columns) for j in jobs],
                          "genes": [",".join(data.genes[i] for i in j.columns) for j in jobs]})
    for col in SCORE_COLUMNS:
        table[col] = [s.get(col, np.nan) for s in scores]
    return table


def subset_table(table: pd.DataFrame, subsets: list[GeneSubset], control: np.ndarray,
                 st) -> pd.DataFrame:
    """``subsets.tsv``: one row per library subset, best first."""
    df = table[table.kind == "subset"].drop(columns=["kind", "pool", "size"])
    df = df.rename(columns={"name": "subset"})
    df.insert(0, "set", [s.set_name for s in subsets])
    df.insert(2, "index", [s.index for s in subsets])
    s = df["silhouette"].to_numpy()
    df["p_control"] = empirical_p(s, control)
    finite = np.isfinite(df["p_control"].to_numpy())
    df["q_control"] = np.nan
    if finite.any():
        df.loc[finite, "q_control"] = stats.false_discovery_control(df["p_control"][finite])
    df["flag"] = flags(s, st)
    return df.sort_values("silhouette", ascending=False, kind="stable").reset_index(drop=True)


def set_table(subsets: pd.DataFrame) -> pd.DataFrame:
    """``sets.tsv`` (the paper's Table 3): per gene set, its subsets' mean and SD and how many
    were flagged, best mean first."""
    g = subsets.groupby("set", sort=False)
    df = pd.DataFrame({
        "n_subsets": g.size(),
        "mean": g["silhouette"].mean(),
        "sd": g["silhouette"].std(ddof=1),
        "n_high": g["flag"].apply(lambda f: int((f == "high").sum())),
        "n_low": g["flag"].apply(lambda f: int((f == "low").sum())),
    }).reset_index()
    df["high_fraction"] = [f"{h}/{n}" for h, n in zip(df.n_high, df.n_subsets, strict=True)]
    return df.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def feature_size_table(table: pd.DataFrame) -> pd.DataFrame:
    """``feature_sizes.tsv`` (the paper's Table 2): random sets from all genes and from the
    library's genes per size, with Student's t-test between the two."""
    sizes = table[table.kind == "size"]
    rows = []
    for size, g in sizes.groupby("size"):
        a = g.loc[g.pool == "all", "silhouette"].dropna().to_numpy()
        b = g.loc[g.pool == "sets", "silhouette"].dropna().to_numpy()
        p = stats.ttest_ind(a, b).pvalue if len(a) > 1 and len(b) > 1 else np.nan
        rows.append({"size": int(size), "n": max(len(a), len(b)),
                     "all_mean": a.mean() if len(a) else np.nan,
                     "all_sd": a.std(ddof=1) if len(a) > 1 else np.nan,
                     "sets_mean": b.mean() if len(b) else np.nan,
                     "sets_sd": b.std(ddof=1) if len(b) > 1 else np.nan, "p_ttest": p})
    return pd.DataFrame(rows, columns=["size", "n", "all_mean", "all_sd", "sets_mean", "sets_sd",
                                       "p_ttest"])


def _agreement(table: pd.DataFrame) -> dict:
    """Spearman correlations of the UMAP silhouette with the gene-space and balanced ones."""
    s = table[table.kind != "size"]
    out = {}
    for other in ("silhouette_gene", "silhouette_balanced"):
        ok = s[["silhouette", other]].dropna()
        if len(ok) > 2 and ok[other].nunique() > 1 and ok["silhouette"].nunique() > 1:
            out[f"spearman_{other}"] = float(stats.spearmanr(ok["silhouette"], ok[other])[0])
    return out


def _plots(cfg, data: ScreenData, subsets: pd.DataFrame, control: np.ndarray, st,
           sizes: pd.DataFrame, settings: ScoreSettings, out: Path) -> None:
    from gemdiff import plots

    plots.screen_histogram(subsets["silhouette"].to_numpy(), control, st.high_threshold,
                           st.low_threshold, out / "scores.png")
    ranked = subsets.dropna(subset=["silhouette"])
    k = min(cfg.plot_top, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    if k:
        index = {g: i for i, g in enumerate(data.genes)}
        picks = pd.concat([ranked.head(k), ranked.tail(k)]) if len(ranked) > 1 else ranked
        panels = []
        for _, row in picks.iterrows():
            cols = [index[g] for g in row["genes"].split(",")]
            x = data.x[:, cols]
            if settings.score == "umap":
                emb = umap_2d(x, settings.umap)
            else:  # a gene-space screen shows the first two principal components
                from sklearn.decomposition import PCA

                emb = PCA(n_components=2, random_state=0).fit_transform(x)
            panels.append((f"{row['subset']}\nsilhouette {row['silhouette']:.3f}", emb))
        plots.screen_umaps(panels, [data.classes[i] for i in data.y], out / "umaps.png")
    if len(sizes):
        plots.feature_sizes(sizes, out / "feature_sizes.png")


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    check_fresh(out, PRODUCTS, cfg.get("overwrite", False))
    if cfg.subset_size < 2:
        raise GemdiffError(f"subset_size must be at least 2, got {cfg.subset_size}")
    if cfg.n_control < 0 or cfg.feature_size_repeats < 0:
        raise GemdiffError("n_control and feature_size_repeats cannot be negative")
    check_choice("flag_reference", cfg.flag_reference, FlagReference)
    if cfg.flag_reference == "control" and cfg.n_control < 2:
        raise GemdiffError("flag_reference=control needs n_control of at least 2")
    settings = ScoreSettings(UmapParams(**cfg.umap, seed=cfg.seed), cfg.score, cfg.balanced)
    started = time.perf_counter()

    data = load_screen_data(cfg.data)
    library, library_name = _library(cfg, data)
    available = [g for g, v in zip(data.genes, data.varying, strict=True) if v]
    subsets = split_gene_sets(library, available, cfg.subset_size, cfg.seed, cfg.exclusive)
    if not subsets:
        raise InputError(cfg.gmt or None, f"no gene set has {cfg.subset_size} genes that vary "
                                          f"in the matrix ({data.source})")
    jobs = make_jobs(cfg, data, subsets, library)
    balanced = None if cfg.balanced == "none" else balanced_rows(data.y, cfg.seed)
    log.info("%d samples (%s), %d genes; %d subsets of %d from %d sets of %s, %d controls, "
             "%d feature-size draws", len(data.y), ", ".join(
                 f"{c} {int((data.y == i).sum())}" for i, c in enumerate(data.classes)),
             len(data.genes), len(subsets), cfg.subset_size, len({s.set_name for s in subsets}),
             library_name, cfg.n_control, sum(j.kind == "size" for j in jobs))
    read_s = time.perf_counter() - started

    table = _score_all(cfg, data, jobs, settings, balanced, out)
    score_s = time.perf_counter() - started - read_s

    control = table.loc[table.kind == "control", "silhouette"].to_numpy()
    st = compare_to_control(table.loc[table.kind == "subset", "silhouette"].to_numpy(),
                            control, cfg.flag_sd, cfg.flag_reference)
    subsets_df = subset_table(table, subsets, control, st)
    sets_df = set_table(subsets_df)
    sizes_df = feature_size_table(table)
    control_df = table[table.kind == "control"].drop(columns=["kind", "pool"]).rename(
        columns={"name": "control"})

    write_table(subsets_df, out / "subsets.tsv")
    write_table(sets_df, out / "sets.tsv")
    write_table(sizes_df, out / "feature_sizes.tsv")
    write_table(control_df, out / "control.tsv")
    write_text("".join(f"{s.name}\t{s.set_name} subset {s.index} of {cfg.subset_size} genes\t"
                       + "\t".join(s.genes) + "\n" for s in subsets), out / "subsets.gmt")
    if cfg.plots:
        _plots(cfg, data, subsets_df, control, st, sizes_df, settings, out)
    summary = {
        "source": data.source, "library": library_name, "n_samples": int(len(data.y)),
        "classes": {c: int((data.y == i).sum()) for i, c in enumerate(data.classes)},
        "n_genes": len(data.genes), "n_genes_varying": len(available),
        "subset_size": cfg.subset_size, "n_sets": len({s.set_name for s in subsets}),
        "n_subsets": len(subsets), "n_control": cfg.n_control,
        **asdict(st),
        "n_high": int((subsets_df.flag == "high").sum()),
        "n_low": int((subsets_df.flag == "low").sum()),
        "n_q05": int((subsets_df.q_control < 0.05).sum()),
        **_agreement(table),
        "settings": asdict(settings),
        "seconds": {"read": round(read_s, 1), "score": round(score_s, 1),
                    "total": round(time.perf_counter() - started, 1)},
    }
    write_json(summary, out / "summary.json")
    log_results(cfg, out, summary, [out / n for n in ("scores.png", "umaps.png",
                                                       "feature_sizes.png")],
                {"sets": sets_df, "subsets": subsets_df})
    log.info("subsets %.3f +- %.3f, control %.3f +- %.3f (Student's t-test p = %.2g); %d high, "
             "%d low; %.0f s", st.subset_mean, st.subset_sd, st.control_mean, st.control_sd,
             st.p_student, summary["n_high"], summary["n_low"], summary["seconds"]["total"])
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="screen")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.screen import main as entry

    entry()
