"""Train a class-conditional GEMDiff model.

    python -m gemdiff.train                                  # built-in synthetic data
    python -m gemdiff.train experiment=breast_16             # the paper's breast example
    python -m gemdiff.train data.n_genes=64 trainer.max_steps=5000 logger=csv
    python -m gemdiff.train --help                           # config groups and options

Writes into the run folder (``outputs/train/runs/<time>/`` by default): ``checkpoints/last.ckpt``
(weights, EMA weights, preprocessing, genes, classes, the split and its data, the resolved
config), ``loss.tsv``, ``loss_curve.png``, ``summary.json`` and the logger's files.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import run_task


def run(cfg: DictConfig) -> dict:
    """Train into the run folder; returns the summary (see
    :func:`gemdiff.runtime.commands.train_run`)."""
    from gemdiff.runtime.commands import train_run

    return train_run(cfg)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.train import main as entry

    entry()
