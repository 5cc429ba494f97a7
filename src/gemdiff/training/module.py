"""LightningModule: wires the denoiser, the diffusion and the optimizer together."""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

import lightning as L
import torch

from gemdiff.common import constants as K
from gemdiff.common.errors import GemdiffError, TrainingDiverged
from gemdiff.models.denoiser import DenoiserConfig, build_denoiser
from gemdiff.models.diffusion import GaussianDiffusion
from gemdiff.models.generators import DiffusionGenerator, Generator
from gemdiff.models.latent import LatentDiffusionGenerator, PCACodec
from gemdiff.training.checkpoint import add_section
from gemdiff.training.flat import FlatParameters, merge_optimizer_state


RNG_KEY = "torch_rng_state"
LR_DECAYS = ("none", "cosine")


def lr_factor(step: int, warmup: int, total: int | None, decay: str) -> float:
    """The learning rate at ``step`` as a fraction of the peak: a linear warm-up over
    ``warmup`` steps, then constant (``none``) or a half cosine reaching zero at step
    ``total`` (``cosine``)."""
    warmup = max(1, warmup)
    if step < warmup:
        return (step + 1) / warmup
    if decay == "none" or not total or total <= warmup:
        return 1.0
    done = min(1.0, (step - warmup) / (total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * done))


class GEMDiffModule(L.LightningModule):
    """Class-conditional DDPM with a transformer noise predictor.

    Parameters
    ----------
    n_genes, n_classes
        Data shape, known once the data is prepared.
    denoiser
        Keyword arguments of :class:`~gemdiff.models.denoiser.DenoiserConfig` (width, depth,
        tokenisation, ...). ``conditional=False`` in it trains an unconditional model.
    diffusion
        The :class:`~gemdiff.models.diffusion.GaussianDiffusion` (schedule and T).
    p_uncond
        Probability of replacing a label by the "no class" token during training, which
        teaches the same network the unconditional prediction (classifier-free guidance).
    lr, weight_decay, warmup_steps
        AdamW with a linear learning-rate warm-up.
    lr_decay
        After the warm-up: ``none`` keeps ``lr``; ``cosine`` lowers it along a half cosine
        to zero at the run's last step (``trainer.max_steps``).
    compile
        Train through ``torch.compile`` of the denoiser (fused kernels; on a CPU it needs a C++
        compiler). The first steps wait for compilation; the weights and checkpoints are those
        of the plain module.
    """

    def __init__(
        self,
        n_genes: int,
        n_classes: int,
        denoiser: dict[str, Any],
        diffusion: GaussianDiffusion,
        p_uncond: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 200,
        lr_decay: str = "none",
        compile: bool = False,
    ):
        super().__init__()
        if lr_decay not in LR_DECAYS:
            raise GemdiffError(f"model.lr_decay must be one of {', '.join(LR_DECAYS)}, "
                               f"got {lr_decay!r}")
        denoiser = dict(denoiser)
        conditional = denoiser.pop("conditional", True)
        self.save_hyperparameters(ignore=["diffusion"])
        self.denoiser = build_denoiser(
            DenoiserConfig(n_genes=n_genes, n_classes=n_classes if conditional else 0, **denoiser))
        self.diffusion = diffusion
        self.p_uncond = p_uncond if conditional else 0.0
        # Set by the training entry point: genes, classes, preprocessing, split, config.
        self.metadata: dict[str, Any] = {}
        # Set by the training entry point where the model learns principal components.
        self.codec: PCACodec | None = None
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        # The weights as one tensor for the optimizer, built in configure_optimizers.
        self.flat_parameters: FlatParameters | None = None

    def trained_generator(self) -> Generator:
        """The generator these weights make (shares the modules, changes no mode)."""
        inner = DiffusionGenerator(self.denoiser, self.diffusion)
        return inner if self.codec is None else LatentDiffusionGenerator(inner, self.codec)

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        if self.denoiser.class_emb is None:
            return None
        if self.training and self.p_uncond > 0:
            drop = torch.rand(y.shape, device=y.device) < self.p_uncond
            y = torch.where(drop, torch.full_like(y, self.denoiser.null_class), y)
        return y

    def _train_eps(self):
        """The noise predictor the training step calls: the denoiser, or its compiled form.

        The compiled wrapper is kept out of the module tree (it would duplicate every weight
        under another name in the state dict) and built on the first step, after any DDP spawn.
        """
        if not self.hparams.get("compile"):
            return self.denoiser
        fn = self.__dict__.get("_compiled")
        if fn is None:
            if self.device.type == "cpu" and not (os.environ.get("CXX") or any(
                    shutil.which(c) for c in ("g++", "c++", "clang++"))):
                raise GemdiffError("model.compile=true needs a C++ compiler on a CPU (g++ or "
                                   "clang++, or one named by CXX); install one or leave "
                                   "model.compile=false")
            fn = self.__dict__["_compiled"] = torch.compile(self.denoiser, dynamic=False)
        return fn

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.diffusion.loss(self._train_eps(), batch[K.X], self._labels(batch[K.Y]))
        # Log the mean over the steps since the last logger write, only on the steps the
        # loggers are written (Lightning's logging costs more than a small model's step).
        window = loss.detach()
        self._loss_sum = window if self._loss_sum is None else self._loss_sum + window
        self._loss_count += 1
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        if every and (self.global_step + 1) % every == 0:
            self._check_finite()
            self.log("train/loss", self._loss_sum / self._loss_count, prog_bar=True,
                     sync_dist=True)
            self._loss_sum, self._loss_count = None, 0
        return loss

    def _check_finite(self) -> None:
        """Stop with a clear error once the loss of the current window is NaN or infinite.

        Read once per logging window (and before every checkpoint), not once per step: a
        per-step read would stall the device; a diverged step is caught before its weights
        are saved, so the last checkpoint on disk stays good.
        """
        if self._loss_sum is not None and not torch.isfinite(self._loss_sum):
            step = self.global_step + 1
            first = step - self._loss_count + 1
            raise TrainingDiverged(
                f"training diverged: the loss became {float(self._loss_sum)} between steps "
                f"{first} and {step} (try a lower model.lr, or check the input scaling)")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss = self.diffusion.loss(self.denoiser, batch[K.X], self._labels(batch[K.Y]),
                                   t=batch[K.T], noise=batch[K.NOISE])
        self.log("val/loss", loss, prog_bar=True, batch_size=batch[K.X].shape[0], sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        # Built here, once Lightning has moved the module to its device (flat.py says why).
        flat = self.flat_parameters = FlatParameters(self.denoiser.parameters())
        opt = torch.optim.AdamW([flat.flat], lr=hp.lr, weight_decay=hp.weight_decay, fused=True)
        decay = hp.get("lr_decay", "none")
        total = None
        if decay != "none":
            total = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, hp.warmup_steps, total, decay))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer) -> None:
        self.flat_parameters.zero_grad()

    def on_before_optimizer_step(self, optimizer) -> None:
        self.flat_parameters.check_grads()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_finite()
        if not all(bool(torch.isfinite(p).all()) for p in self.denoiser.parameters()):
            raise TrainingDiverged(f"training diverged: the weights hold NaN or infinite values "
                                   f"at step {self.global_step}")
        # The global generator draws the timesteps, the noise and the label dropout; saving its
        # state lets a resumed run continue with exactly the draws an uninterrupted one makes.
        checkpoint[RNG_KEY] = torch.get_rng_state()
        add_section(checkpoint, self.trained_generator(), self.metadata)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if RNG_KEY in checkpoint:
            torch.set_rng_state(checkpoint[RNG_KEY])
        if "optimizer_states" in checkpoint:  # per-tensor states of earlier versions
            checkpoint["optimizer_states"] = [merge_optimizer_state(s)
                                              for s in checkpoint["optimizer_states"]]
