"""The EMA callback: its update rule, checked against a hand-computed average."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import torch
from torch import nn

from gemdiff.training.ema import EMA, ema_decay


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)


def test_decay_warms_up_then_caps():
    assert ema_decay(0.9999, True, 0) == 0.1
    assert abs(ema_decay(0.9999, True, 90) - 91 / 100) < 1e-12
    assert ema_decay(0.9999, True, 10**7) == 0.9999
    assert ema_decay(0.99, False, 0) == 0.99


def test_update_is_the_exponential_average_of_the_weights():
    torch.manual_seed(0)
    module = _Tiny()
    ema = EMA(decay=0.5, warmup=False)
    ema.setup(SimpleNamespace(), module, "fit")
    expected = None
    for step in range(1, 4):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p))
        ema.on_train_batch_end(SimpleNamespace(global_step=step), module, None, None, step)
        current = [p.detach().clone() for p in module.parameters()]
        if expected is None:
            expected = current  # the first update copies
        else:
            expected = [0.5 * e + 0.5 * c for e, c in zip(expected, current, strict=True)]
    averaged = list(ema._average_model.module.parameters())
    for a, e in zip(averaged, expected, strict=True):
        torch.testing.assert_close(a, e)
    assert int(ema._average_model.n_averaged) == 3
    # No optimizer step since the last update (gradient accumulation): no update.
    ema.on_train_batch_end(SimpleNamespace(global_step=3), module, None, None, 4)
    assert int(ema._average_model.n_averaged) == 3
