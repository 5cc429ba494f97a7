"""The one place a gemdiff checkpoint's metadata is written and read.

A gemdiff checkpoint is a Lightning checkpoint with an extra section (``"gemdiff"``) of plain
data: the generator's kind and arguments (:mod:`gemdiff.models.generators`), the genes, the
class names, the fitted preprocessing, the train/test sample ids with their scaled values
(``reference``: the model samples, perturbs and is scored without the original files) and the
resolved config. It loads with ``torch.load(weights_only=True)``; nothing is unpickled.
Checkpoints written before the section held ``reference`` re-read their data files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gemdiff.common.errors import InputError
from gemdiff.data.dataset import PreparedData, rebuild_split
from gemdiff.data.preprocess import Preprocessor
from gemdiff.models.calibration import CalibrationOptions
from gemdiff.models.generators import Generator, generator_from_checkpoint

SECTION = "gemdiff"
REQUIRED = ("genes", "classes", "preprocessor", "train_ids", "test_ids")


def training_metadata(data: PreparedData, config: dict[str, Any]) -> dict[str, Any]:
    """Everything later commands need of a training run besides the weights."""
    import gemdiff

    return {
        "genes": data.genes,
        "classes": data.classes,
        "preprocessor": data.preprocessor.state_dict(),
        "train_ids": data.train_ids,
        "test_ids": data.test_ids,
        "reference": {"x_train": torch.from_numpy(data.x_train),
                      "y_train": torch.from_numpy(data.y_train),
                      "x_test": torch.from_numpy(data.x_test),
                      "y_test": torch.from_numpy(data.y_test)},
        "data_summary": data.summary(),
        "config": config,
        "gemdiff_version": gemdiff.__version__,
    }


def add_section(checkpoint: dict[str, Any], generator: Generator,
                metadata: dict[str, Any]) -> dict[str, Any]:
    """Put the gemdiff section (the generator's and the run's metadata) into ``checkpoint``."""
    checkpoint[SECTION] = {"kind": generator.kind, **generator.checkpoint_section(), **metadata}
    return checkpoint


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write to a temporary file beside ``path``, flush it to disk, then rename it: a kill
    during a save leaves the previous file whole and no temporary file, and a full disk is
    one :class:`~gemdiff.common.errors.OutputWriteError` naming ``path``."""
    from gemdiff.common.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            try:
                torch.save(checkpoint, fh)
            except RuntimeError as err:
                # PyTorch's archive writer reports a failed write (ENOSPC) as "unexpected
                # pos", raised from the OSError: hand on the OSError itself.
                cause = _os_error_behind(err)
                if cause is None:
                    raise
                raise cause from None
            fh.flush()
            os.fsync(fh.fileno())
    return path


def _os_error_behind(err: BaseException) -> OSError | None:
    """The OSError an exception was raised from (its cause or context, at any depth)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@dataclass
class TrainedModel:
    """A trained generator, ready for sampling, with the data state it was fit on."""

    generator: Generator
    preprocessor: Preprocessor
    genes: list[str]
    classes: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where it was loaded from, for messages

    @property
    def kind(self) -> str:
        return self.generator.kind

    def data(self) -> PreparedData:
        """The data the model was trained on: same genes, split, classes and scaling."""
        ref = self.meta.get("reference")
        summary = self.meta.get("data_summary") or {}
        if ref is None:
            return rebuild_split(self.config["data"]["source"], self.genes, self.classes,
                                 self.preprocessor, self.meta["train_ids"], self.meta["test_ids"],
                                 self.meta.get("permuted_labels"))
        return PreparedData(list(self.genes), list(self.classes), self.preprocessor,
                            ref["x_train"].numpy(), ref["y_train"].numpy(),
                            ref["x_test"].numpy(), ref["y_test"].numpy(),
                            list(self.meta["train_ids"]), list(self.meta["test_ids"]),
                            self.source, split_counts={k: summary[k] for k in ("train", "test")}
                            if "streamed" in summary else None)

    def class_index(self, name: str, source: str | None = None) -> int:
        """Index of a class by name; an unknown name is a user error listing the valid ones."""
        if name not in self.classes:
            raise InputError(source or self.source or None,
                             f"has no class {name!r}; its classes are {', '.join(self.classes)}")
        return self.classes.index(name)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict of a gemdiff checkpoint file, with clear errors for others."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found" if not path.exists() else "is not a file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file fails in many ways
        raise InputError(path, f"is not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or SECTION not in ckpt:
        raise InputError(path, "is not a gemdiff checkpoint (no 'gemdiff' section)")
    return ckpt


def trained_model(ckpt: dict[str, Any], source: str | Path, ema: bool = True) -> TrainedModel:
    """The model a checkpoint dict holds (``ema``: the EMA weights, what sampling should use)."""
    section = ckpt[SECTION]
    missing = [k for k in REQUIRED if k not in section]
    if missing:
        raise InputError(source, f"is an inconsistent checkpoint: its metadata lacks "
                                 f"{', '.join(missing)}")
    raw = not ema and "current_model_state" in ckpt
    state = ckpt.get("current_model_state" if raw else "state_dict", {})
    try:
        generator = generator_from_checkpoint(section, state, str(source))
        preprocessor = Preprocessor.from_state_dict(section["preprocessor"])
    except (KeyError, TypeError, RuntimeError) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing key",
                                                            "Unexpected key"))), lines[0]
                      if lines else type(err).__name__)
        raise InputError(source, f"is an inconsistent checkpoint: its network does not match "
                                 f"its metadata ({detail[:200]})") from None
    own = set(generator.checkpoint_section()) | {"config", "kind"}
    model = TrainedModel(generator, preprocessor, list(section["genes"]),
                         list(section["classes"]), section.get("config", {}),
                         {k: v for k, v in section.items() if k not in own}, str(source))
    _check_consistent(model, str(source))
    return model


def _check_consistent(model: TrainedModel, source: str) -> None:
    """The genes, classes, network and stored data of a checkpoint must agree."""
    n_genes, n_classes = len(model.genes), len(model.classes)
    shape = model.generator.shape()
    problems = []
    if shape[0] != n_genes:
        problems.append(f"its network has {shape[0]} genes, its metadata {n_genes}")
    if shape[1] not in (0, n_classes):
        problems.append(f"its network has {shape[1]} classes, its metadata {n_classes}")
    ref = model.meta.get("reference")
    if ref is not None:
        for split in ("train", "test"):
            ids, x, y = model.meta[f"{split}_ids"], ref[f"x_{split}"], ref[f"y_{split}"]
            if tuple(x.shape) != (len(ids), n_genes) or len(y) != len(ids):
                problems.append(f"its {split} data are {tuple(x.shape)} for {len(ids)} "
                                f"sample ids and {n_genes} genes")
    if problems:
        raise InputError(source, "is an inconsistent checkpoint: " + "; ".join(problems))


def load_checkpoint(path: str | Path, ema: bool = True) -> TrainedModel:
    """Load a gemdiff checkpoint written by ``gemdiff.train`` (or a saved model's)."""
    return trained_model(read_checkpoint(path), path, ema)


def calibrate_checkpoint(path: str | Path, data: PreparedData, options: CalibrationOptions,
                         progress: bool = False) -> bool:
    """Calibrate the sampler of the checkpoint at ``path`` on its training data with its EMA
    weights, and write it back (atomically); False where the model has nothing to calibrate
    (see :meth:`gemdiff.models.generators.Generator.calibrate`)."""
    ckpt = read_checkpoint(path)
    model = trained_model(ckpt, path)
    if not model.generator.calibrate(data.x_train, data.y_train, len(data.classes), options,
                                     progress):
        return False
    ckpt[SECTION].update(model.generator.checkpoint_section())
    save_checkpoint(ckpt, path)
    return True


def check_resumable(path: str | Path, data: PreparedData, generator: Generator) -> None:
    """A checkpoint to resume from must hold the same kind of model, genes, classes and
    network as the run about to start."""
    saved = load_checkpoint(path)
    if saved.kind != generator.kind:
        raise InputError(path, f"holds a {saved.kind} model; this run trains a {generator.kind}")
    if saved.genes != data.genes:
        raise InputError(path, f"was trained on other genes ({len(saved.genes)}, from "
                               f"{saved.genes[0]!r}) than this run ({len(data.genes)}, from "
                               f"{data.genes[0]!r}); resume with the data config it was trained on")
    if saved.classes != data.classes:
        raise InputError(path, f"has classes {saved.classes}, this run {data.classes}")
    net, wanted = saved.generator.network(), generator.network()
    differ = {k: (net[k], v) for k, v in wanted.items() if k in net and net[k] != v}
    if differ:
        raise InputError(path, "holds another network: " + ", ".join(
            f"{k}={a} there, {b} here" for k, (a, b) in differ.items()))

