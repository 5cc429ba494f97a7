"""Loggers of training runs, where Lightning's own need a correction."""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger as _WandbLogger


class WandbLogger(_WandbLogger):
    """Lightning's W&B logger, without the ``anonymous=None`` it hands ``wandb.init`` on every
    run: wandb answers it with a warning that the setting has no effect."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
