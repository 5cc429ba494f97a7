"""Baseline generators a user would try instead of GEMDiff, behind the same interface.

- :class:`GaussianGenerator` (``model=gaussian``): one multivariate normal per class, fitted in
  closed form on the scaled training data; the covariance is the sample covariance (``full``),
  its Ledoit-Wolf shrinkage toward a scaled identity (``ledoit_wolf``, usable when a class has
  fewer samples than genes) or its diagonal.
- :class:`CopulaGenerator` (``model=copula``): one Gaussian copula per class (scDesign2's
  model of gene-gene correlation): each gene keeps its empirical distribution within the class,
  unexpressed values a point mass among them, and the genes are tied by the correlation of
  their normal scores.
- :class:`WGANGenerator` (``model=wgan``): the generator network of a class-conditional
  Wasserstein GAN with gradient penalty (Gulrajani et al. 2017), the generator the paper
  compares against; it is trained by :class:`gemdiff.training.wgan.WGANGP`.

All work in the model's scaled units. The WGAN's tanh output stays in [-1, 1]; the
Gaussian's samples are left unclipped (see :class:`GaussianGenerator`); the copula's stay
within each gene's training values.
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
            xc = _class_rows(x, y, c, "a Gaussian")
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


class CopulaGenerator(Generator):
    """Per-class Gaussian copula with empirical marginals, fitted in closed form by :meth:`fit`.

    Per class c and gene g the training values, sorted, are the marginal; their normal scores
    z = Phi^-1(rank / (n + 1)) (ties, such as unexpressed values, share their mean rank) give
    the correlation matrix R_c, shrunk toward the identity by Ledoit-Wolf (a class may have
    fewer samples than genes). A sample draws z ~ N(0, R_c) and reads each gene's marginal at
    u = Phi(z), interpolating between neighbouring training values, so a run of equal values
    (unexpressed) stays a point mass. ``diffusion`` and ``denoiser`` are accepted and unused.
    """

    kind = "copula"

    def __init__(self, n_genes: int, n_classes: int, diffusion: Any = None,
                 denoiser: Any = None):
        self.marginals: list[np.ndarray] = [np.zeros((0, n_genes))] * n_classes
        self.chols = np.zeros((n_classes, n_genes, n_genes))

    def shape(self) -> tuple[int, int]:
        return self.chols.shape[1], self.chols.shape[0]

    def fit(self, x: np.ndarray, y: np.ndarray) -> "CopulaGenerator":
        from scipy.stats import norm, rankdata
        from sklearn.covariance import LedoitWolf

        for c in range(len(self.chols)):
            xc = _class_rows(x, y, c, "a copula")
            self.marginals[c] = np.sort(xc, axis=0)
            z = norm.ppf(rankdata(xc, axis=0) / (len(xc) + 1))
            cov = LedoitWolf().fit(z).covariance_
            sd = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
            self.chols[c] = _cholesky(cov / np.outer(sd, sd))
        return self

    def sample(self, labels: np.ndarray, seed: int = 0,
               options: SampleOptions = SampleOptions()) -> np.ndarray:
        from scipy.stats import norm

        labels = np.asarray(labels)
        z = np.random.default_rng(seed).standard_normal((len(labels), self.chols.shape[1]))
        out = np.zeros(z.shape)
        for c in np.unique(labels):
            rows = labels == c
            u = norm.cdf(z[rows] @ self.chols[c].T)  # (n_c, genes), correlated uniforms
            out[rows] = _quantiles(self.marginals[c], u)
        return out.astype(np.float32)

    def checkpoint_section(self) -> dict[str, Any]:
        return {"copula": {"marginals": [torch.from_numpy(m) for m in self.marginals],
                           "chols": torch.from_numpy(self.chols)}}

    @classmethod
    def from_checkpoint(cls, section: dict[str, Any],
                        state: dict[str, torch.Tensor]) -> "CopulaGenerator":
        saved = section["copula"]
        chols = saved["chols"].numpy()
        out = cls(chols.shape[1], chols.shape[0])
        out.chols, out.marginals = chols, [m.numpy() for m in saved["marginals"]]
        return out


def _class_rows(x: np.ndarray, y: np.ndarray, c: int, model: str) -> np.ndarray:
    """The training rows of class ``c`` in float64; a closed-form ``model`` needs two."""
    xc = x[y == c].astype(np.float64)
    if len(xc) < 2:
        raise GemdiffError(f"class {c} has {len(xc)} training sample(s); {model} needs at "
                           "least 2")
    return xc


def _quantiles(sorted_values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each column's empirical quantile at ``u`` (rows x columns, in [0, 1]): linear between
    the sorted values ``sorted_values`` (n x columns) at position u (n - 1)."""
    n = len(sorted_values)
    pos = u * (n - 1)
    i = np.clip(np.floor(pos).astype(int), 0, max(n - 2, 0))
    frac = np.clip(pos - i, 0.0, 1.0)
    cols = np.arange(sorted_values.shape[1])
    lo = sorted_values[i, cols]
    hi = sorted_values[np.minimum(i + 1, n - 1), cols]
    return lo + frac * (hi - lo)


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
