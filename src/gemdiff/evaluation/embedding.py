"""The one 2-D UMAP of the package: plots, the UMAP silhouette of generated samples and the
gene-set screen all embed samples with :func:`umap_2d`."""

from __future__ import annotations

import warnings
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from gemdiff.common.choices import check_choice

Knn = Literal["exact", "umap"]


@dataclass(frozen=True)
class UmapParams:
    """UMAP settings (the paper's n_neighbors=90, min_dist=0.3).

    ``n_epochs`` of optimisation (None: UMAP's own default, 500 below 10,000 samples; fewer
    are much faster for a small cost in agreement, ``benchmarks/screen_speed.py``). ``knn``:
    ``exact`` passes neighbours computed by scikit-learn to UMAP (``precomputed_knn``),
    ``umap`` lets UMAP find them itself.
    """

    n_neighbors: int = 90
    min_dist: float = 0.3
    n_epochs: int | None = None
    knn: str = "exact"
    seed: int = 0

    def __post_init__(self):
        check_choice("umap.knn", self.knn, Knn)


_UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances")


@cache
def _umap():
    """umap, with its numba functions compiled once per machine instead of once per process.

    umap-learn compiles ``smooth_knn_dist``, the layout epoch and a few more without numba's
    on-disk cache, which costs every fresh process about 9 s of a 10-s first embedding on 2
    cores; with the cache a later process embeds in about 1 s, to the same coordinates
    (benchmarks/README.md). Where no cache folder is writable numba keeps compiling per process.
    """
    import importlib

    import umap
    from numba.core.dispatcher import Dispatcher

    for name in _UMAP_MODULES:
        module = importlib.import_module(name)
        for fn in vars(module).values():
            if isinstance(fn, Dispatcher) and fn.py_func.__module__ == name:
                with suppress(RuntimeError):  # no writable cache location
                    fn.enable_caching()
    return umap


def umap_2d(x: np.ndarray, p: UmapParams = UmapParams()) -> np.ndarray:
    """Seeded 2-D UMAP of the rows of ``x``, (n, 2) (fewer neighbours when there are few rows)."""
    from sklearn.neighbors import NearestNeighbors

    umap = _umap()

    k = max(2, min(p.n_neighbors, len(x) - 1))
    knn = (None,) * 3
    if p.knn == "exact":
        dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
        knn = (idx, dist, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs forced to 1 by the seed; disconnected graphs
        reducer = umap.UMAP(n_neighbors=k, min_dist=p.min_dist, n_epochs=p.n_epochs,
                            random_state=p.seed, n_jobs=1, precomputed_knn=knn)
        return reducer.fit_transform(x)


# Below this many samples a UMAP is mostly its own artefact (points on a lattice, clusters of
# the neighbour count); the first two principal components show such data as they are.
UMAP_MIN_SAMPLES = 50


def embed_2d(x: np.ndarray, p: UmapParams = UmapParams()) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``x`` for figures and ``obsm["X_umap"]``, and their axis
    name: a UMAP (``"UMAP"``), or below :data:`UMAP_MIN_SAMPLES` rows the first two principal
    components (``"PC"``)."""
    if len(x) >= UMAP_MIN_SAMPLES:
        return umap_2d(x, p), "UMAP"
    from sklearn.decomposition import PCA

    k = min(2, *x.shape)
    emb = np.zeros((len(x), 2))
    if k:
        emb[:, :k] = PCA(n_components=k, random_state=p.seed).fit_transform(x)
    return emb, "PC"
