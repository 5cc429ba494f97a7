"""Denoiser, Gaussian diffusion, LightningModule and EMA."""
