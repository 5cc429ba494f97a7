"""The model of principal components: its codec, when it is chosen, and a trained one."""

from __future__ import annotations

import numpy as np
import pytest

import gemdiff
from gemdiff.models.latent import PCA_ABOVE, PCACodec, choose_space

RNG = np.random.default_rng(0)
X = np.tanh(RNG.normal(size=(40, 3)) @ RNG.normal(size=(3, 30)) * 0.3
            + 0.02 * RNG.normal(size=(40, 30)))
Y = np.arange(40) % 2


def test_scores_fill_the_scale_and_read_back_through_the_components():
    codec = PCACodec.fit(X, Y, 2, dims=3)
    z = codec.encode(X)
    assert z.shape == (40, 3) and np.isclose(np.abs(z).max(axis=0), 1.0).all()
    resid = X - codec.decode(z)
    assert np.abs(resid).max() < 0.2  # three components hold nearly all of it
    np.testing.assert_allclose(codec.residual_sd[0], resid[Y == 0].std(axis=0, ddof=1),
                               atol=1e-6)
    full = PCACodec.fit(X, Y, 2, dims=100)  # at most the genes, and one fewer than the samples
    assert full.dims == 30 and PCACodec.fit(X[:10], Y[:10], 2, dims=100).dims == 9
    np.testing.assert_allclose(full.decode(full.encode(X)), X, atol=1e-5)


def test_a_move_changes_a_sample_only_along_the_components():
    codec = PCACodec.fit(X, Y, 2, dims=3)
    z = codec.encode(X[:5])
    moved = codec.move(X[:5], z, z + 0.3)
    step = moved - X[:5]
    # the change lies in the components' span, and the sample's own residual is kept
    np.testing.assert_allclose(step, step @ codec.components.T @ codec.components, atol=1e-5)
    np.testing.assert_allclose(moved - codec.decode(codec.encode(moved)),
                               X[:5] - codec.decode(z), atol=1e-5)


def test_the_space_is_genes_up_to_the_threshold_and_components_above():
    assert choose_space("auto", PCA_ABOVE) == "genes"
    assert choose_space("auto", PCA_ABOVE + 1) == "pca"
    assert choose_space("pca", 10) == "pca" and choose_space("genes", 10**5) == "genes"
    with pytest.raises(gemdiff.GemdiffError, match="latent.space"):
        choose_space("umap", 10)


def test_a_model_of_components_samples_and_moves_every_gene(tmp_path):
    model = gemdiff.GEMDiff.from_config("synthetic")
    model.fit(30, overrides=["latent.space=pca", "latent.dims=6", "calibrate.rows=8",
                             "model.denoiser.d_model=16", "model.denoiser.depth=1"],
              progress=False)
    assert repr(model).startswith("GEMDiff(latent_diffusion, 32 genes")
    samples = model.sample(n_per_class=20, umap=False)
    assert samples.shape == (40, 32) and samples.uns["metrics"]["latent_dims"] == 6
    moved = model.perturb(source="normal", target="tumor", umap=False, beside=None)
    assert moved.shape[1] == 32 and np.isfinite(moved.var["score"]).all()
    model.save(tmp_path / "m")
    again = gemdiff.GEMDiff.load(tmp_path / "m").sample(n_per_class=20, umap=False)
    np.testing.assert_allclose(again.X, samples.X, atol=1e-5)
