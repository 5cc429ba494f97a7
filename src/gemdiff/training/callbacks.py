"""Lightning callbacks of training (checkpoints, loss history) and the checkpoint writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gemdiff.common.files import write_table
from gemdiff.training.checkpoint import save_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it, flushes it to disk, then renames it.

    A kill during a save leaves the previous ``last.ckpt`` whole. (Lightning's own writer stages
    the file in the system temporary folder and moves it, which is a copy, not a rename, when
    the run folder is on another file system, as on most clusters.) Remote URLs are left to
    Lightning.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_checkpoint(checkpoint, path)


class Checkpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` at the final step and on SIGTERM.

    With an endless training stream an epoch never ends, so the stock callback saves only every
    ``every_n_train_steps``; this one makes sure the step that ends training is saved as well,
    and so is the step at which a scheduler's SIGTERM stopped it (Lightning stops at the end of
    the running step and reports the signal as an exception).
    """

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and self.save_last \
                and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        final = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if final and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class LossHistory(L.Callback):
    """Records the mean training loss of every ``every`` steps and the validation loss; at the
    end writes ``loss.tsv`` and ``loss_curve.png`` into ``output_dir``.

    Losses are summed on the device and read once per window, not once per step. The history
    travels in checkpoints, so a resumed run writes the whole of it; a run stopped by an error
    or a signal writes what it has.
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

    def state_dict(self) -> dict[str, Any]:
        window = (0.0 if self._sum is None else float(self._sum), self._count)
        return {"train": list(self.train), "val": list(self.val), "window": window}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train = [tuple(r) for r in state_dict.get("train", [])]
        self.val = [tuple(r) for r in state_dict.get("val", [])]
        total, self._count = state_dict.get("window", (0.0, 0))
        self._sum = torch.tensor(total) if self._count else None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if "val/loss" in trainer.callback_metrics and not trainer.sanity_checking:
            self.val.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        if not self.train:
            return
        from gemdiff.evaluation import plots

        self.output_dir.mkdir(parents=True, exist_ok=True)
        rows = [(s, "train", v) for s, v in self.train] + [(s, "val", v) for s, v in self.val]
        write_table(pd.DataFrame(rows, columns=["step", "split", "loss"]),
                    self.output_dir / "loss.tsv")
        steps, losses = zip(*self.train, strict=True)
        vs, vl = zip(*self.val, strict=True) if self.val else ((), ())
        plots.loss_curve(steps, losses, self.output_dir / "loss_curve.png", vs, vl)
