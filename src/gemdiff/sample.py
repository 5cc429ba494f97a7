"""Generate class-conditional synthetic expression from a trained model (augmentation).

    python -m gemdiff.sample ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt
    python -m gemdiff.sample ckpt_path=... n_per_class=500 sampler=dpm2   # 25 steps instead of 1000

Writes into the run folder: ``synthetic.tsv`` and ``synthetic_labels.tsv`` (GEMDiff format, the
input's units), ``synthetic.h5ad``, ``metrics.json`` (against the model's real test split) and
``umap_real_vs_synthetic.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import rounded, run_task

log = logging.getLogger("gemdiff.sample")
PRODUCTS = ("synthetic.tsv", "synthetic_labels.tsv", "synthetic.h5ad", "metrics.json")


def run(cfg: DictConfig) -> dict:
    """Sample, write the files and metrics; returns the metrics."""
    from gemdiff.api.model import GEMDiff
    from gemdiff.common.errors import GemdiffError
    from gemdiff.common.files import write_json, write_labels, write_matrix
    from gemdiff.common.resultsets import ResultSet
    from gemdiff.runtime.outputs import write_h5ad
    from gemdiff.runtime.tracking import log_results
    from gemdiff.tools.results import plot_synthetic

    if cfg.n_per_class is None and cfg.match != "test":
        raise GemdiffError(f"match={cfg.match!r}: use match=test or set n_per_class")
    out = Path(cfg.paths.output_dir)
    results = ResultSet(out, PRODUCTS, cfg.get("overwrite", False), "gemdiff sample")
    model = GEMDiff.load(cfg.ckpt_path)
    adata = model.sample(cfg.n_per_class, sampler=cfg.sampler, ddim_steps=cfg.ddim_steps,
                         guidance=cfg.guidance, seed=cfg.seed, batch_size=cfg.batch_size,
                         umap=cfg.umap, progress=True, device=cfg.get("device", "auto"),
                         precision=str(cfg.get("precision", 32)))
    metrics = dict(adata.uns["metrics"])
    images = []
    with results.writing():
        write_matrix(adata.X, adata.obs_names, adata.var_names, out / "synthetic.tsv")
        write_labels(adata.obs_names, adata.obs["label"].astype(str),
                     out / "synthetic_labels.tsv")
        write_h5ad(adata, out / "synthetic.h5ad")
        write_json(metrics, out / "metrics.json")
        if cfg.umap:
            images.append(plot_synthetic(adata, out / "umap_real_vs_synthetic.png",
                                         f"real test vs synthetic (MMD ratio "
                                         f"{metrics['mmd_ratio']:.2f})"))
    log_results(cfg, out, metrics, images)
    log.info("metrics: %s", rounded(metrics))
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="sample")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.sample import main as entry

    entry()
