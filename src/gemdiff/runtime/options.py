"""Schemas of the apps' options: types and ranges, checked before a run writes anything.

Hydra composes each app's YAML config and rejects unknown keys; these pydantic models then
check the values a user sets on the command line (``t_end=5000``, ``trainer.max_steps=abc``,
``fdr=-1``) so that a bad one stops the run with one line naming the key, the value and what is
allowed. Only the keys listed here are checked; the rest go on to the code that reads them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gemdiff.common.errors import GemdiffError
from gemdiff.data.options import Data

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
Split = Literal["test", "train", "all"]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]
Precision = Literal[32, "32", "bf16"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Trainer(_Options):
    max_steps: Positive
    val_check_interval: Union[Positive, Annotated[float, Field(gt=0, le=1)], None] = None
    log_every_n_steps: Positive = 50
    gradient_clip_val: Optional[NonNegative] = None
    accumulate_grad_batches: Positive = 1


class Calibrate(_Options):
    rows: Count
    levels: Annotated[int, Field(ge=2)]
    shrink: bool
    device: Device = "auto"


class Denoiser(_Options):
    architecture: Literal["transformer", "mlp"] = "transformer"
    d_model: Positive = 128
    depth: Positive = 3
    n_heads: Positive = 4
    mlp_ratio: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 4.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    patch_size: Positive = 8


class Model(_Options):
    denoiser: Optional[Denoiser] = None
    lr: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = None
    weight_decay: Optional[NonNegative] = None
    warmup_steps: Optional[Count] = None
    p_uncond: Optional[Annotated[float, Field(ge=0, le=1)]] = None


class Diffusion(_Options):
    timesteps: Annotated[int, Field(ge=2)] = 1000


class Latent(_Options):
    space: Literal["auto", "genes", "pca"] = "auto"
    dims: Positive = 50


class Train(_Options):
    seed: Seed
    threads: Optional[Positive] = None
    overwrite: bool = False
    sample_plot: bool = True
    verbose: bool = False
    trainer: Trainer
    calibrate: Calibrate
    latent: Optional[Latent] = None
    data: Data
    model: Model
    diffusion: Optional[Diffusion] = None


class Sample(_Options):
    n_per_class: Optional[Positive]
    match: Literal["test"]
    sampler: Literal["ddpm", "ddim", "dpm2"]
    ddim_steps: Optional[Positive]
    guidance: NonNegative
    batch_size: Positive
    umap: bool
    seed: Seed
    wandb: bool = False
    threads: Optional[Positive] = None
    overwrite: bool = False
    device: Device = "auto"
    precision: Precision = 32


class _Bridge(_Options):
    ddim_steps: Positive
    t_end: Positive  # at most the checkpoint's T - 1, checked once it is loaded
    guidance: NonNegative
    core_k: NonNegative
    trajectory_frames: Count
    umap: bool
    progress: bool = True


class Perturb(_Bridge):
    split: Split
    cycle_samples: Optional[Positive] = 64
    solver: Literal["ddim", "dpm2"] = "dpm2"
    spacing: Literal["uniform", "logsnr"] = "logsnr"
    beside: Optional[Literal["bridge", "mean_shift", "ot", "entropic_ot", "none"]] = None
    seed: Seed
    wandb: bool = False
    threads: Optional[Positive] = None
    overwrite: bool = False
    device: Device = "auto"
    precision: Precision = 32


class Subset(Train):
    perturb: _Bridge


class Screen(_Options):
    subset_size: Annotated[int, Field(ge=2)]
    exclusive: bool
    n_control: Count
    feature_sizes: list[Annotated[int, Field(ge=2)]]
    feature_size_repeats: Count
    score: Literal["umap", "gene"]
    balanced: Literal["embedding", "refit", "none"]
    flag_sd: NonNegative
    flag_reference: Literal["subsets", "control"]
    n_jobs: int
    plots: bool
    plot_top: Count
    seed: Seed
    threads: Optional[Positive] = None
    overwrite: bool = False

    class Umap(_Options):
        n_neighbors: Annotated[int, Field(ge=2)]
        min_dist: NonNegative
        n_epochs: Positive
        knn: Literal["exact", "umap"]

    umap: Umap

    @model_validator(mode="after")
    def _jobs(self):
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ValueError("n_jobs: must be -1 (all cores) or at least 1")
        return self


class Core(_Options):
    select: Literal["high", "top", "all"]
    top: Optional[Positive]
    seeds: Annotated[list[Seed], Field(min_length=1)]
    null_model: bool
    core_sd: NonNegative
    n_jobs: Positive
    job_overrides: list[str]
    threads: Optional[Positive] = None
    overwrite: bool = False


class Enrich(_Options):
    fdr: Annotated[float, Field(gt=0, le=1)]
    min_set_size: Positive
    max_set_size: Positive
    plot_top: Count
    ppi_min_score: Optional[Finite]
    toppgene: bool
    threads: Optional[Positive] = None
    overwrite: bool = False

    @model_validator(mode="after")
    def _sizes(self):
        if self.max_set_size < self.min_set_size:
            raise ValueError(f"max_set_size: {self.max_set_size} is below min_set_size="
                             f"{self.min_set_size}")
        return self


class Evaluate(_Options):
    split: Split
    umap: bool
    seed: Seed
    threads: Optional[Positive] = None
    overwrite: bool = False
    device: Device = "auto"


SCHEMAS: dict[str, type[_Options]] = {
    "train": Train, "sample": Sample, "perturb": Perturb, "subset": Subset, "screen": Screen,
    "core": Core, "enrich": Enrich, "evaluate": Evaluate,
}


def _values(schema: type[BaseModel], cfg: Any, prefix: str = "") -> dict[str, Any]:
    """The values of ``cfg`` that ``schema`` names, resolved; keys that cannot be resolved yet
    (a missing ``???`` value, an interpolation of the Hydra run) are left out."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    out: dict[str, Any] = {}
    for name, field in schema.model_fields.items():
        try:
            if name not in cfg:
                continue
            node = cfg._get_node(name)
            if node is None or node._is_missing():
                continue
            value = cfg[name]
        except (OmegaConfBaseException, ValueError, KeyError, TypeError):
            continue
        sub = field.annotation
        sub = next((a for a in getattr(sub, "__args__", ()) if isinstance(a, type)
                    and issubclass(a, BaseModel)), sub)
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, DictConfig):
            out[name] = _values(sub, value, f"{prefix}{name}.")
        elif isinstance(value, DictConfig) or OmegaConf.is_list(value):
            try:
                out[name] = OmegaConf.to_container(value, resolve=True)
            except OmegaConfBaseException:
                continue
        else:
            out[name] = value
    return out


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return str(value) if not isinstance(value, str) else (value or "''")


def check_options(app: str, cfg: Any) -> None:
    """Check the options of ``app`` (a config name: train, sample, ...) in a composed config.

    Raises :class:`~gemdiff.common.errors.GemdiffError` with one line: the key, the value given
    and what is allowed.
    """
    schema = SCHEMAS.get(app)
    if schema is None:
        return
    values = _values(schema, cfg)
    try:
        schema.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)
                       and not str(p).startswith(("function-", "constrained-", "union")))
        msg = first["msg"]
        if msg.startswith("Value error, "):  # a cross-field rule names its key itself
            key, _, rest = msg[len("Value error, "):].partition(": ")
            raise GemdiffError(f"option {key}={_show(values.get(key))}: {rest}") from None
        given = first.get("input")
        if isinstance(given, dict):
            raise GemdiffError(f"option {loc}: {msg[0].lower()}{msg[1:]}") from None
        raise GemdiffError(f"option {loc}={_show(given)}: {msg[0].lower()}{msg[1:]}") from None
