"""Gaussian diffusion: noise schedules, the training loss, DDPM sampling and DDIM encode/decode.

The network is passed in as ``eps_fn(x_t, t, y) -> eps``; this class knows nothing of its
architecture. Notation follows the paper (and Ho et al. 2020, Song et al. 2021), with
``alpha_bar`` for the paper's alpha_t (the cumulative product of 1 - beta).

Schedules are computed in float64 and kept as float64 buffers; coefficients are cast to the
data's dtype only at use, so long DDIM encode/decode chains do not drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn

from gemdiff.common.choices import check_choice
from gemdiff.common.progress import progress_bar

Spacing = Literal["uniform", "logsnr"]
Solver = Literal["ddim", "dpm2"]
SOLVER_NAMES = {"ddim": "DDIM", "dpm2": "DPM-Solver++"}

Schedule = Literal["linear", "cosine"]
EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
CLEAN = -1  # level index of the data itself (alpha_bar = 1)


def make_betas(schedule: str, timesteps: int) -> np.ndarray:
    """beta_1..beta_T in float64.

    ``linear``: Ho et al. (1e-4 to 0.02 at T = 1000, rescaled for other T).
    ``cosine``: Nichol & Dhariwal, alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi / 2), s = 0.008,
    betas capped at 0.999.
    """
    check_choice("schedule", schedule, Schedule)
    if schedule == "linear":
        scale = 1000.0 / timesteps
        return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)
    s = 0.008
    f = lambda u: math.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return np.array([min(1 - f(i + 1) / f(i), 0.999) for i in range(timesteps)], dtype=np.float64)


@dataclass
class DiffusionOutput:
    """Result of a sampling, encoding or decoding run."""

    x: torch.Tensor  # (B, n_genes) final state
    levels: list[int] = field(default_factory=list)  # timestep of each recorded state (-1 = data)
    trajectory: list[torch.Tensor] = field(default_factory=list)  # recorded states, (B, n_genes)


PREDICTIONS = ("eps", "v")


class GaussianDiffusion(nn.Module):
    """The forward process q(x_t | x_0) and its learned reverse.

    Parameters
    ----------
    schedule
        ``linear`` or ``cosine``.
    timesteps
        T, the number of diffusion steps (1000 in the paper).
    clip_x0
        Clip each predicted x_0 to [-1, 1], the data's range, while sampling from noise (DDPM,
        and DDIM decoding from noise). Off by default: on expression data it pulls genes near
        the range's ends inward (``experiments/README.md``, baselines). DDIM encode/decode for
        perturbation never clips, so that it stays invertible.
    prediction
        What the network predicts: ``eps``, the noise (the paper's), or ``v`` = sqrt(alpha_bar)
        eps - sqrt(1 - alpha_bar) x_0 (Salimans & Ho 2022), whose loss weighs errors of the
        predicted x_0 by 1 + SNR instead of SNR, more at high noise levels. Samplers and the
        perturbation always see eps: :meth:`eps` converts.
    scale
        The data are multiplied by ``scale`` before they are diffused, and samples divided by it
        (Chen 2023, input scaling): the spread of a gene within a class, small against unit
        noise, then stays above the noise over more of the chain. Inputs and outputs of every
        method are in data units; only the latents of :meth:`ddim_encode` (and the ``x_t``
        given to :meth:`ddim_decode`) and the network's inputs are in diffused units.
    standardize
        Diffuse each gene standardised, (x - mean) / SD with the training data's mean and SD
        per gene (:meth:`fit_standardization`, before training; then times ``scale``), so that
        every gene has the unit variance of the noise (Karras et al. 2022 scale inputs to unit
        variance, TabDDPM standardises each column): on the data's shared min-max scale a gene
        varies by an SD of 0.05-0.3, and most of the chain is noise far larger than it.
    data_mean, data_sd
        The fitted per-gene mean and SD (kept in the checkpoint); None before fitting.
    calibration, calibration_levels
        The network's mean output error on the training data, a (levels, n_classes + 1,
        n_genes) table, and the timesteps of its rows: what
        :func:`gemdiff.models.calibration.calibrate` measures after training (kept in the
        checkpoint); None for none. :meth:`output_offset` reads it.
    """

    def __init__(self, schedule: str = "linear", timesteps: int = 1000, clip_x0: bool = False,
                 prediction: str = "eps", scale: float = 1.0, standardize: bool = False,
                 data_mean: torch.Tensor | None = None, data_sd: torch.Tensor | None = None,
                 calibration: torch.Tensor | None = None,
                 calibration_levels: torch.Tensor | None = None):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.prediction, self.scale = prediction, float(scale)
        self.schedule, self.timesteps, self.clip_x0 = schedule, timesteps, clip_x0
        betas = torch.from_numpy(make_betas(schedule, timesteps))
        alpha_bar = torch.cumprod(1.0 - betas, dim=0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        buffers = {
            "betas": betas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            # Posterior q(x_{t-1} | x_t, x_0): variance and the two coefficients of its mean.
            "posterior_var": betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar),
            "posterior_c0": betas * alpha_bar_prev.sqrt() / (1.0 - alpha_bar),
            "posterior_ct": (1.0 - alpha_bar_prev) * (1.0 - betas).sqrt() / (1.0 - alpha_bar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        self.register_buffer("calibration", None, persistent=False)
        self.register_buffer("calibration_levels", None, persistent=False)
        self.standardize = bool(standardize)
        # x_diffused = (x - shift) * gain: without standardisation 0 and ``scale``.
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64), persistent=False)
        self.register_buffer("gain", torch.tensor(self.scale, dtype=torch.float64),
                             persistent=False)
        if data_mean is not None:
            self.set_standardization(torch.as_tensor(data_mean), torch.as_tensor(data_sd))
        if calibration is not None:
            self.set_calibration(torch.as_tensor(calibration),
                                  torch.as_tensor(calibration_levels))

    def config(self) -> dict:
        out = {"schedule": self.schedule, "timesteps": self.timesteps, "clip_x0": self.clip_x0,
               "prediction": self.prediction, "scale": self.scale,
               "standardize": self.standardize}
        if self.standardize and self.shift.ndim:
            out.update(data_mean=self.shift.detach().cpu().clone(),
                       data_sd=(self.scale / self.gain).detach().cpu().clone())
        if self.calibration is not None:
            out.update(calibration=self.calibration.detach().cpu().clone(),
                       calibration_levels=self.calibration_levels.detach().cpu().clone())
        return out

    # ---- units ----------------------------------------------------------------------------

    def fit_standardization(self, x: np.ndarray | torch.Tensor) -> None:
        """With ``standardize``, take each gene's mean and SD from training data ``x``
        (samples x genes, data units); a gene with no spread keeps SD 1."""
        if not self.standardize:
            return
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        sd = x.std(dim=0, unbiased=False)
        self.set_standardization(x.mean(dim=0), torch.where(sd > 1e-8, sd, torch.ones_like(sd)))

    def set_standardization(self, mean: torch.Tensor, sd: torch.Tensor) -> None:
        if mean.ndim != 1 or mean.shape != sd.shape or not bool((sd > 0).all()):
            raise ValueError("a standardisation needs one mean and one positive SD per gene")
        device = self.gain.device
        self.shift = mean.to(device=device, dtype=torch.float64)
        self.gain = (self.scale / sd).to(device=device, dtype=torch.float64)

    def to_diffused(self, x: torch.Tensor) -> torch.Tensor:
        """Data units -> the units the chain runs in: (x - mean) / SD times ``scale``."""
        return (x - self.shift.to(x.dtype)) * self.gain.to(x.dtype)

    def from_diffused(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_diffused`."""
        return z / self.gain.to(z.dtype) + self.shift.to(z.dtype)

    def _clip_range(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The data's range [-1, 1] in diffused units, per gene."""
        ends = torch.tensor([-1.0, 1.0], dtype=like.dtype, device=like.device)[:, None]
        lo, hi = self.to_diffused(ends.expand(2, like.shape[-1]))
        return lo, hi

    # ---- calibration ----------------------------------------------------------------------

    def set_calibration(self, table: torch.Tensor, levels: torch.Tensor) -> None:
        levels = levels.to(torch.long)
        if table.ndim != 3 or levels.ndim != 1 or len(levels) != len(table) or len(levels) < 2 \
                or bool((levels[1:] <= levels[:-1]).any()) or int(levels[0]) != 0 \
                or int(levels[-1]) != self.timesteps - 1:
            raise ValueError(f"a calibration needs a (levels, classes + 1, genes) table and "
                             f"increasing levels from 0 to {self.timesteps - 1}")
        self.calibration = table.to(torch.float32)
        self.calibration_levels = levels

    def output_offset(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """The calibrated mean error of the network's output at each row's timestep and label
        (linear between measured levels; the "no class" row for labels past the classes and
        for ``y`` None), (B, n_genes); None without a calibration."""
        table = self.calibration
        if table is None:
            return None
        n_rows = table.shape[1]
        rows = torch.full_like(t, n_rows - 1) if y is None else y.clamp(max=n_rows - 1)
        levels = self.calibration_levels
        j = torch.searchsorted(levels, t).clamp(1, len(levels) - 1)
        lo, hi = levels[j - 1], levels[j]
        w = ((t - lo).to(table.dtype) / (hi - lo).to(table.dtype)).clamp(0.0, 1.0)[:, None]
        return (1.0 - w) * table[j - 1, rows] + w * table[j, rows]

    def eps(self, net: EpsFn, x_t: torch.Tensor, t: torch.Tensor,
            y: torch.Tensor | None) -> torch.Tensor:
        """The noise the network implies at (x_t, t): its output, or eps from a predicted v
        (eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v). Linear in the output, so a
        guided mixture of two outputs converts to the same mixture of their eps."""
        out = net(x_t, t, y)
        if self.prediction == "eps":
            return out
        ab = self._ab_rows(t, x_t)
        return (1.0 - ab).sqrt() * x_t + ab.sqrt() * out

    def _ab_rows(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar at each row's timestep, as a (B, 1) column of ``like``'s dtype."""
        return self.alpha_bar[t].to(like.dtype)[:, None]

    def _ab(self, level: int, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar at a level (``CLEAN`` = 1), as a scalar of ``like``'s dtype and device."""
        if level == CLEAN:
            return torch.ones((), dtype=like.dtype, device=like.device)
        return self.alpha_bar[level].to(like.dtype)

    # ---- training -----------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Eq. 3: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (x_0 in diffused
        units, :meth:`to_diffused`)."""
        ab = self._ab_rows(t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def loss(self, eps_fn: EpsFn, x0: torch.Tensor, y: torch.Tensor | None,
             t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 5, L_simple: E ||eps - eps_theta(x_t, t, y)||^2 with t ~ U{0..T-1} (or the
        same for v with ``prediction="v"``), on the data in diffused units
        (:meth:`to_diffused`)."""
        x0 = self.to_diffused(x0)
        if t is None:
            t = torch.randint(self.timesteps, (x0.shape[0],), device=x0.device)
        if noise is None:
            noise = torch.randn_like(x0)
        target = self.target(x0, t, noise)
        return torch.mean((target - eps_fn(self.q_sample(x0, t, noise), t, y)) ** 2)

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the network should output at x_t = q_sample(x0, t, noise): the noise, or v."""
        if self.prediction == "eps":
            return noise
        ab = self._ab_rows(t, x0)
        return ab.sqrt() * noise - (1.0 - ab).sqrt() * x0

    # ---- sampling -------------------------------------------------------------------------

    def predict_x0(self, x_t: torch.Tensor, level: int, eps: torch.Tensor) -> torch.Tensor:
        """Eq. 6: f_theta(x_t) = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        ab = self._ab(level, x_t)
        return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()

    def ddpm_step(self, eps_fn: EpsFn, x_t: torch.Tensor, t: int, y: torch.Tensor | None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Eqs. 6-7 there).

        (1) eps = eps_theta(x_t, t, y)
        (2) x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clipped to the
            data's range [-1, 1] (in diffused units) with ``clip_x0``
        (3) mu = c0_t x0_hat + ct_t x_t, the posterior mean of q(x_{t-1} | x_t, x0_hat)
        (4) x_{t-1} = mu + sqrt(beta_tilde_t) z, z ~ N(0, I), and no noise at t = 0
        """
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        eps = self.eps(eps_fn, x_t, tt, y)  # (1)
        x0 = self.predict_x0(x_t, t, eps)  # (2)
        if self.clip_x0:
            x0 = x0.clamp(*self._clip_range(x0))
        mean = self.posterior_c0[t].to(x_t.dtype) * x0 + self.posterior_ct[t].to(x_t.dtype) * x_t
        if t == 0:
            return mean
        z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + self.posterior_var[t].to(x_t.dtype).sqrt() * z  # (4)

    def ddpm_sample(self, eps_fn: EpsFn, y: torch.Tensor | None, shape: tuple[int, int],
                    generator: torch.Generator | None = None, device=None,
                    progress: bool = False) -> DiffusionOutput:
        """Ancestral sampling from x_T ~ N(0, I) through all T steps; samples in data units."""
        x = torch.randn(shape, generator=generator, device=device)
        for t in progress_bar(range(self.timesteps - 1, -1, -1), progress, "DDPM sampling"):
            x = self.ddpm_step(eps_fn, x, t, y, generator)
        return DiffusionOutput(self.from_diffused(x))

    def ddim_levels(self, steps: int | None = None, t_end: int | None = None,
                    spacing: str = "uniform") -> list[int]:
        """Levels of a DDIM chain: ``CLEAN``, then ``steps`` timesteps from 0 to ``t_end``,
        evenly in t (``uniform``) or in log-SNR (``logsnr``: denser near the data, where the
        signal-to-noise ratio changes fastest; duplicates merged, so possibly fewer).

        ``t_end`` defaults to T - 1, the last level; ``steps`` defaults to every level up to it.
        """
        t_end = self.timesteps - 1 if t_end is None else int(t_end)
        if not 0 <= t_end < self.timesteps:
            raise ValueError(f"t_end={t_end} must lie in [0, {self.timesteps - 1}]")
        steps = t_end + 1 if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"DDIM steps must be at least 1, got {steps}")
        check_choice("spacing", spacing, Spacing)
        if spacing == "logsnr" and steps < t_end + 1:
            ab = self.alpha_bar.double().numpy()[: t_end + 1]
            log_snr = np.log(ab / (1.0 - ab))  # decreasing in t
            wanted = np.linspace(log_snr[0], log_snr[-1], steps)
            grid = np.unique(np.searchsorted(-log_snr, -wanted).clip(0, t_end))
        else:
            grid = np.unique(np.round(np.linspace(0, t_end, min(steps, t_end + 1))).astype(int))
        return [CLEAN] + grid.tolist()

    def ddim_step(
        self, x: torch.Tensor, eps: torch.Tensor, level: int, next_level: int,
        clip_x0: bool = False,
    ) -> torch.Tensor:
        """Deterministic DDIM move between two levels (eta = 0), up (encode) or down (decode).

        (1) x0_hat = (x_s - sqrt(1 - alpha_bar_s) eps) / sqrt(alpha_bar_s)          [Eq. 6]
        (2) x_s' = sqrt(alpha_bar_s') x0_hat + sqrt(1 - alpha_bar_s') eps      [Eq. 7, sigma = 0]
        """
        x0 = self.predict_x0(x, level, eps)  # (1)
        if clip_x0:
            ab = self._ab(level, x)
            x0 = x0.clamp(*self._clip_range(x0))
            eps = (x - ab.sqrt() * x0) / (1.0 - ab).sqrt()
        ab_next = self._ab(next_level, x)
        return ab_next.sqrt() * x0 + (1.0 - ab_next).sqrt() * eps  # (2)

    def _lambda(self, level: int) -> float:
        """log(alpha / sigma) at a level: the time variable of DPM-Solver (inf at the data)."""
        if level == CLEAN:
            return math.inf
        ab = float(self.alpha_bar[level])
        return 0.5 * math.log(ab / (1.0 - ab))

    def dpm2_step(self, x: torch.Tensor, x0: torch.Tensor, level: int, next_level: int,
                  prev_x0: torch.Tensor, prev_level: int) -> torch.Tensor:
        """A second-order multistep move (DPM-Solver++(2M), Lu et al. 2022, Alg. 2), up or
        down: the data prediction ``x0`` at ``level`` corrected by the previous one.

        h = lambda' - lambda, r = (lambda - lambda_prev) / h, D = x0 + (x0 - x0_prev) / (2 r),
        x' = (sigma' / sigma) x - alpha' (exp(-h) - 1) D

        With D = x0 this is the DDIM step; both levels must be noisy (sigma > 0)."""
        lam, lam_next, lam_prev = (self._lambda(v) for v in (level, next_level, prev_level))
        h = lam_next - lam
        r = (lam - lam_prev) / h
        d = x0 + (x0 - prev_x0) / (2.0 * r)
        ab, ab_next = self._ab(level, x), self._ab(next_level, x)
        return ((1.0 - ab_next) / (1.0 - ab)).sqrt() * x - ab_next.sqrt() * math.expm1(-h) * d

    def _ddim_chain(self, eps_fn: EpsFn, x: torch.Tensor, y: torch.Tensor | None,
                    path: list[int], record: int, desc: str, progress: bool,
                    clip_x0: bool = False, solver: str = "ddim") -> DiffusionOutput:
        check_choice("solver", solver, Solver)
        out = DiffusionOutput(x)
        every = max(1, (len(path) - 1) // record) if record else 0
        if record:  # recorded states in data units
            out.levels.append(path[0])
            out.trajectory.append(self.from_diffused(x))
        tt = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        prev: tuple[torch.Tensor, int] | None = None  # the last noisy level's x0 (dpm2)
        for i in progress_bar(range(len(path) - 1), progress, desc):
            level, next_level = path[i], path[i + 1]
            # The network is evaluated at the current level; at the data level (alpha_bar = 1)
            # it is asked at t = 0, the nearest level it was trained on.
            eps = self.eps(eps_fn, x, tt.fill_(max(level, 0)), y)
            if solver == "dpm2" and prev is not None and CLEAN not in (level, next_level):
                x0 = self.predict_x0(x, level, eps)
                if clip_x0:
                    x0 = x0.clamp(*self._clip_range(x0))
                x_next = self.dpm2_step(x, x0, level, next_level, *prev)
                prev = (x0, level)
            else:  # DDIM, and the first and last moves of dpm2 (one end is the data)
                if solver == "dpm2" and level != CLEAN:
                    prev = (self.predict_x0(x, level, eps), level)
                x_next = self.ddim_step(x, eps, level, next_level, clip_x0)
            x = x_next
            if record and ((i + 1) % every == 0 or i + 1 == len(path) - 1):
                out.levels.append(next_level)
                out.trajectory.append(self.from_diffused(x))
        out.x = x
        return out

    def ddim_encode(self, eps_fn: EpsFn, x0: torch.Tensor, y: torch.Tensor | None,
                    steps: int | None = None, t_end: int | None = None, record: int = 0,
                    progress: bool = False, solver: str = "ddim",
                    spacing: str = "uniform") -> DiffusionOutput:
        """Deterministic encoding x_0 -> x_{t_end} (the ODE run forward, Eq. 8 first line); the
        latent ``x`` it returns is in diffused units, as :meth:`ddim_decode` takes it.
        ``solver``: ``ddim`` (first order) or ``dpm2`` (DPM-Solver++(2M), second order: the
        same ODE with fewer steps); ``spacing`` of the levels (:meth:`ddim_levels`)."""
        path = self.ddim_levels(steps, t_end, spacing)
        return self._ddim_chain(eps_fn, self.to_diffused(x0), y, path, record,
                                f"{SOLVER_NAMES.get(solver, solver)} encode", progress,
                                solver=solver)

    def ddim_decode(self, eps_fn: EpsFn, x_t: torch.Tensor, y: torch.Tensor | None,
                    steps: int | None = None, t_end: int | None = None, record: int = 0,
                    progress: bool = False, clip_x0: bool = False,
                    solver: str = "ddim", spacing: str = "uniform") -> DiffusionOutput:
        """Deterministic decoding x_{t_end} -> x_0 (Eq. 8 second line); the inverse of encode.

        ``clip_x0`` clips each predicted x_0 to the data's range (and re-derives eps from it):
        right for sampling from noise, wrong for inversion, which must stay exactly invertible.
        """
        path = self.ddim_levels(steps, t_end, spacing)[::-1]
        out = self._ddim_chain(eps_fn, x_t, y, path, record,
                               f"{SOLVER_NAMES.get(solver, solver)} decode", progress, clip_x0,
                               solver)
        out.x = self.from_diffused(out.x)
        return out

