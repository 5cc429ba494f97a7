"""Exponential moving average of the weights, on Lightning's ``WeightAveraging`` callback.

The callback keeps the averaged copy, swaps it in for validation, saves it as the checkpoint's
``state_dict`` (the raw weights go to ``current_model_state``) and copies it into the model
when training ends. The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so
short runs are not stuck near the initial weights with a paper-sized decay such as 0.9999.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import WeightAveraging

from gemdiff.training.flat import FlatParameters


def ema_decay(decay: float, warmup: bool, n_averaged: int) -> float:
    """The decay used for the update after ``n_averaged`` earlier updates."""
    return min(decay, (1.0 + n_averaged) / (10.0 + n_averaged)) if warmup else decay


class EMA(WeightAveraging):
    """EMA of all floating-point parameters, updated after every optimizer step.

    Parameters
    ----------
    decay
        Final EMA decay (0.9999 in the paper).
    warmup
        Ramp the decay up from 0.1 as (1 + n) / (10 + n).

    The update is one ``foreach`` lerp over tensor lists gathered once, with the update count
    kept on the host: a small model's step is otherwise dominated by re-walking the module tree
    and, on a GPU, by reading the count back from the device.
    """

    def __init__(self, decay: float = 0.9999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        super().__init__(use_buffers=True)
        self.decay, self.warmup = decay, warmup
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._n: int | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._pairs, self._n = None, None

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._n = None  # re-read the restored count

    def _tensors(self, pl_module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self._pairs is None:
            averaged = self._average_model.module.state_dict(keep_vars=True)
            current = pl_module.state_dict(keep_vars=True)
            names = [k for k, v in current.items() if v.is_floating_point()]
            avg, cur = [], []
            flat = getattr(pl_module, "flat_parameters", None)
            if flat is not None:
                # The module's weights are views of one tensor (training/flat.py): give the
                # average the same layout and update both as one tensor each.
                name_of = {id(v): k for k, v in current.items()}
                flat_names = [name_of.get(id(p)) for p in flat.params]
                if None not in flat_names:
                    avg.append(FlatParameters([averaged[k] for k in flat_names],
                                              grads=False).flat.detach())
                    cur.append(flat.flat.detach())
                    in_flat = set(flat_names)
                    names = [k for k in names if k not in in_flat]
            self._pairs = (avg + [averaged[k].detach() for k in names],
                           cur + [current[k].detach() for k in names])
        return self._pairs

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step <= self._latest_update_step:
            return  # no optimizer step since the last update (gradient accumulation)
        avg, cur = self._tensors(pl_module)
        counter = self._average_model.n_averaged
        if self._n is None:
            self._n = int(counter)
        with torch.no_grad():
            if self._n == 0:
                torch._foreach_copy_(avg, cur)
            else:
                # avg <- d * avg + (1 - d) * current, in one foreach kernel
                torch._foreach_lerp_(avg, cur, 1.0 - ema_decay(self.decay, self.warmup, self._n))
            counter.add_(1)
        self._n += 1
        self._latest_update_step = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.world_size > 1 and self._pairs is not None:
            check_identical_across_ranks(trainer, self._pairs[0])
        super().on_train_end(trainer, pl_module)


def check_identical_across_ranks(trainer, tensors: list[torch.Tensor]) -> None:
    """Raise unless every rank holds the same ``tensors`` (compared by a position-weighted
    float64 checksum gathered from all ranks); logs the agreement on rank 0."""
    import logging

    with torch.no_grad():
        checksum = torch.stack([
            (t.double().flatten() * torch.arange(1, t.numel() + 1, dtype=torch.float64,
                                                  device=t.device)).sum() for t in tensors])
    gathered = trainer.strategy.all_gather(checksum)  # (world_size, n_tensors)
    if not bool((gathered == gathered[0]).all()):
        raise RuntimeError("EMA weights differ between DDP ranks")
    if trainer.is_global_zero:
        logging.getLogger("gemdiff.ema").info("EMA weights identical on %d ranks",
                                             trainer.world_size)
