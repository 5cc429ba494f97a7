"""Core genes over screened subsets: sweep a model per subset, then aggregate the gene scores.

    python -m gemdiff.core screen=<screen run> source=tumor target=normal
    python -m gemdiff.core screen=<screen run> launcher=joblib n_jobs=2 seeds=[0,1,2]
    python -m gemdiff.core screen=<screen run> sweep_dir=<a finished sweep>     # aggregate only

Selects subsets of a ``gemdiff.screen`` run (``select=high``: those flagged high cluster
potential), and runs ``gemdiff.subset`` over them as one Hydra multirun (subsets x seeds, and
with ``null_model=true`` the same with labels permuted), with the screen's data options. A stopped
sweep is run again by the same command in the same folder; finished jobs are skipped.

Aggregation, per gene: the perturbation score of its subset's model (mean |x - x'| over the
source samples, in log2(n + 1) units so that models of different subsets compare), averaged
over seeds, and its direction toward the target. Core genes score above mean + ``core_sd`` SD
over all screened genes (the paper's 2 SD). With the permuted-label models, each gene also gets
an empirical p-value against the pooled null scores and a Benjamini-Hochberg q-value; with
several seeds, how often it is called core. Per subset: its mean score against its silhouette
(Pearson's r, the paper's Fig. 6).

Writes ``core_genes.tsv`` (every screened gene), ``core_genes.txt`` (for ``gemdiff.enrich``),
``subset_scores.tsv``, ``summary.json``, ``correlation.png`` and ``scores.png``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import run_task

log = logging.getLogger("gemdiff.core")
PRODUCTS = ("core_genes.tsv", "core_genes.txt", "subset_scores.tsv", "summary.json")


def launch(cfg: DictConfig, subsets: list[str], jobs_dir: Path) -> None:
    """Run ``gemdiff.subset`` as one Hydra multirun in a child process."""
    from gemdiff.common.errors import GemdiffError
    from gemdiff.runtime.sweep import search_path_override
    from gemdiff.tools.core_genes import screen_data_overrides

    screen = Path(cfg.screen).resolve()
    cmd = [sys.executable, "-m", "gemdiff.subset", "-m", f"screen={screen}",
           f"subset={','.join(subsets)}", f"seed={','.join(str(s) for s in cfg.seeds)}",
           f"source={cfg.source}", f"target={cfg.target}", f"hydra.sweep.dir={jobs_dir}",
           *screen_data_overrides(screen), *search_path_override(screen)]
    if cfg.null_model:
        cmd.append("data.permute_labels=false,true")
    env = dict(os.environ)
    if cfg.launcher == "joblib":
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={cfg.n_jobs}"]
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, cfg.n_jobs)))
    elif cfg.launcher != "basic":
        cmd.append(f"hydra/launcher={cfg.launcher}")
    cmd += list(cfg.job_overrides)
    n = len(subsets) * len(cfg.seeds) * (2 if cfg.null_model else 1)
    log.info("sweep of %d jobs into %s", n, jobs_dir)
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise GemdiffError(f"the sweep stopped (exit {done.returncode}); the jobs' logs are in "
                           f"{jobs_dir}; run the same command with hydra.run.dir="
                           f"{Path(cfg.paths.output_dir)} to go on (finished jobs are skipped)")


def run(cfg: DictConfig) -> dict:
    from gemdiff.common.files import write_json, write_table, write_text
    from gemdiff.evaluation import plots
    from gemdiff.common.resultsets import ResultSet
    from gemdiff.runtime.tracking import log_results
    from gemdiff.tools.core_genes import aggregate, read_jobs, read_screen, select_subsets

    out = Path(cfg.paths.output_dir)
    published = ResultSet(out, PRODUCTS, cfg.get("overwrite", False), "gemdiff core")
    subsets = read_screen(cfg.screen)
    if cfg.sweep_dir:
        jobs_dir = Path(cfg.sweep_dir)
    else:
        chosen = select_subsets(subsets, cfg.select, cfg.get("top"))
        jobs_dir = out / "jobs"
        launch(cfg, chosen, jobs_dir)
    genes, per_subset, summary = aggregate(read_jobs(jobs_dir), subsets, cfg.core_sd)
    summary |= {"screen": str(cfg.screen), "jobs": str(jobs_dir), "source": cfg.source,
                "target": cfg.target}
    with published.writing():
        write_table(genes, out / "core_genes.tsv")
        write_text("".join(f"{g}\n" for g in genes.loc[genes.core, "gene"]),
                   out / "core_genes.txt")
        write_table(per_subset, out / "subset_scores.tsv")
        write_json(summary, out / "summary.json")
        plots.subset_correlation(per_subset, summary.get("pearson_r"), summary.get("pearson_p"),
                                 out / "correlation.png")
        plots.core_scores(genes, summary["threshold"], out / "scores.png")
    log_results(cfg, out, summary, [out / "correlation.png", out / "scores.png"],
                {"core_genes": genes[genes.core], "subset_scores": per_subset})
    log.info("%d core genes of %d (score > %.3f log2 units) from %d subsets; Pearson r = %s",
             summary["n_core"], summary["n_genes"], summary["threshold"], summary["n_subsets"],
             f"{summary['pearson_r']:.2f}" if "pearson_r" in summary else "n/a")
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="core")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.core import main as entry

    entry()
