"""Metrics on distributions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from gemdiff.evaluation import metrics as M

RNG = np.random.default_rng(0)
A = RNG.normal(0, 0.3, (300, 8))
B = RNG.normal(0, 0.3, (300, 8))
SHIFTED = RNG.normal(0.5, 0.3, (300, 8))


def test_mmd_near_zero_for_same_distribution_and_not_for_shift():
    assert M.mmd_rbf(A, A) == pytest.approx(0, abs=1e-12)
    same, shift = M.mmd_rbf(A, B), M.mmd_rbf(A, SHIFTED)
    assert same < 0.01 * shift and shift > 0.05
    assert M.mmd_multiscale(A, B) < 0.1 * M.mmd_multiscale(A, SHIFTED)


def test_c2st_chance_for_same_and_high_for_shift():
    assert abs(M.c2st_auc(A, B) - 0.5) < 0.1
    assert M.c2st_auc(A, SHIFTED) > 0.95


def test_c2st_sees_a_shift_between_small_samples():
    # 20 against 20, as in the null reference of a 40-sample test split: the classifier must
    # still be able to split (a fixed 20-sample leaf minimum would leave it constant).
    small, far = A[:20], SHIFTED[:20] + 1.0
    assert M.c2st_auc(small, far) > 0.9
    # one 20-vs-20 draw of the same distribution scores anywhere in 0.15-0.85; the mean of many
    # sits at chance
    same = [M.c2st_auc(A[i:i + 20], B[i:i + 20], seed=i) for i in range(0, 200, 20)]
    assert abs(np.mean(same) - 0.5) < 0.1


def test_dcr_ratio_flags_copies():
    train, test = A[:200], A[200:]
    assert M.dcr_ratio(train[:50] + 1e-6, train, test) < 0.01
    assert 0.7 < M.dcr_ratio(B[:100], train, test) < 1.4


def test_corr_slope_reads_kept_halved_and_lost_correlations():
    rng = np.random.default_rng(3)
    cov = np.full((6, 6), 0.6) + 0.4 * np.eye(6)
    cov[:3, 3:] = cov[3:, :3] = -0.3  # positive and negative pairs
    real = rng.multivariate_normal(np.zeros(6), cov, 2000)
    same = rng.multivariate_normal(np.zeros(6), cov, 2000)
    half = rng.multivariate_normal(np.zeros(6), 0.5 * cov + 0.5 * np.diag(np.diag(cov)), 2000)
    indep = rng.normal(size=(2000, 6))
    y = np.r_[np.zeros(1000, int), np.ones(1000, int)]
    assert M.corr_slope(same, y, real, y) == pytest.approx(1.0, abs=0.1)
    assert M.corr_slope(half, y, real, y) == pytest.approx(0.5, abs=0.1)
    assert M.corr_slope(indep, y, real, y) == pytest.approx(0.0, abs=0.1)
    # a constant gene leaves its pairs out; one gene or no shared class leaves nothing
    const = same.copy()
    const[:, 0] = 1.0
    assert M.corr_slope(const, y, real, y) == pytest.approx(1.0, abs=0.15)
    assert np.isnan(M.corr_slope(same[:, :1], y, real[:, :1], y))
    assert np.isnan(M.corr_slope(same, y + 5, real, y))
    # above max_genes a random subset of genes is read; the slopes stay what they are
    assert M.corr_slope(half, y, real, y, max_genes=4) == pytest.approx(0.5, abs=0.15)
    assert M.corr_slope(same, y, real, y, max_genes=4) == pytest.approx(1.0, abs=0.15)


def test_corr_slope_of_new_real_samples_is_below_one_with_few_training_samples():
    # 40 training samples per class estimate correlations with noise that new samples of the
    # same distribution do not repeat; a Gaussian fitted to them repeats it.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(12, 12))
    cov = a @ a.T / 12 + 0.5 * np.eye(12)
    y_train, y_new = np.repeat([0, 1], 40), np.repeat([0, 1], 2000)
    train = rng.multivariate_normal(np.zeros(12), cov, 80)
    new = rng.multivariate_normal(np.zeros(12), cov, 4000)
    fitted = np.concatenate([rng.multivariate_normal(train[y_train == c].mean(0),
                                                     np.cov(train[y_train == c].T), 2000)
                             for c in (0, 1)])
    assert M.corr_slope(new, y_new, train, y_train) < 0.8
    assert M.corr_slope(fitted, y_new, train, y_train) == pytest.approx(1.0, abs=0.05)


def test_ot_cost_of_translation_is_squared_shift():
    shift = np.full(8, 0.25)
    assert M.ot_cost(A[:100], A[:100]) == pytest.approx(0, abs=1e-12)
    assert M.ot_cost(A[:100], A[:100] + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)


def test_silhouette_separates_clusters():
    x = np.concatenate([A, SHIFTED + 2])
    y = np.r_[np.zeros(300), np.ones(300)]
    assert M.silhouette(x, y) > 0.7
    assert M.silhouette(np.concatenate([A, B]), y) < 0.05


def test_perturbation_metrics_on_constructed_samples():
    from gemdiff.evaluation.metrics import fit_svm, perturbation_metrics

    rng = np.random.default_rng(0)
    src = rng.normal(-1.0, 0.3, (120, 4))
    tgt_a, tgt_b = rng.normal(1.0, 0.3, (120, 4)), rng.normal(1.0, 0.3, (120, 4))
    svm = fit_svm(np.concatenate([src, tgt_a]), np.r_[np.zeros(120), np.ones(120)])
    moved = src + 2.0  # a perfect mean shift: lands on the target distribution
    m = perturbation_metrics(src, moved, None, tgt_b, tgt_a, svm, 1)
    assert m.frac_to_target > 0.95 and m.frac_to_target_before < 0.05
    assert m.frac_to_target_real > 0.95
    assert m.cycle_error is None
    assert m.transport_cost == pytest.approx(16.0)  # 4 genes, each moved by 2
    assert m.mmd_to_target_ratio < 3 and m.mmd_source_to_target > 10 * m.mmd_to_target
    m = perturbation_metrics(src, src, src + 0.01, tgt_b, tgt_a, svm, 1)
    assert m.frac_to_target < 0.05 and m.cycle_error == pytest.approx(0.01)


def test_metrics_read_bounded_seeded_draws_of_large_sets():
    from gemdiff.evaluation.metrics import METRIC_ROWS, augmentation_metrics, bounded_rows

    rows = bounded_rows(10_000, 1000, np.r_[np.zeros(9000), np.ones(1000)], seed=1)
    assert len(rows) == 1000 and np.all(np.diff(rows) > 0)
    assert (rows >= 9000).sum() == 100  # classes in proportion
    assert np.array_equal(rows, bounded_rows(10_000, 1000, np.r_[np.zeros(9000), np.ones(1000)],
                                             seed=1))
    assert np.array_equal(bounded_rows(50, 1000), np.arange(50))
    rng = np.random.default_rng(0)
    n, g = 12_000, 60  # more samples than the bound, more genes than C2ST's components
    x = rng.normal(0, 0.2, (n, g)).astype(np.float32)
    y = rng.integers(0, 2, n)
    syn = rng.normal(0, 0.2, (1000, g)).astype(np.float32)
    m = augmentation_metrics(x[:8000], y[:8000], x[8000:], y[8000:], syn, rng.integers(0, 2, 1000))
    assert m.metric_rows == {"train": METRIC_ROWS, "test": METRIC_ROWS, "synthetic": 1000,
                             "limit": METRIC_ROWS}
    assert 0.4 < m.c2st_auc < 0.65 and 0.5 < m.sd_ratio < 1.5
