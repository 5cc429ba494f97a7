"""Sampler calibration: the network's mean output error on its training data, per noise level,
class and gene, measured after training and removed while sampling and perturbing.

The exact noise predictor satisfies E[eps_theta(x_t, t, y) | y] = E[eps] = 0 at every t, over
x_0 of class y and the noise (Tweedie's formula: its x_0 prediction averages to the class's
mean), and likewise for v. A trained network misses this by a small amount per gene, which the
sampler adds up over its steps into each gene's class mean. :func:`calibrate` measures the miss
and stores it in the diffusion (:meth:`GaussianDiffusion.set_calibration`), whose
:meth:`~GaussianDiffusion.output_offset` gives it back at any timestep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gemdiff.common.progress import progress_bar
from gemdiff.models.diffusion import EpsFn, GaussianDiffusion


@dataclass(frozen=True)
class CalibrationOptions:
    """``calibrate.*`` of the training config.

    ``rows``: noise draws per class and level (0: no calibration); ``levels``: timesteps
    measured, evenly over 0..T-1; ``shrink``: shrink each level's per-gene estimates toward 0 by
    their own sampling noise; ``seed`` of the draws; ``device`` it runs on (``auto``: a CUDA GPU
    where there is one, :func:`gemdiff.common.devices.resolve_device`).
    """

    rows: int = 320
    levels: int = 21
    shrink: bool = True
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.rows < 0 or self.levels < 2:
            raise ValueError(f"calibration needs rows >= 0 and levels >= 2, got {self.rows} "
                             f"and {self.levels}")


def shrunk(means: torch.Tensor, var_mean: torch.Tensor) -> torch.Tensor:
    """Empirical-Bayes shrinkage of per-gene mean estimates toward 0: with a N(0, tau^2) prior
    over genes and each estimate's own sampling variance s^2, the posterior mean is
    m tau^2 / (tau^2 + s^2), tau^2 the genes' mean of m^2 - s^2 (at least 0). Per leading
    index (label row, class): ``means``, ``var_mean`` are (..., n_genes)."""
    tau2 = (means ** 2 - var_mean).mean(-1, keepdim=True).clamp(min=0)
    return means * tau2 / (tau2 + var_mean).clamp(min=1e-30)


def _rows_per_class(y: torch.Tensor, n_classes: int, rows: int,
                    gen: torch.Generator) -> torch.Tensor:
    """Indices of the samples each level is measured on: round(rows / (2 n)) antithetic pairs
    for each of a class's n samples, at least one; a class of more than rows / 2 samples is
    measured on rows / 2 of them, drawn at random."""
    picked = []
    for c in range(n_classes):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) > max(1, rows // 2):
            idx = idx[torch.randperm(len(idx), generator=gen, device=y.device)[:rows // 2]]
        picked.append(idx.repeat(max(1, round(rows / (2 * len(idx))))))
    return torch.cat(picked)


def _pair_error_sums(diffusion: GaussianDiffusion, net: EpsFn, xs: torch.Tensor,
                     ys: torch.Tensor, t: int, n_classes: int, null: int | None,
                     gen: torch.Generator, batch_rows: int) -> torch.Tensor:
    """Sums and sums of squares of each antithetic pair's mean output error at timestep ``t``,
    (2 label rows: the sample's class and "no class"; 2: sum and sum of squares; classes;
    genes)."""
    sums = torch.zeros(2, 2, n_classes, xs.shape[1], dtype=torch.float64, device=xs.device)
    half = max(1, batch_rows // 2)
    for start in range(0, len(xs), half):
        xb, yb = xs[start:start + half], ys[start:start + half]
        # Antithetic draws: each noise and its negative, whose errors nearly cancel at low
        # noise levels.
        noise = torch.randn(xb.shape, generator=gen, device=xs.device)
        x2, y2, n2 = torch.cat([xb, xb]), torch.cat([yb, yb]), torch.cat([noise, -noise])
        tt = torch.full((len(x2),), t, dtype=torch.long, device=xs.device)
        x_t, target = diffusion.q_sample(x2, tt, n2), diffusion.target(x2, tt, n2)
        labels = [(1, None)] if null is None else [(0, y2), (1, torch.full_like(y2, null))]
        for row, lab in labels:
            err = (net(x_t, tt, lab) - target).double()
            pair = 0.5 * (err[:len(xb)] + err[len(xb):])
            sums[row, 0].index_add_(0, yb, pair)
            sums[row, 1].index_add_(0, yb, pair ** 2)
    return sums


@torch.no_grad()
def calibrate(diffusion: GaussianDiffusion, net: EpsFn, x: torch.Tensor, y: torch.Tensor,
              n_classes: int, null: int | None, options: CalibrationOptions = CalibrationOptions(),
              batch_rows: int = 16384, progress: bool = False) -> None:
    """Measure ``net``'s mean output error on training data ``x`` (data units), ``y`` per
    level, class and gene, and set it as ``diffusion``'s calibration.

    The "no class" label ``null`` gets the last row: the classes' errors with that label
    weighted by their share of the samples (None for an unconditional network, whose rows are
    all that one). With ``options.shrink`` each level's estimates are shrunk toward 0 by their
    own sampling noise, estimated from the spread of the pairs (:func:`shrunk`): where the
    network's errors are no larger than that noise the table holds ~0 there instead of noise.
    """
    x = torch.as_tensor(x, dtype=torch.float32, device=diffusion.betas.device)
    x = diffusion.to_diffused(x)
    y = torch.as_tensor(y, dtype=torch.long, device=x.device)
    counts = torch.bincount(y, minlength=n_classes)
    if len(counts) > n_classes or bool((counts == 0).any()):
        raise ValueError(f"calibration needs training samples of all {n_classes} classes, "
                         f"got counts {counts.tolist()}")
    gen = torch.Generator(device=x.device).manual_seed(options.seed)
    sel = _rows_per_class(y, n_classes, options.rows, gen)
    xs, ys = x[sel], y[sel]
    n_pairs = torch.bincount(ys, minlength=n_classes).to(torch.float64)[:, None]
    share = (counts / counts.sum()).to(torch.float64)[:, None]
    grid = diffusion.ddim_levels(max(2, options.levels))[1:]  # evenly over 0..T-1
    table = torch.zeros(len(grid), n_classes + 1, x.shape[1], dtype=torch.float64,
                        device=x.device)
    for i in progress_bar(range(len(grid)), progress, "calibrating"):
        sums = _pair_error_sums(diffusion, net, xs, ys, grid[i], n_classes, null, gen,
                                batch_rows)
        means = sums[:, 0] / n_pairs
        var_mean = (sums[:, 1] / n_pairs - means ** 2).clamp(min=0) / (n_pairs - 1).clamp(min=1)
        if options.shrink:
            means = shrunk(means, var_mean)
        table[i, -1] = (share * means[1]).sum(0)
        table[i, :n_classes] = means[0] if null is not None else table[i, -1]
    diffusion.set_calibration(table, torch.tensor(grid))
