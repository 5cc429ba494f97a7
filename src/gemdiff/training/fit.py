"""Training from a composed config: the one path of ``gemdiff.train`` and ``GEMDiff.fit``.

:func:`prepare_run` reads and checks everything (the data, the model, a checkpoint to resume
from) without writing a file; :meth:`TrainingRun.fit` then trains into a folder: by Lightning
for a network (GEMDiff, WGAN-GP), in closed form for a generator that has no training steps
(the Gaussian baseline). The checkpoint ends calibrated where the model has a calibration.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from gemdiff.common.devices import THREAD_VARIABLES, resolve_device
from gemdiff.common.errors import TrainingDiverged, TrainingInterrupted
from gemdiff.common.progress import interactive
from gemdiff.data.dataset import PreparedData
from gemdiff.models.calibration import CalibrationOptions
from gemdiff.models.generators import Generator
from gemdiff.models.latent import PCACodec, choose_space
from gemdiff.training.callbacks import AtomicCheckpointIO
from gemdiff.training.module import GEMDiffModule
from gemdiff.training.checkpoint import (
    add_section, calibrate_checkpoint, check_resumable, save_checkpoint, training_metadata,
)

log = logging.getLogger("gemdiff.train")
CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Below this many multiply-adds in the forward pass of one training batch, a CPU step is too
# small to share between threads: one thread trains a network this size faster than two
# threads that sleep while they wait, and does not collapse when another job shares the
# cores (benchmarks/README.md, threads).
ONE_THREAD_WORK = 100e6


@dataclass
class TrainResult:
    """What a training run produced (``summary.json`` of ``gemdiff.train``)."""

    checkpoint: str | None
    global_step: int
    metrics: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    primary: bool = True  # False on the other ranks of a DDP run, which write no files

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("primary")
        return out


@dataclass
class TrainingRun:
    """A checked training run, ready to write into a folder."""

    cfg: DictConfig
    datamodule: Any
    data: PreparedData
    model: Any  # a LightningModule, or a Generator fitted in closed form
    resume: str | None = None

    def fit(self, output_dir: str | Path, progress: bool = True) -> TrainResult:
        """Train into ``output_dir`` (``checkpoints/last.ckpt``, the loss history and the
        loggers' files); ``progress`` shows the calibration's progress bar."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        metadata = training_metadata(self.data, OmegaConf.to_container(self.cfg, resolve=True))
        if isinstance(self.model, Generator):
            return _fit_closed_form(self.model, self.data, metadata, output_dir)
        self.model.metadata = metadata
        with quiet_framework(bool(self.cfg.get("verbose", False))):
            result = _fit_lightning(self.cfg, self.model, self.datamodule, self.data, output_dir,
                                    self.resume)
        if result.primary:
            _calibrate(self.cfg, result, self.data, progress)
        return result


def prepare_run(cfg: DictConfig, datamodule=None, resume: str | None = None) -> TrainingRun:
    """Seed, read and prepare the data, build the model and check a checkpoint to resume
    from; writes nothing. ``datamodule`` defaults to ``cfg.data`` instantiated."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    calibration = cfg.get("calibrate") or {}
    if calibration.get("rows", 0):
        resolve_device(calibration.get("device", "auto"))  # a missing GPU fails before training
    if datamodule is None:
        datamodule = hydra.utils.instantiate(cfg.data)
    data = datamodule.prepare()  # reads and validates the input: fails before any file exists
    if "input_scale" in cfg.data:  # the scale the data were read in, inferred where auto
        with open_dict(cfg):
            cfg.data.input_scale = data.preprocessor.input_scale
    summary = data.summary()
    log.info("data: %s", {k: v for k, v in summary.items() if k != "warnings"})
    for warning in summary.get("warnings", []):
        log.warning(warning)
    diffusion = hydra.utils.instantiate(cfg.diffusion)
    codec = None
    if issubclass(hydra.utils.get_class(cfg.model._target_), GEMDiffModule):  # not baselines
        codec = latent_codec(cfg.get("latent") or {}, data)
    learned = data if codec is None else encoded(data, codec)
    datamodule.data = learned  # what the model learns: genes, or their components
    diffusion.fit_standardization(learned.x_train)  # per-gene units of the chain, if asked for
    model = hydra.utils.instantiate(cfg.model, n_genes=learned.n_genes,
                                    n_classes=len(data.classes), diffusion=diffusion)
    if codec is not None:
        model.codec = codec
    if resume:
        check_resumable(resume, data, _generator_of(model))
    return TrainingRun(cfg, datamodule, data, model, resume)


def latent_codec(section, data: PreparedData) -> PCACodec | None:
    """The principal components the model learns (``latent.*``), or None: the genes."""
    if choose_space(str(section.get("space", "auto")), data.n_genes) == "genes":
        return None
    codec = PCACodec.fit(data.x_train, data.y_train, len(data.classes),
                         int(section.get("dims", 50)))
    log.info("the model learns the top %d principal components of the %d genes; every gene is "
             "read back through them (latent.space=genes learns the genes)", codec.dims,
             data.n_genes)
    return codec


def encoded(data: PreparedData, codec: PCACodec) -> PreparedData:
    """``data`` with the samples' component scores in place of their genes."""
    stream = None if data.stream is None else replace(data.stream, codec=codec)
    return replace(data, genes=[f"PC{i + 1}" for i in range(codec.dims)],
                   x_train=codec.encode(data.x_train), x_test=codec.encode(data.x_test),
                   stream=stream)


def _generator_of(model) -> Generator:
    return model if isinstance(model, Generator) else model.trained_generator()


def _fit_closed_form(generator: Generator, data: PreparedData, metadata: dict,
                     output_dir: Path) -> TrainResult:
    """A generator fitted on the training split at once, saved as a checkpoint that sampling
    and perturbation read like any other."""
    generator.fit(data.x_train, data.y_train)
    ckpt = save_checkpoint(add_section({"global_step": 0}, generator, metadata),
                           output_dir / CHECKPOINT)
    log.info("checkpoint: %s", ckpt)
    return TrainResult(str(ckpt), 0, {}, data.summary())


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def _build_trainer(cfg: DictConfig, model) -> tuple[L.Trainer, list[Any]]:
    """The Trainer of the config, with its callbacks and loggers (the resolved config logged)."""
    callbacks = _instantiate_all(cfg.get("callbacks"))
    # One switch turns the bar off, and it stays off where it cannot redraw in place.
    bar = bool(cfg.trainer.get("enable_progress_bar", True)) and interactive()
    if not bar:
        from lightning.pytorch.callbacks import ProgressBar

        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = _instantiate_all(cfg.get("logger"))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(resolved)
    extra: dict[str, Any] = {"enable_progress_bar": bar}
    if not cfg.trainer.get("plugins"):
        extra["plugins"] = [AtomicCheckpointIO()]
    if not model.automatic_optimization:  # the model steps its own optimizers (WGAN-GP)
        extra["gradient_clip_val"] = None
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      **extra)
    return trainer, loggers


def step_work(model, batch_size: int) -> float | None:
    """Multiply-adds in the forward pass of one training batch through the denoiser's
    projections and MLPs (None for a model without a denoiser)."""
    c = getattr(getattr(model, "denoiser", None), "config", None)
    if c is None:
        return None
    if c.architecture == "mlp":
        return batch_size * (2 * c.n_genes + c.depth * (1 + 2 * c.mlp_ratio) * c.d_model) \
            * c.d_model
    return batch_size * c.n_tokens * c.depth * (4 + 2 * c.mlp_ratio) * c.d_model ** 2


@contextmanager
def training_threads(cfg: DictConfig, model, trainer):
    """Train a small network on one CPU thread where no thread count was chosen (``threads``
    or ``OMP_NUM_THREADS`` and the like); the count is restored afterwards."""
    work = step_work(model, int(cfg.data.get("batch_size") or 1))
    chosen = cfg.get("threads") is not None or any(v in os.environ for v in THREAD_VARIABLES)
    before = torch.get_num_threads()
    if (chosen or work is None or work >= ONE_THREAD_WORK or before == 1
            or not isinstance(trainer.accelerator, CPUAccelerator) or trainer.world_size > 1):
        yield
        return
    log.info("training on one CPU thread: a step of this network (%.0fM multiply-adds) is too "
             "small to share between threads (threads=N chooses)", work / 1e6)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Third-party warnings about how Lightning is used here, not about the user's run.
FRAMEWORK_WARNINGS = (".*LeafSpec.*", ".*does not have many workers.*", ".*IterableDataset.*")


@contextmanager
def quiet_framework(verbose: bool = False):
    """Unless ``verbose``: no Lightning banners (accelerators), tips or model table (its INFO
    messages), and none of the third-party warnings of :data:`FRAMEWORK_WARNINGS`; its
    warnings about the run itself still show."""
    if verbose:
        yield
        return
    import warnings

    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in FRAMEWORK_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        lightning_log.setLevel(level)


def _fit_lightning(cfg: DictConfig, model, datamodule, data: PreparedData, output_dir: Path,
                   resume: str | None) -> TrainResult:
    trainer, loggers = _build_trainer(cfg, model)
    try:
        with training_threads(cfg, model, trainer):
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
    ckpt, step = _last_checkpoint(trainer), int(trainer.global_step)
    if ckpt is None and (output_dir / CHECKPOINT).is_file():
        # Spawned DDP ranks do not hand the checkpoint path and step back to this process.
        ckpt = output_dir / CHECKPOINT
        step = int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    return TrainResult(str(ckpt) if ckpt and ckpt.exists() else None, step, metrics,
                       data.summary(), primary=trainer.is_global_zero)


def _calibrate(cfg: DictConfig, result: TrainResult, data: PreparedData, progress: bool) -> None:
    """Calibrate the final checkpoint's sampler on the training data (``calibrate.*``)."""
    section = cfg.get("calibrate") or {}
    options = CalibrationOptions(rows=int(section.get("rows", 0)),
                                 levels=int(section.get("levels", CalibrationOptions.levels)),
                                 shrink=bool(section.get("shrink", True)), seed=int(cfg.seed),
                                 device=str(section.get("device", "auto")))
    if not result.checkpoint or options.rows == 0:
        return
    log.info("calibrating the sampler on the training data (%d noise draws per class at %d "
             "levels, on %s)", options.rows, options.levels, resolve_device(options.device))
    calibrate_checkpoint(result.checkpoint, data, options, progress)


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
