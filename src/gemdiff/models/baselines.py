"""Baseline generators a user would try instead of GEMDiff, behind the same interface.

- :class:`GaussianGenerator` (``model=gaussian``): one multivariate normal per class, fitted in
  closed form on the scaled training data; the covariance is the sample covariance (``full``),
  its Ledoit-Wolf shrinkage toward a scaled identity (``ledoit_wolf``, usable when a class has
  fewer samples than genes) or its diagonal.
- :class:`WGANGenerator` (``model=wgan``): the generator network of a class-conditional
  Wasserstein GAN with gradient penalty (Gulrajani et al. 2017), the generator the paper
  compares against; it is trained by :class:`gemdiff.training.wgan.WGANGP`.

Both work in the model's scaled units ([-1, 1]). The WGAN's tanh output stays in that range;
the Gaussian's samples are left unclipped (see :class:`GaussianGenerator`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gemdiff.common.errors import GemdiffError
from gemdiff.models.generators import Generator, SampleOptions, prefixed

COVARIANCES = ("full", "ledoit_wolf", "diagonal")


class GaussianGenerator(Generator):
    """Per-class multivariate normal: ``mean[c] + chol[c] @ z``, fitted in closed form by
    :meth:`fit`.

    Samples are not clipped to the data's [-1, 1]: clipping makes this baseline weaker
    (``experiments/README.md``, baselines), and the plain normal is the stronger baseline.
    ``diffusion`` and ``denoiser`` (what an experiment config gives a diffusion model) are
    accepted and unused.
    """

    kind = "gaussian"

    def __init__(self, n_genes: int, n_classes: int, covariance: str = "ledoit_wolf",
                 diffusion: Any = None, denoiser: Any = None):
        if covariance not in COVARIANCES:
            raise GemdiffError(f"covariance={covariance!r} is not one of {', '.join(COVARIANCES)}")
        self.covariance = covariance
        self.means = np.zeros((n_classes, n_genes))
        self.chols = np.zeros((n_classes, n_genes, n_genes))

    def shape(self) -> tuple[int, int]:
        return self.means.shape[1], self.means.shape[0]

    def fit(self, x: np.ndarray, y: np.ndarray) -> "GaussianGenerator":
        from sklearn.covariance import LedoitWolf

        for c in range(len(self.means)):
            xc = x[y == c].astype(np.float64)
            if len(xc) < 2:
                raise GemdiffError(f"class {c} has {len(xc)} training sample(s); a Gaussian "
                                   "needs at least 2")
            self.means[c] = xc.mean(axis=0)
            if self.covariance == "full":
                cov = np.atleast_2d(np.cov(xc, rowvar=False))
            elif self.covariance == "ledoit_wolf":
                cov = LedoitWolf().fit(xc).covariance_
            else:
                cov = np.diag(xc.var(axis=0, ddof=1))
            self.chols[c] = _cholesky(cov)
        return self

    def sample(self, labels: np.ndarray, seed: int = 0,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((len(labels), self.means.shape[1]))
        x = self.means[labels] + np.einsum("nij,nj->ni", self.chols[labels], z)
        return x.astype(np.float32)

    def checkpoint_section(self) -> dict[str, Any]:
        return {"gaussian": {"means": torch.from_numpy(self.means),
                             "chols": torch.from_numpy(self.chols),
                             "covariance": self.covariance}}

    @classmethod
    def from_checkpoint(cls, section: dict[str, Any],
                        state: dict[str, torch.Tensor]) -> "GaussianGenerator":
        saved = section["gaussian"]
        means = saved["means"].numpy()
        out = cls(means.shape[1], means.shape[0], saved["covariance"])
        out.means, out.chols = means, saved["chols"].numpy()
        return out


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Cholesky factor, with the smallest diagonal jitter that makes a singular covariance (a
    class with fewer samples than genes) positive definite."""
    scale = max(float(np.mean(np.diag(cov))), 1e-12)
    for jitter in (0.0, 1e-9, 1e-7, 1e-5, 1e-3):
        try:
            return np.linalg.cholesky(cov + jitter * scale * np.eye(len(cov)))
        except np.linalg.LinAlgError:
            continue
    raise GemdiffError("covariance is not positive definite even with jitter; try "
                       "model.covariance=ledoit_wolf")


@dataclass
class WGANConfig:
    """Arguments of the WGAN-GP networks; stored in checkpoints as a plain dict."""

    n_genes: int
    n_classes: int
    latent_dim: int = 64
    hidden: int = 256
    depth: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(d_in: int, hidden: int, depth: int, d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(hidden, d_out))


class WGANNet(nn.Module):
    """(z, y) -> x in [-1, 1]: noise and a class embedding through an MLP, tanh output."""

    def __init__(self, c: WGANConfig):
        super().__init__()
        self.config = c
        self.class_emb = nn.Embedding(c.n_classes, c.latent_dim)
        self.net = _mlp(2 * c.latent_dim, c.hidden, c.depth, c.n_genes)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([z, self.class_emb(y)], dim=1)))


class WGANCritic(nn.Module):
    """(x, y) -> score: no normalisation layers, as the gradient penalty requires."""

    def __init__(self, c: WGANConfig):
        super().__init__()
        self.class_emb = nn.Embedding(c.n_classes, c.n_genes)
        self.net = _mlp(2 * c.n_genes, c.hidden, c.depth, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.class_emb(y)], dim=1)).squeeze(1)


class WGANGenerator(Generator):
    """Sampling side of a trained WGAN-GP: its generator network (EMA weights by default)."""

    kind = "wgan"

    def __init__(self, generator: WGANNet):
        self.generator = generator

    def shape(self) -> tuple[int, int]:
        return self.generator.config.n_genes, self.generator.config.n_classes

    def sample(self, labels: np.ndarray, seed: int = 0,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(len(labels), self.generator.config.latent_dim, generator=gen)
        with torch.inference_mode():
            return self.generator(z, torch.from_numpy(np.asarray(labels))).numpy()

    def network(self) -> dict[str, Any]:
        return self.generator.config.to_dict()

    def checkpoint_section(self) -> dict[str, Any]:
        return {"wgan": self.generator.config.to_dict()}

    @classmethod
    def from_checkpoint(cls, section: dict[str, Any],
                        state: dict[str, torch.Tensor]) -> "WGANGenerator":
        net = WGANNet(WGANConfig(**section["wgan"]))
        net.load_state_dict(prefixed(state, "generator."))
        return cls(net.eval())
