"""Train a class-conditional GEMDiff model.

    python -m gemdiff.train                                  # built-in synthetic data
    python -m gemdiff.train experiment=breast_16             # the paper's breast example
    python -m gemdiff.train data.n_genes=64 trainer.max_steps=5000 logger=csv
    python -m gemdiff.train --help                           # config groups and options

Writes into the run folder (``outputs/train/runs/<time>/`` by default): ``checkpoints/last.ckpt``
(weights, EMA weights, preprocessing, genes, classes, split and the resolved config),
``loss.tsv``, ``loss_curve.png``, ``summary.json`` and the logger's files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

import gemdiff
from gemdiff import constants as K
from gemdiff.callbacks import AtomicCheckpointIO
from gemdiff.checkpoint import calibrate_checkpoint
from gemdiff.models.module import GEMDiffModule
from gemdiff.cli import config_dir, run_task
from gemdiff.errors import InputError, TrainingDiverged, TrainingInterrupted
from gemdiff.outputs import check_fresh, write_json
from gemdiff.sweep import in_multirun

log = logging.getLogger("gemdiff.train")
# What a finished run leaves in its folder; a folder holding any of them is not reused silently.
PRODUCTS = ("summary.json", "loss.tsv", "checkpoints")


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def train(cfg: DictConfig, pick_up: bool | None = None) -> dict[str, Any]:
    """Train from a composed config; returns a summary (checkpoint path, steps, losses).

    Data problems raise :class:`~gemdiff.errors.GemdiffError` before anything is written.
    With ``pick_up`` (the default inside a multirun) a folder holding a finished run is
    returned as it is and one holding a stopped run resumes from its checkpoint.
    """
    output_dir = Path(cfg.paths.output_dir)
    resume = cfg.get("ckpt_path")
    if pick_up is None:
        pick_up = in_multirun()
    if pick_up and not cfg.get("overwrite", False):
        # Run again in the same folder (a sweep, a sweep job): skip finished, resume stopped.
        if (output_dir / "summary.json").is_file():
            log.info("%s holds a finished run: skipped", output_dir)
            return json.loads((output_dir / "summary.json").read_text())
        if not resume and (output_dir / "checkpoints/last.ckpt").is_file():
            resume = str(output_dir / "checkpoints/last.ckpt")
            log.info("resuming the stopped job from %s", resume)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    _spawn_ranks_in_sweeps(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    data = datamodule.prepare()  # reads and validates the input: fails before any file exists
    log.info("data: %s", json.dumps(data.summary()))

    if resume:
        _check_resumable(resume, data, cfg)
    resuming_here = bool(resume) and output_dir.resolve() in Path(resume).resolve().parents
    check_fresh(output_dir, PRODUCTS, cfg.get("overwrite", False) or resuming_here)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    metadata = {
        "genes": data.genes,
        "classes": data.classes,
        "preprocessor": data.preprocessor.state_dict(),
        "train_ids": data.train_ids,
        "test_ids": data.test_ids,
        "data_summary": data.summary(),
        "config": resolved,
        "gemdiff_version": gemdiff.__version__,
    }
    if cfg.data.get("permute_labels"):
        ids = data.train_ids + data.test_ids
        ys = np.concatenate([data.y_train, data.y_test])
        metadata["permuted_labels"] = {s: data.classes[c] for s, c in zip(ids, ys, strict=True)}
    if cfg.model.get("kind") == "gaussian":
        return _fit_gaussian(cfg, data, metadata, output_dir)
    diffusion = hydra.utils.instantiate(cfg.diffusion)
    model = hydra.utils.instantiate(cfg.model, n_genes=data.n_genes, n_classes=len(data.classes),
                                    diffusion=diffusion)
    model.metadata = metadata

    callbacks = _instantiate_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):  # one switch turns the bar off
        from lightning.pytorch.callbacks import ProgressBar

        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if cfg.get("logger") and cfg.logger.get("wandb"):
        from gemdiff.tracking import run_group, run_tags

        with open_dict(cfg):  # a sweep's runs share a group; tags name what varies
            cfg.logger.wandb.group = run_group(cfg.task_name)
            cfg.logger.wandb.tags = run_tags(cfg)
    loggers = _instantiate_all(cfg.get("logger"))
    for lg in loggers:
        lg.log_hyperparams(resolved)
    extra = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    if not model.automatic_optimization:  # the model steps its own optimizers (WGAN-GP)
        extra["gradient_clip_val"] = None
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      **extra)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:
        ckpt = _last_checkpoint(trainer)
        raise TrainingInterrupted(
            f"stopped by SIGTERM at step {trainer.global_step}; checkpoint {ckpt}; resume with "
            f"ckpt_path={ckpt}") from None
    except TrainingDiverged as err:
        ckpt = _last_checkpoint(trainer)
        kept = f"the last good checkpoint is {ckpt}" if ckpt else "no checkpoint was written"
        raise TrainingDiverged(f"{err}; {kept}") from None
    finally:
        _finish_loggers(loggers, output_dir)

    ckpt = _last_checkpoint(trainer)
    step = int(trainer.global_step)
    if ckpt is None and (output_dir / "checkpoints/last.ckpt").is_file():
        # Spawned DDP ranks do not hand the checkpoint path and step back to this process.
        ckpt = output_dir / "checkpoints/last.ckpt"
        step = int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    summary = {
        "checkpoint": str(ckpt) if ckpt and ckpt.exists() else None,
        "global_step": step,
        "metrics": metrics,
        "data": data.summary(),
    }
    if trainer.is_global_zero:
        calibration = cfg.get("calibrate") or {}
        rows, levels = int(calibration.get("rows", 0)), int(calibration.get("levels", 41))
        shrink = bool(calibration.get("shrink", True))
        if summary["checkpoint"] and rows > 0 and isinstance(model, GEMDiffModule):
            log.info("calibrating the sampler on the training data (%d noise draws per class "
                     "at %d levels)", rows, levels)
            calibrate_checkpoint(summary["checkpoint"], data.x_train, data.y_train, rows, levels,
                                 seed=int(cfg.seed), shrink=shrink,
                                 progress=bool(cfg.trainer.get("enable_progress_bar", True)))
        write_json(summary, output_dir / "summary.json")
        log.info("checkpoint: %s", summary["checkpoint"])
    return summary


def _fit_gaussian(cfg: DictConfig, data, metadata: dict, output_dir: Path) -> dict[str, Any]:
    """The per-class Gaussian baseline: fitted in closed form, saved as a checkpoint that
    ``gemdiff.sample`` and ``gemdiff.perturb`` read like any other."""
    from gemdiff.models.baselines import GaussianGenerator

    gauss = GaussianGenerator.fit(data.x_train, data.y_train, len(data.classes),
                                  cfg.model.get("covariance", "ledoit_wolf"))
    ckpt = output_dir / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(
        {"global_step": 0, K.CKPT_SECTION: {"kind": "gaussian", "gaussian": gauss.state(),
                                             **metadata}}, ckpt)
    summary = {"checkpoint": str(ckpt), "global_step": 0, "metrics": {},
               "data": data.summary()}
    write_json(summary, output_dir / "summary.json")
    log.info("checkpoint: %s", ckpt)
    return summary


def _check_resumable(path: str, data, cfg: DictConfig) -> None:
    """A checkpoint to resume from must hold the same genes, classes and network."""
    from gemdiff.checkpoint import load_checkpoint

    saved = load_checkpoint(path)
    if saved.kind != "diffusion" or "denoiser" not in cfg.model:
        raise InputError(path, "only diffusion models resume from a checkpoint")
    if saved.genes != data.genes:
        raise InputError(path, f"was trained on other genes ({len(saved.genes)}, from "
                               f"{saved.genes[0]!r}) than this run ({len(data.genes)}, from "
                               f"{data.genes[0]!r}); resume with the data config it was trained on")
    if saved.classes != data.classes:
        raise InputError(path, f"has classes {saved.classes}, this run {data.classes}")
    net = saved.denoiser.config.to_dict()
    wanted = {k: v for k, v in OmegaConf.to_container(cfg.model.denoiser).items() if k in net}
    differ = {k: (net[k], v) for k, v in wanted.items() if net[k] != v}
    if differ:
        raise InputError(path, "holds another network: " + ", ".join(
            f"{k}={a} there, {b} here" for k, (a, b) in differ.items()))


def _spawn_ranks_in_sweeps(cfg: DictConfig) -> None:
    """Inside a multirun, DDP must spawn its ranks: relaunching the command (Lightning's
    default) would run the whole sweep once per rank. Under SLURM the scheduler's tasks are the
    ranks and nothing is launched."""
    strategy = cfg.trainer.get("strategy")
    if not (in_multirun() and hasattr(strategy, "get") and "SLURM_NTASKS" not in os.environ
            and str(strategy.get("_target_", "")).endswith("DDPStrategy")
            and strategy.get("start_method", "popen") == "popen"):
        return
    with open_dict(cfg):
        cfg.trainer.strategy.start_method = "spawn"
    log.info("DDP inside a multirun: ranks are spawned (start_method=spawn)")


def _last_checkpoint(trainer) -> Path | None:
    """The path the checkpoint callback really wrote (last-v1.ckpt if last.ckpt existed)."""
    cb = trainer.checkpoint_callback
    return Path(cb.last_model_path) if cb and cb.last_model_path else None


def _finish_loggers(loggers: list[Any], output_dir: Path) -> None:
    """Add the loss curve to W&B runs and close them, so that the next job of a sweep starts a
    run of its own."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            curve = output_dir / "loss_curve.png"
            if curve.is_file():
                lg.experiment.log({"loss_curve": wandb.Image(str(curve))})
            wandb.finish()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> None:
    run_task(train, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.train import main as entry

    entry()
