"""Differential expression beside the perturbation scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from gemdiff.data.preprocess import Preprocessor
from gemdiff.tools.gene_scores import core_versus_de, differential_expression


def test_welch_t_and_bh_q_match_scipy_on_log2_values():
    rng = np.random.default_rng(0)
    a = rng.normal(5, 1, (30, 4))
    b = rng.normal(5, 2, (20, 4))
    b[:, 0] += 2.0
    pre = Preprocessor().fit(np.vstack([a, b]))
    de = differential_expression(pre, ["A", "B", "C", "D"], pre.transform(a), pre.transform(b))
    la, lb = pre.to_log2p1_scale(pre.transform(a)), pre.to_log2p1_scale(pre.transform(b))
    t, p = stats.ttest_ind(lb, la, equal_var=False)
    np.testing.assert_allclose(de.de_t, t, rtol=1e-4)
    np.testing.assert_allclose(de.de_q, stats.false_discovery_control(p), rtol=1e-4)
    np.testing.assert_allclose(de.de_log2fc, lb.mean(0) - la.mean(0), rtol=1e-4)
    assert de.de_q.iloc[0] < 0.05 and de.de_log2fc.iloc[0] > 0


def test_core_genes_against_de():
    table = pd.DataFrame({"gene": list("ABCD"), "core": [True, True, False, False],
                          "de_q": [0.01, 0.3, 0.02, 0.9]})
    assert core_versus_de(table) == {"n_core_de": 1, "core_not_de": ["B"], "n_de": 2,
                                     "de_q": 0.05}


def test_perturbation_results_carry_de_columns(trained_synthetic):
    from gemdiff.api.model import GEMDiff

    _, summary = trained_synthetic
    adata = GEMDiff.load(summary["checkpoint"]).perturb(source="tumor", target="normal",
                                                        ddim_steps=20, umap=False)
    assert {"de_log2fc", "de_t", "de_p", "de_q"} <= set(adata.var.columns)
    m = adata.uns["metrics"]
    assert m["n_core_de"] + len(m["core_not_de"]) == m["n_core_genes"]


def test_the_cycle_check_runs_on_a_seeded_subsample(trained_synthetic):
    """The third pass (decode with the source label) runs on 64 samples by default, the same
    ones each time, and its error is measured against those samples' own values."""
    from gemdiff.models.generators import BridgeOptions, cycle_rows
    from gemdiff.training.checkpoint import load_checkpoint

    _, summary = trained_synthetic
    model = load_checkpoint(summary["checkpoint"])
    x = model.data().x_train[:100]
    res = model.generator.bridge(x, 1, 0, BridgeOptions(10, 500))
    assert res.x_cycle.shape == (64, x.shape[1])
    np.testing.assert_array_equal(res.cycle_index, cycle_rows(100, 64))
    full = model.generator.bridge(x, 1, 0, BridgeOptions(10, 500, cycle_samples=None))
    assert full.x_cycle.shape == x.shape
    np.testing.assert_allclose(full.x_cycle[res.cycle_index], res.x_cycle, atol=1e-5)
    np.testing.assert_allclose(full.x_moved, res.x_moved, atol=1e-6)
