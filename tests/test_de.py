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
    assert {"de_log2fc", "de_t", "de_p", "de_q", "de_mod_t", "de_mod_q"} <= set(adata.var.columns)
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


def _two_groups(seed: int, n_genes: int, n_a: int, n_b: int, sd_spread: float):
    rng = np.random.default_rng(seed)
    sd = np.exp(rng.normal(0.0, sd_spread, n_genes))
    a, b = rng.normal(size=(n_a, n_genes)) * sd, rng.normal(size=(n_b, n_genes)) * sd
    b[:, :5] += 1.0
    a[:, 7] = b[:, 7] = 3.0  # a constant gene
    return a, b


def test_moderated_t_shrinks_variances_toward_the_genes_prior():
    """With genes of unequal variance the prior has finite df: t lies between the ordinary
    pooled t and the t with every gene at the prior variance; with equal variances the prior
    takes over (d0 = inf) and t is the difference over the common SD."""
    from gemdiff.tools.gene_scores import moderated_t

    a, b = _two_groups(0, 50, 15, 15, 0.5)
    t, p, d0, s0 = moderated_t(a, b)
    diff = b.mean(0) - a.mean(0)
    se = np.sqrt(1 / 15 + 1 / 15)
    s2 = (a.var(0, ddof=1) + b.var(0, ddof=1)) / 2
    expect = diff / (se * np.sqrt((d0 * s0 + 28 * s2) / (d0 + 28)))
    np.testing.assert_allclose(t, expect, rtol=1e-12)
    assert 0 < d0 < np.inf and t[7] == 0 and p[7] == 1.0
    np.testing.assert_allclose(p, 2 * stats.t.sf(np.abs(t), d0 + 28), rtol=1e-12)
    rng = np.random.default_rng(1)  # every gene the same values in another order: same s2
    a = np.stack([rng.permutation(np.arange(40.0)) for _ in range(30)], axis=1)
    b = np.stack([rng.permutation(np.arange(40.0)) + rng.normal() for _ in range(30)], axis=1)
    t, _, d0, s0 = moderated_t(a, b)
    assert d0 == np.inf
    np.testing.assert_allclose(s0, np.arange(40.0).var(ddof=1))
    np.testing.assert_allclose(t, (b.mean(0) - a.mean(0)) / (np.sqrt(2 / 40) * np.sqrt(s0)))


def test_moderated_t_matches_limma_as_ported_by_inmoose():
    inmoose = __import__("pytest").importorskip("inmoose.limma")
    from gemdiff.tools.gene_scores import moderated_t

    for seed, n_genes, n_a, n_b, spread in [(0, 50, 15, 15, 0.5), (1, 200, 8, 30, 1.0),
                                            (2, 20, 40, 60, 0.0)]:
        a, b = _two_groups(seed, n_genes, n_a, n_b, spread)
        design = pd.DataFrame({"intercept": 1.0, "group": np.r_[np.zeros(n_a), np.ones(n_b)]})
        fit = inmoose.eBayes(inmoose.lmFit(np.vstack([a, b]).T, design))
        t, p, d0, s0 = moderated_t(a, b)
        np.testing.assert_allclose(t, fit.t.iloc[:, 1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p, fit.p_value.iloc[:, 1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose([d0, s0], [fit.df_prior, fit.s2_prior], rtol=1e-9)
