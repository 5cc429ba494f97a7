"""Choosing the genes to train on: all, N random, a list, a gene set or a subset of one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

from gemdiff.data.io import read_gmt
from gemdiff.common.errors import GemdiffError, InputError


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
    n_genes, seed
        Keep ``n_genes`` genes drawn at random (seeded) from all genes.
    """

    genes: Sequence[str] | None = None
    gmt: str | None = None
    gene_set: str | None = None
    subset_size: int = 16
    subset_index: int | None = None
    exclusive_subsets: bool = False
    n_genes: int | None = None
    seed: int = 0

    def __post_init__(self):
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
        return "random" if self.n_genes is not None else "all"

    def select(self, available: Sequence[str], source: str = "",
               constant: Collection[str] = ()) -> list[str]:
        """Return the chosen genes, in the order of ``available`` for sets and lists.

        Random genes and gene-set members are drawn among the genes not in ``constant`` (genes
        with one value in every sample carry nothing to learn); an explicit list or all genes
        are returned as asked, for the caller to judge.
        """
        mode = self.mode
        if mode == "all":
            return list(available)
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
