"""A simulator of a two-phenotype gene expression matrix with known driver genes.

Values are on the log2 scale of the GEMDiff example (log2 expression; a missing cell is an
unexpressed gene), so the simulated matrix goes through exactly the preprocessing of real data.

Model, for sample s of class c and gene g::

    x[s, g] = mu[g] + shift[g] * (c == "tumor") + load[g] * f[s, module(g)] + sd[g] * e[s, g]

- ``mu``: baseline expression, log2 units;
- ``f``: one standard-normal factor per sample and gene module, so genes of a module co-vary;
- ``sd``: heteroscedastic noise, larger for lowly expressed genes (as in RNA-seq);
- ``shift``: nonzero only for the planted driver genes (up or down in the second class);
- lowly expressed genes drop out (unexpressed, written as missing) at random.

Two more kinds of driver, which a test of means cannot see, and a confounder:

- spread drivers: in the second class the gene's own noise SD is ``spread_factor`` times
  larger, its mean unchanged;
- rewired drivers: in the second class the gene follows a factor of its own instead of its
  module's (same loading), so its mean and SD are those of the first class while its
  correlation with the module is gone;
- a batch (like TCGA against GTEx): each sample is in batch 1 with a probability that depends
  on its class (``batch_share``), and batch 1 shifts every gene by its own N(0,
  ``batch_effect``) offset.

These are drawn from a generator of their own, after the draws above, so a matrix without
them is the same as before they existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemdiff.data.io import GEM


@dataclass
class SyntheticGEM:
    """A simulated matrix and its ground truth."""

    gem: GEM
    drivers: list[str]
    shifts: dict[str, float]  # driver -> mean change (log2 units), first class to second
    gene_sets: dict[str, list[str]]  # MODULE_<k> -> the genes of module k (a GMT-like library)
    kinds: dict[str, str] | None = None  # driver -> "mean", "spread" or "rewired"
    batch: np.ndarray | None = None  # (n_samples,) 0/1 batch of each sample; None without

    def drivers_of(self, kind: str) -> list[str]:
        """The drivers of one kind: ``mean``, ``spread`` or ``rewired``."""
        return [g for g, k in (self.kinds or {}).items() if k == kind]


def simulate_gem(
    n_samples: int = 600,
    n_genes: int = 32,
    n_drivers: int = 6,
    n_modules: int = 4,
    frac_second: float = 0.6,
    effect: tuple[float, float] = (1.5, 3.0),
    frac_low: float = 0.15,
    dropout: float = 0.3,
    classes: tuple[str, str] = ("normal", "tumor"),
    drivers_in_module: bool = False,
    seed: int = 0,
    n_spread: int = 0,
    spread_factor: float = 2.0,
    n_rewired: int = 0,
    batch_effect: float = 0.0,
    batch_share: tuple[float, float] = (0.2, 0.8),
) -> SyntheticGEM:
    """Simulate a two-class GEM (samples x genes, log2 scale) with planted drivers.

    Parameters
    ----------
    n_samples, n_genes
        Matrix size.
    n_drivers
        Genes whose mean shifts between the classes, by ``U(effect)`` log2 units, up or down.
    n_modules
        Correlated gene modules (factor loadings 0.4 to 0.9).
    frac_second
        Share of samples in the second class (``classes[1]``).
    frac_low, dropout
        Share of lowly expressed genes, and the chance that such a cell is unexpressed.
    drivers_in_module
        Draw every driver from module 1 (a pathway that changes between the phenotypes, for
        gene-set screening) instead of from all genes.
    seed
        Everything is drawn from one generator seeded here.
    n_spread, spread_factor
        Genes whose noise SD is ``spread_factor`` times larger in the second class (mean
        unchanged).
    n_rewired
        Genes that leave their module in the second class (same mean and SD; no correlation
        with the module's other genes there).
    batch_effect, batch_share
        SD of the per-gene offset of batch 1 (0: no batch), and each class's probability of a
        sample being in batch 1.
    """
    if n_drivers > n_genes:
        raise ValueError(f"n_drivers={n_drivers} exceeds n_genes={n_genes}")
    rng = np.random.default_rng(seed)
    genes = [f"GENE{i + 1:0{len(str(n_genes))}d}" for i in range(n_genes)]
    samples = [f"SAMPLE{i + 1:0{len(str(n_samples))}d}" for i in range(n_samples)]

    n_second = int(round(frac_second * n_samples))
    y = np.zeros(n_samples, dtype=int)
    y[rng.choice(n_samples, size=n_second, replace=False)] = 1

    low = rng.random(n_genes) < frac_low
    mu = np.where(low, rng.uniform(-1.0, 1.0, n_genes), rng.uniform(2.0, 10.0, n_genes))
    sd = 0.25 + 0.8 * np.exp(-np.clip(mu, 0, None) / 3.0)
    module = rng.integers(0, n_modules, n_genes)
    load = rng.uniform(0.4, 0.9, n_genes)

    pool = np.flatnonzero(~low & (module == 0)) if drivers_in_module else np.flatnonzero(~low)
    if len(pool) < n_drivers:
        pool = np.flatnonzero(module == 0) if drivers_in_module else np.arange(n_genes)
    if len(pool) < n_drivers:
        raise ValueError(f"module 1 has {len(pool)} genes, fewer than n_drivers={n_drivers}")
    driver_idx = np.sort(rng.choice(pool, size=n_drivers, replace=False))
    shift = np.zeros(n_genes)
    shift[driver_idx] = rng.uniform(*effect, n_drivers) * rng.choice([-1.0, 1.0], n_drivers)

    factors = rng.standard_normal((n_samples, n_modules))  # (n_samples, n_modules)
    noise = rng.standard_normal((n_samples, n_genes))
    x = mu + shift * y[:, None] + load * factors[:, module] + sd * noise
    missing = (rng.random(x.shape) < dropout) & low

    extra = np.random.default_rng([seed, 1])  # the other kinds: draws of their own
    kinds = {i: "mean" for i in driver_idx}
    free = np.setdiff1d(np.flatnonzero(~low), driver_idx)
    if n_spread + n_rewired > len(free):
        raise ValueError(f"n_spread + n_rewired = {n_spread + n_rewired} exceeds the "
                         f"{len(free)} expressed genes that are not mean drivers")
    chosen = extra.choice(free, size=n_spread + n_rewired, replace=False)
    second = y == 1
    for i in chosen[:n_spread]:
        x[second, i] += (spread_factor - 1.0) * sd[i] * noise[second, i]
        kinds[i] = "spread"
    for i in chosen[n_spread:]:
        own = extra.standard_normal(int(second.sum()))
        x[second, i] += load[i] * (own - factors[second, module[i]])
        kinds[i] = "rewired"
    batch = None
    if batch_effect > 0:
        batch = (extra.random(n_samples) < np.asarray(batch_share, dtype=float)[y]).astype(int)
        x += batch[:, None] * extra.normal(0.0, batch_effect, n_genes)
    x[missing] = np.nan

    labels = np.array([classes[i] for i in y])
    drivers = [genes[i] for i in sorted(kinds)]
    sets = {f"MODULE_{k + 1}": [genes[i] for i in np.flatnonzero(module == k)]
            for k in range(n_modules)}
    named = {genes[i]: k for i, k in sorted(kinds.items())}
    meta = {"drivers": drivers, "gene_sets": sets, "driver_kinds": named}
    if batch is not None:
        meta["batch"] = batch
    gem = GEM(x, samples, genes, labels, source="synthetic", meta=meta)
    return SyntheticGEM(gem, drivers, {genes[i]: float(shift[i]) for i in driver_idx}, sets,
                        named, batch)
