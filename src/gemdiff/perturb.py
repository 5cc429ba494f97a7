"""Carry samples of one phenotype to another and call the genes that move most (Algorithm 1).

    python -m gemdiff.perturb ckpt_path=... source=tumor target=normal split=test
    python -m gemdiff.perturb ckpt_path=... source=tumor target=normal samples=new.h5ad
    python -m gemdiff.perturb ckpt_path=... map=ot              # a baseline map instead

Each source sample is DDIM-encoded with the source label to the latent at ``t_end`` and decoded
with the target label. Writes into the run folder: ``perturbed.tsv`` (the input's units, same
sample ids), ``perturbed.h5ad`` (moved values in X, originals in ``layers["original"]``, gene
scores in ``var``), ``gene_scores.tsv``, ``core_genes.txt``, ``metrics.json``, ``umap.png``
(real target, real source and perturbed source), ``trajectory.png`` and ``genes.png`` (the top
core genes: source, perturbed and real target values side by side).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import run_task


def run(cfg: DictConfig) -> dict:
    """Perturb, score genes, compute metrics and write every file; returns the metrics."""
    from gemdiff.runtime.commands import perturb_run

    return perturb_run(cfg)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="perturb")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.perturb import main as entry

    entry()
