"""Weights & Biases for the apps: run labels shared by a sweep, and results logged as a run.

W&B runs offline unless ``WANDB_MODE=online`` (no account needed; ``wandb sync <run>/wandb/...``
uploads later). Runs of one multirun share a group (the task and the sweep folder's name) and
carry tags naming the experiment, gene set, feature size and training fraction, so the
dashboard can set them side by side.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from gemdiff.runtime.sweep import in_multirun


def run_group(task: str) -> str:
    """``task`` for a single run; ``task/<sweep folder name>`` for the jobs of a multirun."""
    if in_multirun():
        from hydra.core.hydra_config import HydraConfig

        return f"{task}/{Path(HydraConfig.get().sweep.dir).name}"
    return task


def run_tags(cfg: DictConfig) -> list[str]:
    """The config's tags plus the experiment, gene set, feature size and training fraction."""
    tags = [str(t) for t in cfg.get("tags") or []]
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        experiment = HydraConfig.get().runtime.choices.get("experiment")
        if experiment:
            tags.append(f"experiment={experiment}")
    data = cfg.get("data") or {}
    for key, name in (("gene_set", "gene_set"), ("n_genes", "genes"),
                      ("train_fraction", "fraction")):
        value = data.get(key) if hasattr(data, "get") else None
        if value is not None:
            tags.append(f"{name}={value}")
    return list(dict.fromkeys(t[:64] for t in tags))  # W&B limits a tag to 64 characters


def log_results(cfg: DictConfig, out: str | Path, metrics: Mapping[str, Any],
                images: Sequence[Path] = (), tables: Mapping[str, Any] | None = None
                ) -> None:
    """Log an app's results as a W&B run when the app was asked to (``wandb=true``): its
    resolved config, scalar metrics as the summary, the figures and the tables."""
    if not cfg.get("wandb", False):
        return
    import wandb

    config = OmegaConf.to_container(cfg, resolve=True)
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "gemdiff"), dir=str(out),
                     mode=os.environ.get("WANDB_MODE", "offline"), job_type=cfg.task_name,
                     group=run_group(cfg.task_name), tags=run_tags(cfg), config=config,
                     reinit="finish_previous")
    try:
        run.summary.update({k: v for k, v in metrics.items()
                            if isinstance(v, (int, float, str, bool))})
        logged: dict[str, Any] = {p.stem: wandb.Image(str(p)) for p in map(Path, images)
                                  if p.is_file()}
        for name, df in (tables or {}).items():
            logged[name] = wandb.Table(dataframe=df)
        if logged:
            run.log(logged)
    finally:
        run.finish()
