"""Exponential moving average of the weights, on Lightning's ``WeightAveraging`` callback.

The callback keeps the averaged copy, swaps it in for validation, saves it as the checkpoint's
``state_dict`` (the raw weights go to ``current_model_state``) and copies it into the model
when training ends. The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so
short runs are not stuck near the initial weights with a paper-sized decay such as 0.9999.
"""

from __future__ import annotations

from functools import partial

import torch
from lightning.pytorch.callbacks import WeightAveraging


def _ema_update(decay: float, warmup: bool, averaged: list[torch.Tensor],
                current: list[torch.Tensor], n_averaged: torch.Tensor | int) -> None:
    d = decay
    if warmup:
        n = float(n_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
    # avg <- d * avg + (1 - d) * current, in one foreach kernel
    torch._foreach_lerp_(averaged, current, 1.0 - d)


class EMA(WeightAveraging):
    """EMA of all parameters and buffers, updated after every optimizer step.

    Parameters
    ----------
    decay
        Final EMA decay (0.9999 in the paper).
    warmup
        Ramp the decay up from 0.1 as (1 + n) / (10 + n).
    """

    def __init__(self, decay: float = 0.9999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        super().__init__(use_buffers=True, multi_avg_fn=partial(_ema_update, decay, warmup))
        self.decay, self.warmup = decay, warmup
