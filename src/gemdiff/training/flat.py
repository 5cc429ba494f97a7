"""A module's parameters as views of one contiguous tensor, stepped as one tensor.

On a CPU the optimizer, gradient clipping and the EMA run one kernel per tensor; for the small
networks of gene-expression models (a few dozen tensors, under a million weights) those calls,
not the arithmetic, set their cost. With every weight a view of one flat parameter, AdamW,
clipping and the average each touch one tensor. AdamW, clipping by the global norm and the
EMA act element by element (or on the norm of all gradients together), so stepping the flat
tensor is the same update as stepping the pieces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class FlatParameters:
    """Rebinds ``params`` and their gradients to views of one flat tensor, :attr:`flat`.

    The module keeps its own parameters (its state dict, hooks and DDP see no change); backward
    passes add into their gradients in place, which are views of ``flat.grad``, so the
    optimizer steps ``flat`` alone. Clear the gradients with :meth:`zero_grad` (in place), not
    by setting them to ``None``; :meth:`check_grads` puts back any gradient that was replaced.
    Moving the module to another device afterwards gives each parameter its own storage again
    and ends the sharing, so build this once the module is where it trains.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], grads: bool = True):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("no trainable parameters to flatten")
        kinds = {(p.device, p.dtype) for p in self.params}
        if len(kinds) > 1:
            raise ValueError(f"parameters on several devices or dtypes: {sorted(map(str, kinds))}")
        self.flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in self.params]))
        for p, view in zip(self.params, self._views(self.flat.data), strict=True):
            p.data = view
        self.grads: list[torch.Tensor] = []
        if grads:
            self.flat.grad = torch.zeros_like(self.flat)
            self.check_grads()

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``flat`` cut into pieces shaped like the parameters."""
        pieces = flat.split([p.numel() for p in self.params])
        return [piece.view_as(p) for piece, p in zip(pieces, self.params, strict=True)]

    def zero_grad(self) -> None:
        """Zeroes all gradients in one fill, keeping them views of ``flat.grad``."""
        self.check_grads()
        self.flat.grad.zero_()

    def check_grads(self) -> None:
        """Makes every parameter's gradient its view of ``flat.grad`` again, copying in the
        values of a gradient that something replaced (zero where one was cleared)."""
        if self.flat.grad is None:
            self.flat.grad = torch.zeros_like(self.flat)
        if not self.grads or self.grads[0].untyped_storage().data_ptr() \
                != self.flat.grad.untyped_storage().data_ptr():
            self.grads = self._views(self.flat.grad)
        for p, g in zip(self.params, self.grads, strict=True):
            if p.grad is not g:
                if p.grad is None:
                    g.zero_()
                else:
                    g.copy_(p.grad)
                p.grad = g


def merge_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state saved per weight tensor (one parameter group, in the order of the
    module's parameters, as checkpoints of earlier versions hold it) as the state of their
    flat tensor; any other state is returned as it is."""
    groups = state.get("param_groups", [])
    if len(groups) != 1 or len(groups[0]["params"]) < 2:
        return state
    per = [state["state"].get(i) for i in groups[0]["params"]]
    merged: dict[str, Any] = {}
    if all(per):
        for key, value in per[0].items():
            if torch.is_tensor(value) and value.dim() > 0:  # moments, one per weight
                merged[key] = torch.cat([s[key].reshape(-1) for s in per])
            else:  # the step count, the same for all
                merged[key] = value
    return {"state": {0: merged} if merged else {},
            "param_groups": [{**groups[0], "params": [0]}]}
