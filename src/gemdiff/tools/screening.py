"""Screening gene sets for cluster potential: which K-gene subsets separate the phenotypes?

Every set of a library is split after a seeded shuffle into K-gene subsets (genes absent from
the matrix or constant in it left out, leftovers dropped). Each subset is scored by the
silhouette by class of a 2-D UMAP of all samples (:mod:`gemdiff.tools.cluster_potential`),
compared with random K-gene sets from all genes (t-test, empirical p-values) and flagged
``high`` or ``low`` at mean +- ``flag_sd`` SD. A feature-size study scores random sets from all
genes and from the library's genes at several sizes (the paper's Table 2).
"""

from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from gemdiff.common.choices import check_choice
from gemdiff.common.errors import GemdiffError, InputError, ScreenInterrupted
from gemdiff.common.progress import interactive
from gemdiff.data.dataset import read_dataset, restrict_classes
from gemdiff.data.genesets import GeneSubset, split_gene_sets
from gemdiff.data.io import GEM, read_gmt
from gemdiff.data.preprocess import missing_genes, resolve_input_scale, to_log2p1
from gemdiff.evaluation.embedding import UmapParams
from gemdiff.tools.cluster_potential import (
    ScoreCache, ScoreSettings, ScreenStats, balanced_rows, compare_to_control, empirical_p,
    flags, score_many,
)

log = logging.getLogger("gemdiff.screen")
FlagReference = Literal["subsets", "control"]
SCORE_COLUMNS = ("silhouette", "silhouette_balanced", "silhouette_gene")


@dataclass(frozen=True)
class ScreenOptions:
    """The settings of a screen (the keys of ``conf/screen.yaml``)."""

    subset_size: int = 16
    exclusive: bool = True
    n_control: int = 1000
    feature_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    feature_size_repeats: int = 50
    flag_sd: float = 1.0
    flag_reference: str = "subsets"
    settings: ScoreSettings = field(default_factory=lambda: ScoreSettings(UmapParams()))
    n_jobs: int = -1
    progress: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.subset_size < 2:
            raise GemdiffError(f"subset_size must be at least 2, got {self.subset_size}")
        if self.n_control < 0 or self.feature_size_repeats < 0:
            raise GemdiffError("n_control and feature_size_repeats cannot be negative")
        check_choice("flag_reference", self.flag_reference, FlagReference)
        if self.flag_reference == "control" and self.n_control < 2:
            raise GemdiffError("flag_reference=control needs n_control of at least 2")


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
    gem = gem.take_genes(gem.genes)  # dense: every gene is scored
    if test is not None:
        absent = [g for g in gem.genes if g not in set(test.genes)]
        if absent:
            raise InputError(test.source, f"lacks {len(absent)} gene(s) of the training "
                                          f"matrix, e.g. {absent[0]!r}")
        test = test.take_genes(gem.genes)
        gem = GEM(np.vstack([gem.values, test.values]), gem.samples + test.samples, gem.genes,
                  np.concatenate([gem.labels, test.labels]), gem.source, gem.meta)
    gem = restrict_classes(gem, data_cfg.get("classes"))
    classes = gem.classes
    if len(classes) < 2:
        raise InputError(gem.source, f"has one class ({classes[0]}); screening needs two")
    if data_cfg.get("nan_policy", "replace") == "drop":
        keep = ~missing_genes(gem.values)
        gem = gem.take_genes([g for g, k in zip(gem.genes, keep, strict=True) if k])
    scale, _, warnings = resolve_input_scale(gem.values, data_cfg.get("input_scale", "auto"),
                                             gem.source)
    for warning in warnings:
        log.warning(warning)
    x = to_log2p1(gem.values, scale, gem.source)
    lo, hi = x.min(axis=0), x.max(axis=0)
    varying = hi > lo
    if data_cfg.get("scaling", "global") == "per_gene":
        x = np.where(varying, 2.0 * (x - lo) / np.where(varying, hi - lo, 1.0) - 1.0, 0.0)
    y = np.searchsorted(classes, gem.labels)
    return ScreenData(x.astype(np.float32), list(gem.genes), y, classes, varying, gem.source,
                      gem.meta.get("gene_sets"))


def gene_library(gmt: str | None, data: ScreenData) -> tuple[dict[str, list[str]], str]:
    """The gene-set library and its name: a GMT file, or the simulator's modules."""
    if gmt:
        return read_gmt(gmt), str(gmt)
    if data.gene_sets:
        return data.gene_sets, "the simulator's gene modules"
    raise GemdiffError("give the gene-set library: gmt=<file.gmt> (e.g. "
                       "${paths.data_dir}/genesets/h.all.v7.0.symbols.gmt)")


def library_subsets(library: dict[str, list[str]], data: ScreenData, options: ScreenOptions,
                    gmt: str | None = None) -> list[GeneSubset]:
    """The library's subsets of genes that vary; an error (naming the ``gmt`` file it came
    from) when there are none."""
    available = [g for g, v in zip(data.genes, data.varying, strict=True) if v]
    subsets = split_gene_sets(library, available, options.subset_size, options.seed,
                              options.exclusive)
    if not subsets:
        raise InputError(gmt or None, f"no gene set has {options.subset_size} genes that vary in "
                                      f"the matrix ({data.source})")
    return subsets


@dataclass
class Job:
    """One gene set to score: a library subset, a random control or a feature-size draw."""

    kind: str  # subset | control | size
    name: str
    columns: np.ndarray  # column indices into ScreenData.x
    pool: str = ""  # for size draws: all or sets


def make_jobs(data: ScreenData, subsets: list[GeneSubset], library: dict[str, list[str]],
              options: ScreenOptions) -> list[Job]:
    """Library subsets, then the random control sets, then the feature-size draws (seeded)."""
    index = {g: i for i, g in enumerate(data.genes)}
    varying = np.flatnonzero(data.varying)
    jobs = [Job("subset", s.name, np.array([index[g] for g in s.genes])) for s in subsets]
    rng = np.random.default_rng([options.seed, 1])
    jobs += [Job("control", f"control_{r + 1}",
                 np.sort(rng.choice(varying, options.subset_size, replace=False)))
             for r in range(options.n_control)]
    in_sets = {g for genes in library.values() for g in genes}
    set_pool = np.array([i for i in varying if data.genes[i] in in_sets])
    rng = np.random.default_rng([options.seed, 2])
    for size in options.feature_sizes:
        for pool_name, pool in (("all", varying), ("sets", set_pool)):
            if len(pool) < size:
                log.warning("feature size %d skipped for %s genes: only %d genes", size,
                            pool_name, len(pool))
                continue
            jobs += [Job("size", f"{pool_name}_{size}_{r + 1}",
                         np.sort(rng.choice(pool, size, replace=False)), pool_name)
                     for r in range(options.feature_size_repeats)]
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


def score_jobs(data: ScreenData, jobs: list[Job], options: ScreenOptions,
               cache_file: Path) -> pd.DataFrame:
    """Every job's scores (through the cache file, with a progress bar), one row per job."""
    from tqdm.auto import tqdm

    balanced = None if options.settings.balanced == "none" else balanced_rows(data.y,
                                                                              options.seed)
    cache = ScoreCache(cache_file)
    bar = tqdm(total=len(jobs), desc="screen", unit="set",
               disable=not (options.progress and interactive()),
               dynamic_ncols=True)
    try:
        with _sigterm_as_interrupt():
            scores = score_many(data.x, data.y, [j.columns for j in jobs], options.settings,
                                cache, balanced, options.n_jobs, progress=bar.update)
    except KeyboardInterrupt:
        raise ScreenInterrupted(
            f"screen stopped after {len(cache.scores)} of {len(jobs)} gene sets; run the same "
            f"command with hydra.run.dir={cache_file.parent} to go on from there") from None
    finally:
        bar.close()
    table = pd.DataFrame({"kind": [j.kind for j in jobs], "name": [j.name for j in jobs],
                          "pool": [j.pool for j in jobs],
                          "size": [len(j.columns) for j in jobs],
                          "genes": [",".join(data.genes[i] for i in j.columns) for j in jobs]})
    for col in SCORE_COLUMNS:
        table[col] = [s.get(col, np.nan) for s in scores]
    return table


@dataclass
class ScreenTables:
    """The screen's results: per subset (best first), per set, per feature size, the control,
    and the statistics of the subsets against the control."""

    subsets: pd.DataFrame
    sets: pd.DataFrame
    feature_sizes: pd.DataFrame
    control: pd.DataFrame
    stats: ScreenStats
    agreement: dict


def screen_tables(table: pd.DataFrame, subsets: list[GeneSubset],
                  options: ScreenOptions) -> ScreenTables:
    """The tables of a screen from the scores of :func:`score_jobs`."""
    control = table.loc[table.kind == "control", "silhouette"].to_numpy()
    st = compare_to_control(table.loc[table.kind == "subset", "silhouette"].to_numpy(),
                            control, options.flag_sd, options.flag_reference)
    per_subset = subset_table(table, subsets, control, st)
    control_df = table[table.kind == "control"].drop(columns=["kind", "pool"]).rename(
        columns={"name": "control"})
    return ScreenTables(per_subset, set_table(per_subset), feature_size_table(table), control_df,
                        st, agreement(table))


def subset_table(table: pd.DataFrame, subsets: list[GeneSubset], control: np.ndarray,
                 st: ScreenStats) -> pd.DataFrame:
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


def agreement(table: pd.DataFrame) -> dict:
    """Spearman correlations of the UMAP silhouette with the gene-space and balanced ones."""
    s = table[table.kind != "size"]
    out = {}
    for other in ("silhouette_gene", "silhouette_balanced"):
        ok = s[["silhouette", other]].dropna()
        if len(ok) > 2 and ok[other].nunique() > 1 and ok["silhouette"].nunique() > 1:
            out[f"spearman_{other}"] = float(stats.spearmanr(ok["silhouette"], ok[other])[0])
    return out


def subset_embeddings(data: ScreenData, subsets: pd.DataFrame, settings: ScoreSettings,
                      top: int) -> list[tuple[str, np.ndarray]]:
    """(title, 2-D embedding) of the ``top`` best and worst subsets: their UMAPs, or their
    first two principal components for a gene-space screen."""
    from gemdiff.evaluation.embedding import umap_2d

    ranked = subsets.dropna(subset=["silhouette"])
    k = min(top, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    if not k:
        return []
    index = {g: i for i, g in enumerate(data.genes)}
    picks = pd.concat([ranked.head(k), ranked.tail(k)]) if len(ranked) > 1 else ranked
    panels = []
    for _, row in picks.iterrows():
        x = data.x[:, [index[g] for g in row["genes"].split(",")]]
        if settings.score == "umap":
            emb = umap_2d(x, settings.umap)
        else:
            from sklearn.decomposition import PCA

            emb = PCA(n_components=2, random_state=0).fit_transform(x)
        panels.append((f"{row['subset']}\nsilhouette {row['silhouette']:.3f}", emb))
    return panels
