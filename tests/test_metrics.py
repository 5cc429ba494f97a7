"""Metrics on distributions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from gemdiff import metrics as M

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


def test_dcr_ratio_flags_copies():
    train, test = A[:200], A[200:]
    assert M.dcr_ratio(train[:50] + 1e-6, train, test) < 0.01
    assert 0.7 < M.dcr_ratio(B[:100], train, test) < 1.4


def test_ot_cost_of_translation_is_squared_shift():
    shift = np.full(8, 0.25)
    assert M.ot_cost(A[:100], A[:100]) == pytest.approx(0, abs=1e-12)
    assert M.ot_cost(A[:100], A[:100] + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)


def test_silhouette_separates_clusters():
    x = np.concatenate([A, SHIFTED + 2])
    y = np.r_[np.zeros(300), np.ones(300)]
    assert M.silhouette(x, y) > 0.7
    assert M.silhouette(np.concatenate([A, B]), y) < 0.05
