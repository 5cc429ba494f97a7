"""Single-cell-sized input: counts, variable genes, AnnData on disk, streamed training, shards."""

from __future__ import annotations

import tracemalloc

import anndata
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

import gemdiff
from gemdiff.data import dataset as dataset_module
from gemdiff.data import datamodule as datamodule_module
from gemdiff.data.datamodule import RandomBatches
from gemdiff.data.dataset import DataOptions, prepare_data
from gemdiff.data.genesets import GeneSelection
from gemdiff.data.io import GEM, gem_from_anndata, read_h5ad
from gemdiff.data.rows import BackedRows


def counts_adata(n: int, g: int, density: float = 0.05, seed: int = 0) -> anndata.AnnData:
    """Sparse whole-number counts with two labelled states and uneven library sizes."""
    rng = np.random.default_rng(seed)
    per_row = rng.binomial(g, density, n)
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    depth = rng.lognormal(0.0, 0.5, n)
    data = (1 + rng.poisson(3.0 * np.repeat(depth, per_row))).astype(np.float32)
    x = sparse.csr_matrix((data, rng.integers(0, g, indptr[-1]), indptr), shape=(n, g))
    x.sum_duplicates()
    labels = np.where(np.arange(n) % 3 == 0, "tumor", "normal")
    obs = pd.DataFrame({"state": labels}, index=[f"c{i}" for i in range(n)])
    return anndata.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))


def test_counts_are_scaled_by_library_sizes_over_all_genes():
    adata = counts_adata(300, 400, density=0.3)
    gem = gem_from_anndata(adata, "state")
    chosen = [f"g{j}" for j in range(0, 400, 40)]
    data = prepare_data(gem, selection=GeneSelection(genes=chosen))
    totals = np.asarray(adata.X.sum(axis=1)).ravel()
    assert data.preprocessor.input_scale == "counts"
    assert data.preprocessor.target_sum == pytest.approx(np.median(totals))
    rows = [int(s[1:]) for s in data.train_ids]
    want = adata[rows, chosen].X.toarray() * (np.median(totals) / totals[rows])[:, None]
    np.testing.assert_allclose(data.preprocessor.inverse_transform(data.x_train), want,
                               rtol=1e-4, atol=1e-4)
    # New samples are scaled by their own totals over all their genes, to the same target.
    new = GEM(adata.X[:5] * 3, gem.samples[:5], gem.genes, None)
    np.testing.assert_allclose(data.preprocessor.transform_gem(new, chosen),
                               data.preprocessor.transform_gem(gem.take_samples(np.arange(5)),
                                                               chosen), atol=1e-5)


def test_a_sample_without_counts_is_one_error_naming_it():
    adata = counts_adata(60, 50, density=0.3)
    x = adata.X.tolil()
    x[7, :] = 0
    adata.X = x.tocsr()
    with pytest.raises(gemdiff.InputError, match="sample 'c7' has no counts"):
        prepare_data(gem_from_anndata(adata, "state"), options=DataOptions())


def test_variable_genes_are_scanpys_highly_variable_genes():
    sc = pytest.importorskip("scanpy")
    adata = counts_adata(500, 300, density=0.2, seed=1)
    data = prepare_data(gem_from_anndata(adata, "state"),
                        selection=GeneSelection(n_genes=40))
    ref = adata.copy()
    sc.pp.normalize_total(ref)
    sc.pp.log1p(ref)
    sc.pp.highly_variable_genes(ref, flavor="seurat", n_top_genes=40)
    assert set(data.genes) == set(ref.var_names[ref.var["highly_variable"]])


def test_an_anndata_on_disk_streams_the_same_rows_as_one_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "REFERENCE_ROWS", 500)
    adata = counts_adata(2000, 300, density=0.1)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    on_disk = read_h5ad(path, "state", backed=True)
    assert isinstance(on_disk.values, BackedRows)
    opened = gem_from_anndata(anndata.read_h5ad(path, backed="r"), "state")  # the API's way
    assert isinstance(opened.values, BackedRows) and opened.samples == on_disk.samples
    a = prepare_data(on_disk, selection=GeneSelection(n_genes=50))
    b = prepare_data(gem_from_anndata(adata, "state"), selection=GeneSelection(n_genes=50))
    assert a.genes == b.genes and a.stream is not None and len(a.stream) == len(b.stream) > 500
    assert a.x_train.shape == (500, 50) and sum(a.summary()["train"].values()) == len(a.stream)
    np.testing.assert_array_equal(a.stream.values.toarray(), b.stream.values.toarray())
    np.testing.assert_array_equal(a.x_train, b.x_train)
    rows = np.array([0, 17, 999])
    assert a.stream.scaled(rows).shape == (3, 50) and a.stream.scaled(rows).dtype == np.float32


def test_ddp_ranks_draw_from_their_own_rows(monkeypatch):
    y = torch.zeros(10, dtype=torch.long)
    x = torch.arange(10.0)[:, None]
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(datamodule_module, "_rank_and_world", lambda r=rank: (r, 2))
        stream = iter(RandomBatches(x, y, batch_size=64, seed=0))
        seen.append(set(next(stream)["x"].ravel().int().tolist()))
    assert seen[0] == {0, 2, 4, 6, 8} and seen[1] == {1, 3, 5, 7, 9}


def test_a_hundred_thousand_cells_train_without_being_densified():
    adata = counts_adata(100_000, 2000, density=0.04)
    tracemalloc.start()
    model = gemdiff.GEMDiff.from_anndata(adata, "state", n_genes=200)
    model.fit(3, overrides=["model.denoiser.d_model=16", "model.denoiser.depth=1",
                            "calibrate.rows=0", "trainer.val_check_interval=3"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(model.genes) == 200 and sum(model.class_counts["train"].values()) > 60_000
    dense_bytes = 100_000 * 2000 * 8  # the whole matrix as dense float64: 1.6 GB
    assert peak < dense_bytes / 8, f"peak {peak / 1e6:.0f} MB"
