"""The simulator plants what it says it plants."""

from __future__ import annotations

import numpy as np

from gemdiff.data.synthetic import simulate_gem


def test_drivers_shift_between_classes_and_others_do_not():
    sim = simulate_gem(n_samples=2000, n_genes=30, n_drivers=5, seed=3)
    gem = sim.gem
    assert gem.values.shape == (2000, 30) and set(gem.labels) == {"normal", "tumor"}
    a, b = gem.labels == "normal", gem.labels == "tumor"
    diff = np.nanmean(gem.values[b], 0) - np.nanmean(gem.values[a], 0)
    for g, shift in sim.shifts.items():
        assert abs(diff[gem.genes.index(g)] - shift) < 0.25
    others = [i for i, g in enumerate(gem.genes) if g not in sim.drivers]
    assert np.abs(diff[others]).max() < 0.3
    assert np.isnan(gem.values).any()  # unexpressed (missing) cells
    assert all(1.5 <= abs(s) <= 3.0 for s in sim.shifts.values())


def test_seeded():
    a, b = simulate_gem(seed=1), simulate_gem(seed=1)
    np.testing.assert_array_equal(a.gem.values, b.gem.values)
    assert a.drivers == b.drivers


def test_a_matrix_without_the_new_kinds_is_what_it_was():
    """The spread, rewired and batch kinds draw from a generator of their own: a matrix
    without them is unchanged, and adding them leaves the mean drivers where they were."""
    base = simulate_gem(n_samples=300, n_genes=40, seed=3)
    more = simulate_gem(n_samples=300, n_genes=40, seed=3, n_spread=3, n_rewired=3)
    assert base.drivers_of("mean") == more.drivers_of("mean") == sorted(base.shifts)
    assert set(more.drivers) == set(base.drivers) | set(more.drivers_of("spread")) | set(
        more.drivers_of("rewired"))
    same = [base.gem.genes.index(g) for g in base.gem.genes if g not in more.kinds
            or more.kinds[g] == "mean"]
    np.testing.assert_array_equal(base.gem.values[:, same], more.gem.values[:, same])


def _classes(sim):
    y = sim.gem.labels == "tumor"
    return sim.gem.values[~y], sim.gem.values[y]


def test_spread_drivers_change_their_sd_not_their_mean():
    sim = simulate_gem(n_samples=4000, n_genes=30, n_drivers=2, n_spread=3, spread_factor=2.5,
                       n_modules=3, frac_low=0.0, seed=1)
    a, b = _classes(sim)
    for g in sim.drivers_of("spread"):
        i = sim.gem.genes.index(g)
        assert abs(a[:, i].mean() - b[:, i].mean()) < 0.1
        assert b[:, i].std() > 1.2 * a[:, i].std()


def test_rewired_drivers_keep_their_marginals_but_leave_their_module():
    sim = simulate_gem(n_samples=4000, n_genes=30, n_drivers=2, n_rewired=3, n_modules=3,
                       frac_low=0.0, seed=2)
    a, b = _classes(sim)
    module_of = {g: name for name, members in sim.gene_sets.items() for g in members}
    for g in sim.drivers_of("rewired"):
        i = sim.gem.genes.index(g)
        assert abs(a[:, i].mean() - b[:, i].mean()) < 0.1
        assert abs(a[:, i].std() / b[:, i].std() - 1) < 0.08
        mates = [sim.gem.genes.index(m) for m in sim.gene_sets[module_of[g]]
                 if m != g and m not in sim.kinds]
        r_a, r_b = (np.mean([np.corrcoef(x[:, i], x[:, j])[0, 1] for j in mates]) for x in (a, b))
        assert r_a > 0.15 and abs(r_b) < 0.05


def test_the_batch_is_shared_unequally_and_shifts_genes():
    sim = simulate_gem(n_samples=2000, n_genes=20, batch_effect=1.0, batch_share=(0.1, 0.9),
                       frac_low=0.0, seed=4)
    y = sim.gem.labels == "tumor"
    assert abs(sim.batch[~y].mean() - 0.1) < 0.04 and abs(sim.batch[y].mean() - 0.9) < 0.04
    plain = simulate_gem(n_samples=2000, n_genes=20, frac_low=0.0, seed=4)
    offset = (sim.gem.values - plain.gem.values)[sim.batch == 1].mean(axis=0)
    assert np.abs(offset).max() > 0.3
    np.testing.assert_allclose((sim.gem.values - plain.gem.values)[sim.batch == 0], 0)
