"""Generate class-conditional synthetic expression from a trained model (augmentation).

    python -m gemdiff.sample ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt
    python -m gemdiff.sample ckpt_path=... n_per_class=500 sampler=ddim ddim_steps=100

Writes into the run folder: ``synthetic.tsv`` and ``synthetic_labels.tsv`` (GEMDiff format, the
input's units), ``metrics.json`` (against the model's real train/test split) and
``umap_real_vs_synthetic.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from gemdiff.checkpoint import TrainedModel, load_checkpoint
from gemdiff.cli import config_dir, rounded, run_task
from gemdiff.errors import GemdiffError
from gemdiff.metrics import augmentation_metrics, umap_embed
from gemdiff.tracking import log_results
from gemdiff.outputs import check_fresh, write_json, write_labels, write_matrix

log = logging.getLogger("gemdiff.sample")
PRODUCTS = ("synthetic.tsv", "synthetic_labels.tsv", "metrics.json")


def labels_to_generate(model: TrainedModel, y_test: np.ndarray, n_per_class: int | None,
                 match: str | None) -> np.ndarray:
    """Labels to generate: ``n_per_class`` of every class, or the test split's class counts."""
    if n_per_class is not None:
        if n_per_class < 1:
            raise GemdiffError(f"n_per_class must be at least 1, got {n_per_class}")
        return np.repeat(np.arange(len(model.classes)), n_per_class)
    if match != "test":
        raise GemdiffError(f"match={match!r}: use match=test or set n_per_class")
    return np.sort(y_test)


def generate(model: TrainedModel, labels: np.ndarray, sampler: str = "ddpm",
             ddim_steps: int = 100, guidance: float = 1.0, seed: int = 0,
             batch_size: int = 4096, progress: bool = False) -> np.ndarray:
    """Draw one sample per label (scaled units), in batches, reproducibly for a seed.

    ``sampler``, ``ddim_steps`` and ``guidance`` concern diffusion models; a baseline
    (Gaussian, WGAN-GP) draws from its own sampler. A diffusion model's samples end clamped to
    the data's range [-1, 1]: unclipped steps (``diffusion.clip_x0=false``) leave a trained
    model's samples within a few tenths of it, but a briefly trained one can land far outside,
    where the expression they stand for is meaningless.
    """
    if model.kind != "diffusion":
        return model.sampler.sample(labels, seed)
    if sampler not in ("ddpm", "ddim"):
        raise GemdiffError(f"sampler={sampler!r} is not one of 'ddpm', 'ddim'")
    gen = torch.Generator().manual_seed(seed)
    eps_fn = model.eps_fn(guidance)
    out = []
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            y = torch.from_numpy(labels[start:start + batch_size])
            shape = (len(y), len(model.genes))
            if sampler == "ddpm":
                x = model.diffusion.ddpm_sample(eps_fn, y, shape, generator=gen,
                                                progress=progress).x
            else:
                noise = torch.randn(shape, generator=gen)
                x = model.diffusion.ddim_decode(eps_fn, noise, y, steps=ddim_steps,
                                                progress=progress,
                                                clip_x0=model.diffusion.clip_x0).x
            out.append(x.clamp(-1.0, 1.0).numpy())
    return np.concatenate(out)


def plot_real_vs_synthetic(x_real: np.ndarray, y_real: np.ndarray, x_syn: np.ndarray,
                           y_syn: np.ndarray, classes: list[str], path: Path, title: str,
                           seed: int = 0) -> Path:
    """One UMAP of real and synthetic samples together, coloured by class and origin."""
    from gemdiff import plots

    emb = umap_embed(np.concatenate([x_real, x_syn]), seed=seed)
    names = [classes[i] for i in np.concatenate([y_real, y_syn])]
    is_syn = np.r_[np.zeros(len(x_real), bool), np.ones(len(x_syn), bool)]
    return plots.umap_real_vs_synthetic(emb, names, is_syn, path, title)


def run(cfg: DictConfig) -> dict:
    """Sample, write the files and metrics; returns the metrics."""
    check_fresh(cfg.paths.output_dir, PRODUCTS, cfg.get("overwrite", False))
    model = load_checkpoint(cfg.ckpt_path)
    data = model.data()
    labels = labels_to_generate(model, data.y_test, cfg.n_per_class, cfg.match)
    torch.manual_seed(cfg.seed)
    synth = generate(model, labels, cfg.sampler, cfg.ddim_steps, cfg.guidance, cfg.seed,
                     cfg.batch_size, progress=True)
    synth = model.preprocessor.snap_unexpressed(synth, labels)

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [model.classes[i] for i in labels]
    ids = [f"synthetic_{c}_{i + 1}" for i, c in enumerate(names)]
    write_matrix(model.preprocessor.inverse_transform(synth), ids, model.genes,
                 out / "synthetic.tsv")
    write_labels(ids, names, out / "synthetic_labels.tsv")

    metrics = augmentation_metrics(data.x_train, data.y_train, data.x_test, data.y_test,
                                   synth, labels, seed=cfg.seed, with_umap=cfg.umap).to_dict()
    metrics.update(n_synthetic=len(labels), model=model.kind,
                   sampler=cfg.sampler if model.kind == "diffusion" else model.kind,
                   guidance=cfg.guidance)
    write_json(metrics, out / "metrics.json")
    if cfg.umap:
        title = f"real test vs synthetic (MMD ratio {metrics['mmd_ratio']:.2f})"
        plot_real_vs_synthetic(data.x_test, data.y_test, synth, labels, model.classes,
                               out / "umap_real_vs_synthetic.png", title, cfg.seed)
    log_results(cfg, out, metrics, [out / "umap_real_vs_synthetic.png"])
    log.info("metrics: %s", rounded(metrics))
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="sample")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.sample import main as entry

    entry()
