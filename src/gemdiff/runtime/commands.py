"""The bodies of the commands that other commands reuse: training into a run folder
(``gemdiff.train``, each job of a sweep and of ``gemdiff.core``) and perturbing into one
(``gemdiff.perturb`` and the core sweep's jobs). Each reads a composed config and writes the
run's files; the work itself is the library's (:mod:`gemdiff.training.fit`, :mod:`gemdiff.api`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, open_dict

from gemdiff.common.files import write_json, write_matrix, write_table, write_text
from gemdiff.runtime.cli import rounded
from gemdiff.common.resultsets import ResultSet, check_fresh
from gemdiff.runtime.outputs import write_h5ad
from gemdiff.runtime.sweep import in_multirun

log = logging.getLogger("gemdiff")
# What a finished run leaves in its folder; a folder holding any of them is not reused silently.
TRAIN_PRODUCTS = ("summary.json", "loss.tsv", "checkpoints")
PERTURB_PRODUCTS = ("perturbed.tsv", "perturbed.h5ad", "gene_scores.tsv", "core_genes.txt",
                    "metrics.json")


def train_run(cfg: DictConfig, pick_up: bool | None = None) -> dict:
    """Train from a composed config into ``paths.output_dir``; returns the summary.

    Data problems raise :class:`~gemdiff.common.errors.GemdiffError` before anything is
    written. With ``pick_up`` (the default inside a multirun) a folder holding a finished run
    is returned as it is and one holding a stopped run resumes from its checkpoint.
    """
    from gemdiff.training.fit import CHECKPOINT, prepare_run

    out = Path(cfg.paths.output_dir)
    resume = cfg.get("ckpt_path")
    if (in_multirun() if pick_up is None else pick_up) and not cfg.get("overwrite", False):
        # Run again in the same folder (a sweep, a sweep job): skip finished, resume stopped.
        if (out / "summary.json").is_file():
            log.info("%s holds a finished run: skipped", out)
            return json.loads((out / "summary.json").read_text())
        if not resume and (out / CHECKPOINT).is_file():
            resume = str(out / CHECKPOINT)
            log.info("resuming the stopped job from %s", resume)
    _configure_run(cfg)
    run = prepare_run(cfg, resume=resume)
    resuming_here = bool(resume) and out.resolve() in Path(resume).resolve().parents
    check_fresh(out, TRAIN_PRODUCTS, cfg.get("overwrite", False) or resuming_here)
    result = run.fit(out, progress=bool(cfg.trainer.get("enable_progress_bar", True)))
    if result.primary:
        if cfg.get("sample_plot", True):
            sample_figure(result.checkpoint, out / "samples.png")
        write_json(result.to_dict(), out / "summary.json")
        log.info("checkpoint: %s", result.checkpoint)
    return result.to_dict()


def sample_figure(checkpoint: str | Path, path: Path) -> Path:
    """``samples.png`` of a training run: as many synthetic samples per class as the real test
    split holds (25 DPM-Solver++ steps), against those real ones on their principal
    components."""
    from gemdiff.models.diffusion import SOLVER_NAMES
    from gemdiff.models.generators import SampleOptions
    from gemdiff.tools.results import plot_samples
    from gemdiff.tools.sampling import labels_to_generate, sample_scaled
    from gemdiff.training.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    data = model.data()
    labels = labels_to_generate(model.classes, data.y_test, None)
    options = SampleOptions("dpm2")
    x = sample_scaled(model, labels, 0, options)
    x, clipped = model.preprocessor.clip_plausible(x, data.x_train)
    how = f"{options.ddim_steps} {SOLVER_NAMES.get(options.sampler, options.sampler)} steps"
    return plot_samples(data, x, labels, path, f"Real test vs synthetic samples ({how}; "
                                               f"{clipped:.1%} of values at the bound)")


def _configure_run(cfg: DictConfig) -> None:
    """What a run needs of where it runs: W&B runs of a sweep share a group and carry tags
    naming what varies; inside a multirun DDP spawns its ranks, because relaunching the command
    (Lightning's default) would run the whole sweep once per rank. Under SLURM the scheduler's
    tasks are the ranks and nothing is launched."""
    if cfg.get("logger") and cfg.logger.get("wandb"):
        from gemdiff.runtime.tracking import run_group, run_tags

        with open_dict(cfg):
            cfg.logger.wandb.group = run_group(cfg.task_name)
            cfg.logger.wandb.tags = run_tags(cfg)
    strategy = cfg.trainer.get("strategy")
    if (in_multirun() and hasattr(strategy, "get") and "SLURM_NTASKS" not in os.environ
            and str(strategy.get("_target_", "")).endswith("DDPStrategy")
            and strategy.get("start_method", "popen") == "popen"):
        with open_dict(cfg):
            cfg.trainer.strategy.start_method = "spawn"
        log.info("DDP inside a multirun: ranks are spawned (start_method=spawn)")


def perturb_run(cfg: DictConfig) -> dict:
    """Perturb with a checkpoint from a composed ``perturb`` config and write every file into
    ``paths.output_dir``; returns the metrics."""
    import hydra

    from gemdiff.api.model import GEMDiff

    out = Path(cfg.paths.output_dir)
    results = ResultSet(out, PERTURB_PRODUCTS, cfg.get("overwrite", False), "gemdiff perturb")
    model = GEMDiff.load(cfg.ckpt_path)
    moving = hydra.utils.instantiate(cfg.map)
    adata = model.perturb(cfg.get("samples"), cfg.source, cfg.target,
                          label_key=cfg.get("samples_label_key"),
                          labels=cfg.get("samples_labels"), layer=cfg.get("samples_layer"),
                          split=cfg.split, map=moving, core_k=cfg.core_k, seed=cfg.seed,
                          beside=cfg.get("beside"),
                          umap=cfg.umap, trajectory=cfg.trajectory_frames,
                          progress=cfg.get("progress", True))
    with results.writing():
        write_perturbation(adata, out)
        images = write_perturbation_plots(adata, out, cfg.seed)
    metrics = dict(adata.uns["metrics"])
    from gemdiff.runtime.tracking import log_results

    log_results(cfg, out, metrics, images, {"gene_scores": gene_table(adata)})
    log.info("metrics: %s", rounded(metrics))
    return metrics


def gene_table(adata):
    """The gene scores of a perturbation result, best first (``gene_scores.tsv``)."""
    return (adata.var.rename_axis("gene").reset_index()
            .sort_values("score", ascending=False, kind="stable").reset_index(drop=True))


def write_perturbation(adata, out: Path) -> None:
    """The files of a perturbation result: ``perturbed.tsv`` (input units, the samples' ids),
    ``perturbed.h5ad``, ``gene_scores.tsv``, ``core_genes.txt`` and ``metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    write_matrix(adata.X, adata.obs_names, adata.var_names, out / "perturbed.tsv")
    write_h5ad(adata, out / "perturbed.h5ad")
    scores = gene_table(adata)
    write_table(scores, out / "gene_scores.tsv")
    write_text("".join(f"{g}\n" for g in scores.loc[scores.core, "gene"]), out / "core_genes.txt")
    write_json(adata.uns["metrics"], out / "metrics.json")


def write_perturbation_plots(adata, out: Path, seed: int = 0) -> list[Path]:
    """``genes.png``, ``umap.png`` and ``trajectory.png`` of a perturbation result, where it
    holds them."""
    from gemdiff.tools.results import plot_gene_shifts, plot_perturbation, plot_trajectory

    images = []
    if "gene_shifts" in adata.uns and len(adata.uns["gene_shifts"]["genes"]):
        images.append(plot_gene_shifts(adata, out / "genes.png"))
    if "trajectory" in adata.uns:
        images.append(plot_trajectory(adata, out / "trajectory.png"))
    if "X_umap" in adata.obsm:
        images.append(plot_perturbation(adata, out / "umap.png", seed))
    return images

