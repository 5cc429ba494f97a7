"""One interface for every trained generator of expression: GEMDiff and the baselines.

A :class:`Generator` draws samples of given classes and, where it can, carries samples of one
class to another (the bridge of Algorithm 1), both in the model's scaled [-1, 1] units. Each
kind is registered under the name its checkpoints carry (``kind``) and rebuilt from a
checkpoint by that name alone (:func:`generator_from_checkpoint`); nothing outside this module
and the generators themselves looks at the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from gemdiff.common.choices import check_choice
from gemdiff.common.devices import autocast, check_precision, resolve_device
from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.models.calibration import CalibrationOptions, calibrate
from gemdiff.models.denoiser import DenoiserConfig, build_denoiser
from gemdiff.models.diffusion import DiffusionOutput, GaussianDiffusion

Sampler = Literal["ddpm", "ddim", "dpm2"]


@dataclass(frozen=True)
class SampleOptions:
    """How a diffusion model draws samples (baselines draw from their own sampler).

    ``sampler``: ``ddpm`` (all T ancestral steps, the paper's), ``dpm2`` (deterministic,
    DPM-Solver++(2M) over ``ddim_steps`` levels even in log-SNR, as the bridge's default;
    ``ddim_steps`` None: 25) or ``ddim`` (deterministic, levels even in t; None: 100, fewer
    narrow the samples); ``guidance``: classifier-free guidance scale, 1 the plain conditional
    model; samples are drawn ``batch_size`` at a time on ``device`` (``auto``: a CUDA GPU
    where there is one) in ``precision`` (``32``, or ``bf16`` autocast of the network;
    :mod:`gemdiff.common.devices`). The same seed gives the
    same samples on one kind of device; a GPU's random numbers differ from the CPU's.
    """

    sampler: str = "ddpm"
    ddim_steps: int | None = None
    guidance: float = 1.0
    batch_size: int = 4096
    progress: bool = False
    device: str = "auto"
    precision: str = "32"

    def __post_init__(self):
        check_choice("sampler", self.sampler, Sampler)
        if self.ddim_steps is None:
            object.__setattr__(self, "ddim_steps", 25 if self.sampler == "dpm2" else 100)
        object.__setattr__(self, "precision", check_precision(self.precision))
        if self.ddim_steps < 1 or self.batch_size < 1:
            raise GemdiffError(f"ddim_steps and batch_size must be at least 1, got "
                               f"{self.ddim_steps} and {self.batch_size}")


@dataclass(frozen=True)
class BridgeOptions:
    """Algorithm 1's settings: ``ddim_steps`` each way (25 second-order steps on levels even
    in log-SNR match the paper's 250 DDIM steps; ``solver="ddim", spacing="uniform",
    ddim_steps=250`` is the paper's bridge), the bridge's last level ``t_end``
    (T - 1 is the full chain), classifier-free ``guidance`` on the decode, ``record``
    intermediate states per direction, and ``cycle``: also decode with the source label, on
    ``cycle_samples`` of them (a fixed, seeded draw; the check needs no more, and the third
    pass over every sample cost half again the bridge's network calls); ``device`` and
    ``precision`` as for :class:`SampleOptions`."""

    ddim_steps: int = 25
    t_end: int = 990
    guidance: float = 1.0
    record: int = 0
    cycle: bool = True
    progress: bool = False
    cycle_samples: int | None = 64  # the cycle check on this many samples (seeded); None: all
    solver: str = "dpm2"  # DPM-Solver++(2M), second order; ddim: first order (the paper's)
    spacing: str = "logsnr"  # the levels evenly in log-SNR; uniform: evenly in t
    device: str = "auto"
    precision: str = "32"

    def __post_init__(self):
        object.__setattr__(self, "precision", check_precision(self.precision))


@dataclass
class Perturbation:
    """Source samples and what a map made of them (scaled units)."""

    x_source: np.ndarray  # (n, n_genes)
    x_moved: np.ndarray  # carried to the target class
    x_cycle: np.ndarray | None = None  # encoded and decoded with the source label (bridge)
    encode: DiffusionOutput | None = None  # recorded states of the bridge
    decode: DiffusionOutput | None = None
    cycle_index: np.ndarray | None = None  # the rows of x_source that x_cycle holds (all: None)


def cycle_rows(n: int, limit: int | None) -> np.ndarray:
    """The rows the cycle check runs on: all ``n``, or a seeded draw of ``limit``, sorted."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=limit, replace=False))


class Generator:
    """A trained generator: what sampling, perturbation and checkpoints need of a model."""

    kind: ClassVar[str]

    def sample(self, labels: np.ndarray, seed: int = 0,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        """One sample per class index in ``labels``, (n, n_genes) float32, reproducible for a
        seed."""
        raise NotImplementedError

    def describe_sampling(self, options: SampleOptions) -> dict[str, Any]:
        """What of ``options`` this kind of generator uses, for the record of a result."""
        return {"sampler": self.kind}

    def bridge(self, x: np.ndarray, source: int, target: int,
               options: BridgeOptions = BridgeOptions()) -> Perturbation:
        """Carry samples ``x`` of class ``source`` to class ``target`` (Algorithm 1)."""
        raise GemdiffError(f"the bridge (map=bridge) needs a diffusion model; this is a "
                           f"{self.kind} baseline: use map=mean_shift or map=ot")

    def calibrate(self, x: np.ndarray, y: np.ndarray, n_classes: int,
                  options: CalibrationOptions, progress: bool = False) -> bool:
        """Measure and keep the sampler's calibration on training data ``x``, ``y`` (class
        indices below ``n_classes``); False where the kind has none."""
        return False

    def shape(self) -> tuple[int, int]:
        """(genes, classes) the model was built for; 0 classes for an unconditional model."""
        raise NotImplementedError

    def network(self) -> dict[str, Any]:
        """The arguments of the trained network, which a resumed run must match."""
        return {}

    def checkpoint_section(self) -> dict[str, Any]:
        """What the checkpoint's ``gemdiff`` section holds of this kind besides the weights."""
        raise NotImplementedError

    @classmethod
    def from_checkpoint(cls, section: dict[str, Any],
                        state: dict[str, torch.Tensor]) -> "Generator":
        raise NotImplementedError


class DiffusionGenerator(Generator):
    """GEMDiff: the transformer noise predictor and the Gaussian diffusion it was trained in."""

    kind = "diffusion"

    def __init__(self, denoiser: torch.nn.Module, diffusion: GaussianDiffusion):
        self.denoiser, self.diffusion = denoiser, diffusion

    def shape(self) -> tuple[int, int]:
        return self.denoiser.config.n_genes, self.denoiser.config.n_classes

    def to(self, device: str | torch.device = "auto") -> torch.device:
        """Move the network and the diffusion's tables to ``device`` (they stay there for the
        next call); returns the device."""
        dev = resolve_device(device)
        self.denoiser.to(dev)
        self.diffusion.to(dev)
        return dev

    def eps_fn(self, guidance: float = 1.0):
        """The noise predictor as ``eps(x_t, t, y)``, with classifier-free guidance.

        ``guidance`` w gives eps_uncond + w (eps_cond - eps_uncond): 1 is the plain conditional
        model, larger values push samples further toward the class. Both predictions come from
        one batched forward pass. A calibrated model (the training default) has each
        prediction's mean error on the training data removed first
        (:mod:`gemdiff.models.calibration`).
        """
        net, diffusion = self.denoiser, self.diffusion
        if diffusion.calibration is not None:
            raw = net

            def net(x, t, y):
                return raw(x, t, y) - diffusion.output_offset(t, y).to(x.dtype)

        if guidance == 1.0 or self.denoiser.class_emb is None:
            return net

        def guided(x, t, y):
            null = torch.full_like(y, self.denoiser.null_class)
            eps = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
            cond, uncond = eps.chunk(2)
            return uncond + guidance * (cond - uncond)

        return guided

    def sample(self, labels: np.ndarray, seed: int = 0,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        """DDPM or DDIM samples, in batches. They end clamped to the data's range [-1, 1]:
        unclipped steps (``diffusion.clip_x0=false``) leave a trained model's samples within a
        few tenths of it, but a briefly trained one can land far outside, where the expression
        they stand for is meaningless."""
        dev = self.to(options.device)
        gen = torch.Generator(device=dev).manual_seed(seed)
        eps_fn = self.eps_fn(options.guidance)
        d, out = self.diffusion, []
        with torch.inference_mode(), autocast(dev, options.precision):
            for start in range(0, len(labels), options.batch_size):
                y = torch.from_numpy(np.asarray(labels[start:start + options.batch_size]))
                y = y.to(dev)
                shape = (len(y), self.denoiser.config.n_genes)
                if options.sampler == "ddpm":
                    x = d.ddpm_sample(eps_fn, y, shape, generator=gen, device=dev,
                                      progress=options.progress).x
                else:
                    noise = torch.randn(shape, generator=gen, device=dev)
                    second = options.sampler == "dpm2"
                    x = d.ddim_decode(eps_fn, noise, y, steps=options.ddim_steps,
                                      progress=options.progress, clip_x0=d.clip_x0,
                                      solver="dpm2" if second else "ddim",
                                      spacing="logsnr" if second else "uniform").x
                out.append(x.float().clamp(-1.0, 1.0).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.denoiser.config.n_genes),
                                                        np.float32)

    def describe_sampling(self, options: SampleOptions) -> dict[str, Any]:
        out = {"sampler": options.sampler, "guidance": options.guidance,
               "device": str(resolve_device(options.device)), "precision": options.precision}
        return out | ({"ddim_steps": options.ddim_steps} if options.sampler != "ddpm" else {})

    def bridge(self, x: np.ndarray, source: int, target: int,
               options: BridgeOptions = BridgeOptions()) -> Perturbation:
        """Algorithm 1: DDIM-encode with the source label to ``t_end``, decode with the target
        label (and, with ``cycle``, with the source label again)."""
        d, o = self.diffusion, options
        if not 1 <= o.t_end <= d.timesteps - 1:
            raise GemdiffError(f"t_end={o.t_end}: must lie in 1..{d.timesteps - 1} for this "
                               f"model (T = {d.timesteps} diffusion steps)")
        if o.ddim_steps < 1:
            raise GemdiffError(f"ddim_steps={o.ddim_steps}: must be at least 1")
        dev = self.to(o.device)
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
        y_src = torch.full((len(xt),), source, dtype=torch.long, device=dev)
        y_tgt = torch.full((len(xt),), target, dtype=torch.long, device=dev)
        with torch.inference_mode(), autocast(dev, o.precision):
            plain = self.eps_fn()
            how = {"solver": o.solver, "spacing": o.spacing}
            enc = d.ddim_encode(plain, xt, y_src, o.ddim_steps, o.t_end, o.record, o.progress,
                                **how)
            dec = d.ddim_decode(self.eps_fn(o.guidance), enc.x, y_tgt, o.ddim_steps, o.t_end,
                                o.record, o.progress, **how)
            rows = cycle_rows(len(xt), o.cycle_samples) if o.cycle else None
            cyc = d.ddim_decode(plain, enc.x[rows], y_src[rows], o.ddim_steps, o.t_end, 0,
                                o.progress, **how) if o.cycle else None
        return Perturbation(np.asarray(x), _numpy(dec.x), None if cyc is None else _numpy(cyc.x),
                            _on_cpu(enc), _on_cpu(dec), rows)

    def calibrate(self, x: np.ndarray, y: np.ndarray, n_classes: int,
                  options: CalibrationOptions, progress: bool = False) -> bool:
        net = self.denoiser
        null = net.null_class if net.class_emb is not None else None
        self.to(options.device)
        calibrate(self.diffusion, net, x, y, n_classes, null, options, progress=progress)
        return True

    def network(self) -> dict[str, Any]:
        return self.denoiser.config.to_dict()

    def checkpoint_section(self) -> dict[str, Any]:
        return {"denoiser": self.denoiser.config.to_dict(), "diffusion": self.diffusion.config()}

    @classmethod
    def from_checkpoint(cls, section: dict[str, Any],
                        state: dict[str, torch.Tensor]) -> "DiffusionGenerator":
        denoiser = build_denoiser(DenoiserConfig(**section["denoiser"]))
        denoiser.load_state_dict(prefixed(state, "denoiser."))
        return cls(denoiser.eval(), GaussianDiffusion(**section["diffusion"]))


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def _on_cpu(out: DiffusionOutput) -> DiffusionOutput:
    """A chain's result with its states in float32 on the CPU, where results are read."""
    return DiffusionOutput(out.x.float().cpu(), list(out.levels),
                           [s.float().cpu() for s in out.trajectory])


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a state dict under ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def registry() -> dict[str, type[Generator]]:
    """Every generator kind by the name its checkpoints carry."""
    from gemdiff.models.baselines import CopulaGenerator, GaussianGenerator, WGANGenerator
    from gemdiff.models.latent import LatentDiffusionGenerator

    return {g.kind: g for g in (DiffusionGenerator, LatentDiffusionGenerator, GaussianGenerator,
                                CopulaGenerator, WGANGenerator)}


def generator_from_checkpoint(section: dict[str, Any], state: dict[str, torch.Tensor],
                              source: str | None = None) -> Generator:
    """The generator a checkpoint holds (checkpoints without a kind hold diffusion models)."""
    kinds = registry()
    kind = section.get("kind", DiffusionGenerator.kind)
    if kind not in kinds:
        raise InputError(source, f"holds a model of unknown kind {kind!r}; known kinds are "
                                 f"{', '.join(kinds)}")
    return kinds[kind].from_checkpoint(section, state)
