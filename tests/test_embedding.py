"""The shared 2-D UMAP: seeded, and compiled once per machine rather than once per process."""

from __future__ import annotations

import numpy as np
from numba.core.caching import NullCache
from numba.core.dispatcher import Dispatcher

from gemdiff.evaluation.embedding import UmapParams, _umap, umap_2d


def test_umap_keeps_its_compiled_functions_and_repeats_itself():
    umap = _umap()
    jitted = [fn for module in (umap.umap_, umap.layouts) for fn in vars(module).values()
              if isinstance(fn, Dispatcher)]
    assert umap.umap_.smooth_knn_dist in jitted and len(jitted) > 5
    for fn in jitted:
        assert not isinstance(fn._cache, NullCache), fn.py_func.__name__
    x = np.random.default_rng(0).normal(size=(60, 8))
    a, b = umap_2d(x, UmapParams(n_neighbors=10)), umap_2d(x, UmapParams(n_neighbors=10))
    assert a.shape == (60, 2) and np.array_equal(a, b)
