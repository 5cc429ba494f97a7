"""Diffusion on the training data's principal components: a model of every gene.

A whole transcriptome has tens of thousands of genes and a few hundred samples; most of what
varies between them lies in a few dozen directions. The diffusion model learns the class-
conditional distribution of the top principal components of the training split (scaled units,
each component divided by its largest training score so that the data fill [-1, 1] as gene
values do), and every gene is read back through the components:

- a sample is the mean, plus the components times the sampled scores, plus per gene the
  residual noise of its class (Gaussian with the variance the components leave in the
  training samples of that class);
- a perturbation moves a sample only along the components, by the bridge's change of its
  scores, and keeps the rest of the sample (its own residual) as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from gemdiff.common.choices import check_choice
from gemdiff.models.calibration import CalibrationOptions
from gemdiff.models.diffusion import DiffusionOutput
from gemdiff.models.generators import (BridgeOptions, DiffusionGenerator, Generator,
                                       Perturbation, SampleOptions)

Space = Literal["auto", "genes", "pca"]
# With space=auto, data of more genes than this are modelled on their principal components.
PCA_ABOVE = 2048


@dataclass
class PCACodec:
    """Scaled gene values <-> scores on the training split's top principal components."""

    mean: np.ndarray  # (n_genes,)
    components: np.ndarray  # (k, n_genes), orthonormal rows
    scale: np.ndarray  # (k,) the largest |score| of each component in training
    residual_sd: np.ndarray  # (n_classes, n_genes) what the components leave, per class

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, n_classes: int, dims: int) -> "PCACodec":
        """The top ``dims`` components of ``x`` (at most one fewer than its rows)."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        k = max(1, min(dims, x.shape[0] - 1, x.shape[1]))
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        comps = vt[:k]
        comps *= np.where(comps.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)  # a fixed sign
        scores = (x - mean) @ comps.T
        scale = np.maximum(np.abs(scores).max(axis=0), 1e-8)
        resid = x - mean - scores @ comps
        sd = np.zeros((n_classes, x.shape[1]))
        for c in range(n_classes):
            rows = resid[y == c]
            if len(rows) > 1:
                sd[c] = rows.std(axis=0, ddof=1)
        return cls(mean, comps, scale, sd)

    @property
    def dims(self) -> int:
        return len(self.scale)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, n_genes) scaled values -> (n, k) float32 scores in [-1, 1] on training data."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T / self.scale
        return z.astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(n, k) scores -> (n, n_genes) scaled values on the components' span."""
        return self.mean + (np.asarray(z, dtype=np.float64) * self.scale) @ self.components

    def move(self, x: np.ndarray, z_from: np.ndarray, z_to: np.ndarray) -> np.ndarray:
        """``x`` moved along the components by the change of its scores. (The classes' mean
        residuals are left out: they moved nothing measurable on kidney, the class difference
        lying in the components; experiments/README.md.)"""
        delta = (np.asarray(z_to, dtype=np.float64) - z_from) * self.scale
        return (np.asarray(x, dtype=np.float64) + delta @ self.components).astype(np.float32)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                for k, v in (("mean", self.mean), ("components", self.components),
                             ("scale", self.scale), ("residual_sd", self.residual_sd))}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "PCACodec":
        return cls(*(state[k].double().numpy() for k in ("mean", "components", "scale",
                                                        "residual_sd")))


def choose_space(space: str, n_genes: int) -> str:
    """``genes`` or ``pca`` for data of ``n_genes`` genes (``auto``: pca above PCA_ABOVE)."""
    check_choice("latent.space", space, Space)
    if space == "auto":
        return "pca" if n_genes > PCA_ABOVE else "genes"
    return space


class LatentDiffusionGenerator(Generator):
    """GEMDiff on principal components (:class:`PCACodec`); samples and moves every gene."""

    kind: ClassVar[str] = "latent_diffusion"

    def __init__(self, inner: DiffusionGenerator, codec: PCACodec):
        self.inner, self.codec = inner, codec

    def sample(self, labels: np.ndarray, seed: int = 0,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        z = self.inner.sample(labels, seed, options)
        labels = np.asarray(labels, dtype=int)
        noise = np.random.default_rng([seed, 5]).standard_normal((len(z), len(self.codec.mean)))
        x = self.codec.decode(z) + noise * self.codec.residual_sd[labels]
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    def describe_sampling(self, options: SampleOptions) -> dict[str, Any]:
        return self.inner.describe_sampling(options) | {"latent_dims": self.codec.dims}

    def bridge(self, x: np.ndarray, source: int, target: int,
               options: BridgeOptions = BridgeOptions()) -> Perturbation:
        z = self.codec.encode(x)
        p = self.inner.bridge(z, source, target, options)
        rows = np.arange(len(x)) if p.cycle_index is None else p.cycle_index
        cycle = None if p.x_cycle is None else self.codec.move(x[rows], z[rows], p.x_cycle)
        return Perturbation(np.asarray(x), self.codec.move(x, z, p.x_moved), cycle,
                            self._genes(p.encode), self._genes(p.decode), p.cycle_index)

    def _genes(self, out: DiffusionOutput | None) -> DiffusionOutput | None:
        """A chain's recorded states read through the components (as gene values)."""
        if out is None:
            return None
        as_genes = lambda s: torch.from_numpy(self.codec.decode(s.numpy()).astype(np.float32))  # noqa: E731
        return replace(out, x=as_genes(out.x), trajectory=[as_genes(s) for s in out.trajectory])

    def calibrate(self, x: np.ndarray, y: np.ndarray, n_classes: int,
                  options: CalibrationOptions, progress: bool = False) -> bool:
        return self.inner.calibrate(self.codec.encode(x), y, n_classes, options, progress)

    def shape(self) -> tuple[int, int]:
        return len(self.codec.mean), self.inner.shape()[1]

    def network(self) -> dict[str, Any]:
        return self.inner.network()

    def checkpoint_section(self) -> dict[str, Any]:
        return self.inner.checkpoint_section() | {"latent": self.codec.state()}

    @classmethod
    def from_checkpoint(cls, section: dict[str, Any],
                        state: dict[str, torch.Tensor]) -> "LatentDiffusionGenerator":
        return cls(DiffusionGenerator.from_checkpoint(section, state),
                   PCACodec.from_state(section["latent"]))
