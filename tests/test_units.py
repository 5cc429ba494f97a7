"""Input units: the scale is inferred by default, and a declared scale the values cannot be in
is an error naming the option (linear FPKM read as log2 once came out capped at 2^60)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import gemdiff
from gemdiff.common.errors import InputError
from gemdiff.data import simulate_gem
from gemdiff.data.preprocess import resolve_input_scale

RNG = np.random.default_rng(0)
LOG2 = simulate_gem(n_samples=60, n_genes=20, seed=0).gem.values  # log2, negatives and NaN
FPKM = np.exp(RNG.normal(2.0, 2.0, (60, 200)))
COUNTS = RNG.poisson(3.0, (60, 200)).astype(float)
LOG1P = np.log1p(RNG.poisson(20.0, (60, 200)) * 1.37)  # normalised, log1p: fractional, >= 0


@pytest.mark.parametrize("values, scale", [
    (LOG2, "log2"), (FPKM, "linear"), (COUNTS, "counts"), (LOG1P, "log2"),
    (sparse.csr_matrix(COUNTS * (RNG.random(COUNTS.shape) < 0.1)), "counts"),
])
def test_auto_infers_the_scale_and_says_why(values, scale):
    chosen, note, warnings = resolve_input_scale(values, "auto", "x.tsv")
    assert (chosen, warnings) == (scale, [])
    assert note.startswith("inferred: ")


def test_a_scale_the_values_cannot_be_in_is_one_error_naming_the_option():
    with pytest.raises(InputError, match=r"x.tsv: has values up to .* too high for log2 .* "
                                         r"set data.input_scale=linear or auto"):
        resolve_input_scale(FPKM, "log2", "x.tsv")
    with pytest.raises(InputError, match=r"negative values .* set data.input_scale=log2"):
        resolve_input_scale(LOG2, "linear", "x.tsv")
    ambiguous = np.exp(RNG.normal(0.0, 1.2, (20, 30))).clip(None, 25.0)
    with pytest.raises(InputError, match=r"cannot tell log2 from linear .* set "
                                         r"data.input_scale=log2 or linear"):
        resolve_input_scale(ambiguous, "auto", "x.tsv")


def test_an_unlikely_declared_scale_is_kept_with_a_warning():
    small_counts = RNG.poisson(2.0, (40, 50)).astype(float)  # whole numbers below 30
    scale, note, warnings = resolve_input_scale(small_counts, "log2", "x.tsv")
    assert (scale, note) == ("log2", "declared")
    assert len(warnings) == 1 and "whole number" in warnings[0]
    assert "input_scale=counts" in warnings[0]
    scale, _, warnings = resolve_input_scale(LOG1P, "linear", "x.tsv")
    assert scale == "linear" and "looks log2" in warnings[0]


def test_linear_fpkm_with_the_default_scale_trains_and_samples_in_its_units():
    sim = simulate_gem(n_samples=120, n_genes=8, n_drivers=2, seed=3).gem
    fpkm = np.exp2(np.nan_to_num(sim.values, nan=-8.0)) * 50.0  # linear, up to ~1e5
    df = pd.DataFrame(fpkm, index=sim.samples, columns=sim.genes)
    model = gemdiff.GEMDiff.from_dataframe(df, pd.Series(sim.labels, index=sim.samples))
    model.fit(max_steps=20, progress=False, overrides=[
        "model.denoiser.d_model=16", "model.denoiser.depth=1", "calibrate.rows=0"])
    assert model.settings["data"]["input_scale"] == "linear"
    assert model.training["data"]["input_scale_chosen"].startswith("inferred: values reach")
    synth = model.sample(n_per_class=20, sampler="ddim", ddim_steps=5, metrics=False, umap=False)
    assert synth.uns["gemdiff"]["input_scale"] == "linear"  # the results say it too
    x = np.asarray(synth.X)
    # in the input's units: as high as the data go, never the 2^60 cap
    assert np.nanmax(x) < 20 * fpkm.max() and np.nanmax(x) > fpkm.max() / 20
