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
