"""Lightning callbacks of the training app: the final checkpoint and the loss history."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pandas as pd
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from gemdiff.outputs import write_table


class Checkpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` at the final step.

    With an endless training stream an epoch never ends, so the stock callback saves only every
    ``every_n_train_steps``; this one makes sure the step that ends training is saved as well.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        final = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if final and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class LossHistory(L.Callback):
    """Records the mean training loss of every ``every`` steps and the validation loss; at the
    end writes ``loss.tsv`` and ``loss_curve.png`` into ``output_dir``.

    Losses are summed on the device and read once per window, not once per step.
    """

    def __init__(self, output_dir: str, every: int = 25):
        self.output_dir, self.every = Path(output_dir), every
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self._sum, self._count = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if outputs is None:
            return
        loss = outputs["loss"].detach()
        self._sum = loss if self._sum is None else self._sum + loss
        self._count += 1
        if trainer.global_step % self.every == 0:
            self.train.append((trainer.global_step, float(self._sum) / self._count))
            self._sum, self._count = None, 0

    def on_validation_end(self, trainer, pl_module) -> None:
        if "val/loss" in trainer.callback_metrics and not trainer.sanity_checking:
            self.val.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        if not self.train:
            return
        from gemdiff import plots

        self.output_dir.mkdir(parents=True, exist_ok=True)
        rows = [(s, "train", v) for s, v in self.train] + [(s, "val", v) for s, v in self.val]
        write_table(pd.DataFrame(rows, columns=["step", "split", "loss"]),
                    self.output_dir / "loss.tsv")
        steps, losses = zip(*self.train, strict=True)
        vs, vl = zip(*self.val, strict=True) if self.val else ((), ())
        plots.loss_curve(steps, losses, self.output_dir / "loss_curve.png", vs, vl)
