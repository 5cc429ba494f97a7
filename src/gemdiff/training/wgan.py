"""Training the WGAN-GP baseline (``model=wgan``) with Lightning."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from gemdiff.common import constants as K
from gemdiff.models.baselines import WGANConfig, WGANCritic, WGANGenerator, WGANNet
from gemdiff.training.checkpoint import add_section


class WGANGP(L.LightningModule):
    """Class-conditional WGAN-GP trained by Lightning with manual optimisation.

    Every batch updates the critic; every ``n_critic``-th batch also updates the generator.
    ``trainer.max_steps`` counts optimizer steps of both networks. The logged ``train/loss`` is
    the critic's estimate of the Wasserstein distance between real and generated batches.
    """

    def __init__(self, n_genes: int, n_classes: int, latent_dim: int = 64, hidden: int = 256,
                 depth: int = 3, n_critic: int = 5, gp_weight: float = 10.0, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.0, 0.9), diffusion: Any = None,
                 denoiser: Any = None):
        # ``diffusion`` and ``denoiser`` (what the training app and an experiment config give a
        # diffusion model) are accepted and unused.
        super().__init__()
        self.save_hyperparameters(ignore=["diffusion", "denoiser"])
        self.automatic_optimization = False
        self.config = WGANConfig(n_genes, n_classes, latent_dim, hidden, depth)
        self.generator = WGANNet(self.config)
        self.critic = WGANCritic(self.config)
        self.metadata: dict[str, Any] = {}

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        eps = torch.rand(len(real), 1, device=real.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mix, y).sum(), mix, create_graph=True)
        return ((grad.norm(dim=1) - 1.0) ** 2).mean()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        opt_g, opt_c = self.optimizers()
        x, y = batch[K.X], batch[K.Y]
        z = torch.randn(len(x), self.config.latent_dim, device=x.device)
        fake = self.generator(z, y).detach()
        w = self.critic(x, y).mean() - self.critic(fake, y).mean()
        loss_c = -w + self.hparams.gp_weight * self._penalty(x, fake, y)
        opt_c.zero_grad(set_to_none=True)
        self.manual_backward(loss_c)
        opt_c.step()
        if (batch_idx + 1) % self.hparams.n_critic == 0:
            z = torch.randn(len(x), self.config.latent_dim, device=x.device)
            loss_g = -self.critic(self.generator(z, y), y).mean()
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", w.detach(), prog_bar=True)
        return {"loss": w.detach()}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x, y = batch[K.X], batch[K.Y]
        gen = torch.Generator(device=x.device).manual_seed(0)
        z = torch.randn(len(x), self.config.latent_dim, generator=gen, device=x.device)
        w = self.critic(x, y).mean() - self.critic(self.generator(z, y), y).mean()
        self.log("val/wasserstein", w, prog_bar=True, batch_size=len(x))

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=tuple(hp.betas))
        opt_c = torch.optim.Adam(self.critic.parameters(), lr=hp.lr, betas=tuple(hp.betas))
        return [opt_g, opt_c]

    def trained_generator(self) -> WGANGenerator:
        return WGANGenerator(self.generator)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        add_section(checkpoint, self.trained_generator(), self.metadata)
