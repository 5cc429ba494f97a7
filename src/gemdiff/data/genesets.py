"""Choosing the genes to train on: all, the N most variable or N random, a list, a gene set or a
subset of one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Literal, Sequence

import numpy as np

from gemdiff.common.choices import check_choice
from gemdiff.data.io import read_gmt
from gemdiff.common.errors import GemdiffError, InputError


SelectBy = Literal["variable", "random"]
N_BINS = 20


def dispersion_ranks(mean: np.ndarray, var: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Per gene, its rank by normalised dispersion (0: the most variable), the ``seurat``
    flavour of scanpy's ``highly_variable_genes``.

    ``mean`` and ``var`` are each gene's mean and variance of linear (normalised) expression.
    The dispersion is log(var / mean); genes are put in ``n_bins`` equal-width bins of
    log(1 + mean), and a gene's dispersion is taken relative to its bin's (minus the bin's mean
    dispersion, over its standard deviation; 1 where it is alone in its bin), so that genes are
    not chosen only for being highly expressed. Genes without dispersion rank last.
    """
    mean = np.where(np.asarray(mean, dtype=np.float64) == 0, 1e-12, mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.asarray(var, dtype=np.float64) / mean
        disp = np.log(np.where(disp == 0, np.nan, disp))
    level = np.log1p(mean)
    edges = np.linspace(level.min(), level.max(), n_bins + 1)
    bins = np.clip(np.searchsorted(edges, level, side="left") - 1, 0, n_bins - 1)
    norm = np.full(len(mean), np.nan)
    for b in np.unique(bins):
        rows = np.flatnonzero(bins == b)
        d = disp[rows]
        ok = np.isfinite(d)
        if ok.sum() == 1:
            norm[rows[ok]] = 1.0  # alone in its bin
        elif ok.sum() > 1:
            norm[rows[ok]] = (d[ok] - d[ok].mean()) / d[ok].std(ddof=1)
    key = np.where(np.isfinite(norm), -norm, np.inf)
    order = np.argsort(key, kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


@dataclass(frozen=True)
class GeneSubset:
    """One K-gene subset of a gene set."""

    set_name: str
    index: int
    genes: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.set_name}_{self.index}"


def split_gene_sets(
    sets: dict[str, list[str]],
    available: Sequence[str],
    size: int = 16,
    seed: int = 0,
    exclusive: bool = False,
) -> list[GeneSubset]:
    """Split every gene set into non-overlapping ``size``-gene subsets.

    Each set is restricted to the ``available`` genes, shuffled with a generator seeded by
    ``seed`` and cut into consecutive chunks; leftovers smaller than ``size`` are dropped, so
    the subsets of one set never share a gene. Gene sets themselves overlap (a gene can be in
    several Hallmarks); with ``exclusive=True`` a gene that an earlier set (in library order)
    already placed is not used again, so no gene is in two subsets at all.
    """
    if size < 1:
        raise GemdiffError(f"subset_size must be at least 1, got {size}")
    avail = set(available)
    used: set[str] = set()
    rng = np.random.default_rng(seed)
    out: list[GeneSubset] = []
    for name, genes in sets.items():
        pool = [g for g in genes if g in avail and not (exclusive and g in used)]
        order = rng.permutation(len(pool))
        pool = [pool[i] for i in order]
        for k in range(len(pool) // size):
            chunk = tuple(pool[k * size:(k + 1) * size])
            used.update(chunk)
            out.append(GeneSubset(name, k, chunk))
    return out


@dataclass
class GeneSelection:
    """Which genes to keep; the mode follows from which field is set.

    Parameters
    ----------
    genes
        An explicit list of gene names.
    gmt, gene_set
        A GMT file and the name of one set in it.
    subset_size, subset_index, exclusive_subsets
        With ``gene_set``: split the library (see :func:`split_gene_sets`) and keep subset
        ``subset_index`` of the set.
    n_genes, select_by, seed
        Keep ``n_genes`` genes: the most variable (``select_by="variable"``, ranked by
        :func:`dispersion_ranks`) or drawn at random (``"random"``, seeded).
    """

    genes: Sequence[str] | None = None
    gmt: str | None = None
    gene_set: str | None = None
    subset_size: int = 16
    subset_index: int | None = None
    exclusive_subsets: bool = False
    n_genes: int | None = None
    select_by: str = "variable"
    seed: int = 0

    def __post_init__(self):
        check_choice("select_by", self.select_by, SelectBy)
        given = [k for k, v in (("genes", self.genes), ("gene_set", self.gene_set),
                                ("n_genes", self.n_genes)) if v is not None]
        if len(given) > 1:
            raise GemdiffError(f"choose one gene selection, not {' and '.join(given)}")
        if self.gene_set is not None and self.gmt is None:
            raise GemdiffError("gene_set needs gmt, the GMT file it comes from")
        if self.subset_index is not None and self.gene_set is None:
            raise GemdiffError("subset_index needs gene_set")

    @property
    def mode(self) -> str:
        if self.genes is not None:
            return "list"
        if self.gene_set is not None:
            return "subset" if self.subset_index is not None else "gene_set"
        if self.n_genes is None:
            return "all"
        return self.select_by

    def select(self, available: Sequence[str], source: str = "",
               constant: Collection[str] = (), ranks: np.ndarray | None = None) -> list[str]:
        """Return the chosen genes, in the order of ``available`` for sets and lists.

        Variable and random genes and gene-set members are drawn among the genes not in
        ``constant`` (genes with one value in every sample carry nothing to learn); an explicit
        list or all genes are returned as asked, for the caller to judge. ``ranks`` (per gene
        of ``available``, 0 the most variable) is needed by ``select_by="variable"``.
        """
        mode = self.mode
        if mode == "all":
            return list(available)
        if mode == "variable":
            if ranks is None:
                raise GemdiffError("select_by='variable' needs the genes' dispersion ranks")
            skip = set(constant)
            order = [available[i] for i in np.argsort(ranks, kind="stable")
                     if available[i] not in skip]
            if not 1 <= self.n_genes <= len(order):
                raise InputError(source or None, f"n_genes={self.n_genes} but the matrix has "
                                                 f"{len(order)} genes that vary")
            chosen = set(order[:self.n_genes])
            return [g for g in available if g in chosen]
        if constant and mode != "list":
            skip = set(constant)
            available = [g for g in available if g not in skip]
        if mode == "random":
            if not 1 <= self.n_genes <= len(available):
                raise InputError(source or None, f"n_genes={self.n_genes} but the matrix has "
                                                 f"{len(available)} genes that vary")
            rng = np.random.default_rng(self.seed)
            idx = np.sort(rng.choice(len(available), size=self.n_genes, replace=False))
            return [available[i] for i in idx]
        if mode == "list":
            wanted = list(dict.fromkeys(self.genes))
            present = set(available)
            absent = [g for g in wanted if g not in present]
            if absent:
                raise InputError(source or None, f"{len(absent)} requested gene(s) are not in "
                                                 f"the matrix, e.g. {absent[0]!r}")
            return wanted
        sets = read_gmt(self.gmt)
        if self.gene_set not in sets:
            raise InputError(self.gmt, f"has no gene set {self.gene_set!r}")
        if not sets[self.gene_set]:
            raise InputError(self.gmt, f"gene set {self.gene_set!r} lists no genes")
        if mode == "gene_set":
            present = set(sets[self.gene_set]) & set(available)
            if not present:
                raise InputError(self.gmt, f"gene set {self.gene_set!r} has no gene in the matrix")
            return [g for g in available if g in present]
        subsets = [s for s in split_gene_sets(sets, available, self.subset_size, self.seed,
                                                  self.exclusive_subsets)
                   if s.set_name == self.gene_set]
        if not subsets:
            raise InputError(self.gmt, f"gene set {self.gene_set!r} has fewer than "
                                       f"{self.subset_size} genes in the matrix")
        if not 0 <= self.subset_index < len(subsets):
            raise InputError(self.gmt, f"gene set {self.gene_set!r} splits into {len(subsets)} "
                                       f"subsets of {self.subset_size}; subset_index="
                                       f"{self.subset_index} does not exist")
        return list(subsets[self.subset_index].genes)
