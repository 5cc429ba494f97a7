"""log2(n + 1), min-max scaling, its inverse, splits and training fractions."""

from __future__ import annotations

import numpy as np
import pytest

from gemdiff.data.dataset import DataOptions, prepare_data
from gemdiff.data.io import GEM
from gemdiff.data.preprocess import Preprocessor, to_log2p1
from gemdiff.common.errors import GemdiffError, InputError


def test_log2_input_becomes_log2p1_and_missing_is_zero():
    x = np.array([[0.0, 3.0, np.nan]])  # log2 expression: n = 1, 8, unexpressed
    np.testing.assert_allclose(to_log2p1(x, "log2"), [[1.0, np.log2(9.0), 0.0]])
    np.testing.assert_allclose(to_log2p1(np.array([[0.0, 7.0]]), "linear"), [[0.0, 3.0]])


def test_linear_rejects_negative():
    with pytest.raises(InputError, match="negative"):
        to_log2p1(np.array([[-1.0]]), "linear", "f.tsv")


@pytest.mark.parametrize("scale", ["log2", "linear"])
@pytest.mark.parametrize("scaling", ["global", "per_gene"])
def test_transform_inverse_roundtrip(scale, scaling):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 10, (50, 6)) if scale == "log2" else rng.uniform(0, 500, (50, 6))
    x[3, 2] = np.nan
    p = Preprocessor(input_scale=scale, scaling=scaling).fit(x)
    z = p.transform(x)
    assert z.dtype == np.float32 and z.min() >= -1 - 1e-6 and z.max() <= 1 + 1e-6
    assert np.isclose(z.min(), -1, atol=1e-6) and np.isclose(z.max(), 1, atol=1e-6)
    back = p.inverse_transform(z)
    if scale == "log2":
        assert np.isnan(back[3, 2])  # unexpressed comes back as missing
        mask = ~np.isnan(x)
        np.testing.assert_allclose(back[mask], x[mask], rtol=1e-4, atol=1e-4)
    else:
        assert back[3, 2] == pytest.approx(0.0, abs=1e-3)


def test_constant_gene_no_division_by_zero():
    x = np.column_stack([np.full(10, 5.0), np.linspace(0, 9, 10)])
    p = Preprocessor(scaling="per_gene").fit(x)
    z = p.transform(x)
    assert np.isfinite(z).all() and np.allclose(z[:, 0], 0.0)
    np.testing.assert_allclose(p.inverse_transform(z)[:, 0], 5.0, rtol=1e-5)


def test_global_scaling_keeps_relative_gene_ranges():
    x = np.column_stack([np.linspace(0, 2, 20), np.linspace(0, 10, 20)])
    z = Preprocessor(scaling="global").fit(x).transform(x)
    assert np.ptp(z[:, 1]) > 3 * np.ptp(z[:, 0])


def test_state_dict_is_plain_data():
    p = Preprocessor().fit(np.random.default_rng(0).normal(5, 1, (10, 3)))
    state = p.state_dict()
    assert all(isinstance(v, (str, list, float, type(None))) for v in state.values())
    q = Preprocessor.from_state_dict(state)
    np.testing.assert_array_equal(q.transform(np.ones((2, 3))), p.transform(np.ones((2, 3))))


def test_invalid_choice_lists_options():
    with pytest.raises(GemdiffError, match="'global', 'per_gene'"):
        Preprocessor(scaling="zscore")


def _gem(n_a=60, n_b=140, g=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["a"] * n_a + ["b"] * n_b)
    return GEM(rng.normal(5, 1, (n_a + n_b, g)), [f"s{i}" for i in range(n_a + n_b)],
               [f"g{i}" for i in range(g)], labels, source="mem")


def test_split_is_stratified_seeded_and_fit_on_train():
    gem = _gem()
    d = prepare_data(gem, options=DataOptions(test_size=0.33, seed=1))
    assert len(d.train_ids) + len(d.test_ids) == 200 and not set(d.train_ids) & set(d.test_ids)
    frac_a_test = (d.y_test == 0).mean()
    assert abs(frac_a_test - 0.3) < 0.03
    assert d.x_train.min() == pytest.approx(-1) and d.x_train.max() == pytest.approx(1)
    again = prepare_data(gem, options=DataOptions(test_size=0.33, seed=1))
    assert again.test_ids == d.test_ids
    assert prepare_data(gem, options=DataOptions(seed=2)).test_ids != d.test_ids


def test_train_fraction_per_class():
    d_full = prepare_data(_gem(), options=DataOptions(seed=0))
    d_half = prepare_data(_gem(), options=DataOptions(seed=0, train_fraction=0.5))
    for c in (0, 1):
        assert (d_half.y_train == c).sum() == round(0.5 * (d_full.y_train == c).sum())
    assert d_half.test_ids == d_full.test_ids  # the test split does not change


def test_drop_policy_removes_genes_with_missing():
    gem = _gem()
    gem.values[0, 2] = np.nan
    d = prepare_data(gem, options=DataOptions(nan_policy="drop"))
    assert d.genes == ["g0", "g1", "g3", "g4"]
    assert prepare_data(gem, options=DataOptions(nan_policy="replace")).n_genes == 5


def test_snap_unexpressed_uses_training_floor():
    x = np.array([[np.nan, 3.0], [0.0, 5.0], [1.0, np.nan]])  # log2: smallest expressed n = 1
    p = Preprocessor().fit(x)
    assert p.floor == pytest.approx(0.5)  # half of log2(1 + 1)
    z = p.transform(x)
    zero = z[0, 0]  # an unexpressed cell
    tiny = p.transform(np.array([[np.log2(0.2), 3.0]]))  # n = 0.2: log2(1.2) = 0.26 < 0.5
    snapped = p.snap_unexpressed(tiny)
    assert snapped[0, 0] == zero and snapped[0, 1] == tiny[0, 1]
    assert np.isnan(p.inverse_transform(snapped)[0, 0])  # written back as missing


def test_snap_unexpressed_gives_each_class_its_training_share_of_zeros():
    # Gene 0 is unexpressed in half of class 0's training samples and in none of class 1's;
    # gene 1 is never unexpressed.
    x = np.array([[0.0, 4.0], [0.0, 5.0], [6.0, 6.0], [7.0, 7.0],
                  [9.0, 4.0], [10.0, 5.0], [11.0, 6.0], [12.0, 7.0]])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = Preprocessor(input_scale="linear").fit(x, labels=y)
    np.testing.assert_allclose(p.zero_share, [[0.5, 0.0], [0.0, 0.0]])
    # Generated: every value above gene 0's detection floor (log2(7)), so the floor snaps none.
    gen = p.transform(np.array([[8.0, 5.0], [9.0, 5.0], [6.5, 5.0], [10.0, 5.0],
                                [8.0, 5.0], [6.5, 5.0], [9.0, 5.0], [10.0, 5.0]]))
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    back = p.inverse_transform(p.snap_unexpressed(gen, labels))
    # Class 0: its two lowest gene-0 values (6.5 and 8) become unexpressed, the rest stay.
    np.testing.assert_allclose(back[:4, 0], [0.0, 9.0, 0.0, 10.0], atol=1e-4)
    np.testing.assert_allclose(back[4:, 0], [8.0, 6.5, 9.0, 10.0], atol=1e-4)  # class 1: none
    np.testing.assert_allclose(back[:, 1], 5.0, atol=1e-4)
    # Without labels only the floors apply; a floor-snapped value counts toward the share.
    np.testing.assert_allclose(p.inverse_transform(p.snap_unexpressed(gen))[:, 0],
                               [8.0, 9.0, 6.5, 10.0, 8.0, 6.5, 9.0, 10.0], atol=1e-4)
    low = gen.copy()
    low[3, 0] = p.transform(np.array([[2.0, 5.0]]))[0, 0]  # inside the gap: snapped anyway
    back = p.inverse_transform(p.snap_unexpressed(low, labels))
    np.testing.assert_allclose(back[:4, 0], [8.0, 9.0, 0.0, 0.0], atol=1e-4)
    with pytest.raises(GemdiffError, match="3 labels for 8 samples"):
        p.snap_unexpressed(gen, labels[:3])
    with pytest.raises(GemdiffError, match="class indices 0..1"):
        p.snap_unexpressed(gen, labels + 1)


def test_prepared_data_carries_class_zero_shares():
    gem = _gem()
    gem.values[:30, 0] = np.nan  # half of class "a" unexpressed in gene 0 (missing = 0)
    d = prepare_data(gem)
    share = np.asarray(d.preprocessor.zero_share)
    a = d.classes.index("a")
    assert 0.3 < share[a, 0] < 0.7 and share[1 - a, 0] == 0.0
    assert share.shape == (len(d.classes), d.n_genes)
    unexpressed = d.preprocessor.to_log2p1_scale(d.x_train) < 1e-6
    for k in range(len(d.classes)):
        np.testing.assert_allclose(share[k], unexpressed[d.y_train == k].mean(axis=0))


def test_snap_unexpressed_closes_each_genes_detection_gap():
    # Gene 0 has zeros and is detected from n = 3 up; gene 1 has no zeros; gene 2 never shows.
    x = np.array([[0.0, 2.0, 0.0], [3.0, 1.0, 0.0], [7.0, 5.0, 0.0]])
    p = Preprocessor(input_scale="linear").fit(x)
    np.testing.assert_allclose(p.gene_floor[0], 2.0)  # log2(3 + 1)
    assert np.isnan(p.gene_floor[1]) and np.isnan(p.gene_floor[2])
    gen = p.transform(np.array([[2.0, 0.8, 0.0], [3.5, 0.8, 0.0]]))  # log2(3) = 1.58 < 2
    snapped = p.inverse_transform(p.snap_unexpressed(gen))
    np.testing.assert_allclose(snapped[:, 0], [0.0, 3.5], atol=1e-5)  # in the gap -> zero
    np.testing.assert_allclose(snapped[:, 1], [0.8, 0.8], atol=1e-5)  # no gap: kept
    # Checkpoints from before the per-gene floors only know the global one.
    old = Preprocessor.from_state_dict({**p.state_dict(), "gene_floor": []})
    np.testing.assert_allclose(old.inverse_transform(old.snap_unexpressed(gen))[0, 0], 2.0,
                               atol=1e-5)
