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

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from gemdiff.cli import config_dir, run_task
from gemdiff.cluster_potential import empirical_p
from gemdiff.errors import GemdiffError, InputError
from gemdiff.outputs import check_fresh, write_json, write_table, write_text
from gemdiff.subset import JOB_FILE
from gemdiff.tracking import log_results

log = logging.getLogger("gemdiff.core")
PRODUCTS = ("core_genes.tsv", "core_genes.txt", "subset_scores.tsv", "summary.json")


def read_screen(screen: str | Path) -> pd.DataFrame:
    """The ``subsets.tsv`` of a screen run, with a clear error when it is not one."""
    path = Path(screen) / "subsets.tsv"
    if not path.is_file():
        raise InputError(screen, "is not a finished gemdiff.screen run (no subsets.tsv)")
    df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    missing = {"subset", "set", "genes", "silhouette", "flag"} - set(df.columns)
    if missing:
        raise InputError(path, f"lacks the column(s) {', '.join(sorted(missing))}")
    return df


def select_subsets(subsets: pd.DataFrame, select: str, top: int | None = None) -> list[str]:
    """Subset ids to sweep: ``high`` (flagged high), ``top`` (the ``top`` best) or ``all``."""
    if select == "high":
        chosen = subsets[subsets.flag == "high"]
    elif select == "top":
        if not top or top < 1:
            raise GemdiffError("select=top needs top=<number of subsets>")
        chosen = subsets.sort_values("silhouette", ascending=False).head(top)
    elif select == "all":
        chosen = subsets
    else:
        raise GemdiffError(f"select={select!r} is not one of 'high', 'top', 'all'")
    if chosen.empty:
        raise GemdiffError(f"select={select} chose no subset of the screen; try select=top "
                           "top=<N> or select=all")
    return chosen["subset"].tolist()


def screen_data_overrides(screen: Path) -> list[str]:
    """The screen's ``data`` overrides, so every job reads the same matrix the same way.

    The simulator's seed follows the run's seed; it is pinned to the screen's, so that jobs
    of other seeds still see the same simulated matrix.
    """
    overrides_file = screen / ".hydra/overrides.yaml"
    config_file = screen / ".hydra/config.yaml"
    overrides = [o for o in (OmegaConf.load(overrides_file) if overrides_file.is_file() else [])
                 if str(o).split("=")[0].lstrip("+~").split(".")[0] == "data"]
    if config_file.is_file():
        cfg = OmegaConf.load(config_file)
        if OmegaConf.select(cfg, "data.source.format") == "synthetic":
            overrides.append(f"data.source.seed={cfg.seed}")
    return [str(o) for o in overrides]


def launch(cfg: DictConfig, subsets: list[str], jobs_dir: Path) -> None:
    """Run ``gemdiff.subset`` as one Hydra multirun in a child process."""
    screen = Path(cfg.screen).resolve()
    cmd = [sys.executable, "-m", "gemdiff.subset", "-m", f"screen={screen}",
           f"subset={','.join(subsets)}", f"seed={','.join(str(s) for s in cfg.seeds)}",
           f"source={cfg.source}", f"target={cfg.target}", f"hydra.sweep.dir={jobs_dir}",
           *screen_data_overrides(screen)]
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


def read_jobs(jobs_dir: str | Path) -> pd.DataFrame:
    """Every finished job of a sweep: one row per gene and job."""
    frames = []
    for job_file in sorted(Path(jobs_dir).rglob(JOB_FILE)):
        scores_file = job_file.parent / "perturb/gene_scores.tsv"
        if not scores_file.is_file():
            continue
        job = json.loads(job_file.read_text())
        df = pd.read_csv(scores_file, sep="\t")
        frames.append(df.assign(subset=job["subset"], seed=job["seed"],
                                permuted=job["permuted"]))
    if not frames:
        raise InputError(jobs_dir, f"holds no finished gemdiff.subset job (no {JOB_FILE} with "
                                   "perturb/gene_scores.tsv)")
    return pd.concat(frames, ignore_index=True)


def core_calls(scores: pd.Series, k: float) -> pd.Series:
    """Genes scoring above mean + k SD (over all genes given)."""
    return scores > scores.mean() + k * scores.std(ddof=1)


def aggregate(jobs: pd.DataFrame, subsets: pd.DataFrame, core_sd: float = 2.0
              ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-gene core calls and per-subset scores from the rows of :func:`read_jobs`."""
    real = jobs[~jobs.permuted]
    if real.empty:
        raise GemdiffError("the sweep has no job with real labels")
    genes = (real.groupby(["gene", "subset"], sort=False)
             .agg(score=("score_log2", "mean"), mean_change_log2=("mean_change_log2", "mean"),
                  n_seeds=("seed", "nunique"))
             .reset_index())
    info = subsets.set_index("subset")
    genes.insert(1, "set", genes.subset.map(info["set"]))
    genes["silhouette"] = genes.subset.map(info["silhouette"])
    genes["direction"] = np.where(genes.mean_change_log2 >= 0, "up", "down")
    genes["z"] = (genes.score - genes.score.mean()) / genes.score.std(ddof=1)
    genes["core"] = core_calls(genes.score, core_sd)

    summary: dict = {"n_genes": int(len(genes)), "n_subsets": int(genes.subset.nunique()),
                     "seeds": sorted(int(s) for s in real.seed.unique()), "core_sd": core_sd,
                     "threshold": float(genes.score.mean() + core_sd * genes.score.std(ddof=1)),
                     "n_core": int(genes.core.sum())}
    # Stability: the core call made from each seed alone.
    seeds = summary["seeds"]
    if len(seeds) > 1:
        per_seed = {}
        for s in seeds:
            one = real[real.seed == s]
            per_seed[s] = set(one.gene[core_calls(one.score_log2, core_sd).to_numpy()])
        genes["core_frequency"] = [np.mean([g in per_seed[s] for s in seeds])
                                   for g in genes.gene]
        pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
        summary["core_jaccard_between_seeds"] = float(np.mean([
            len(per_seed[a] & per_seed[b]) / max(1, len(per_seed[a] | per_seed[b]))
            for a, b in pairs]))
    # The null: the same perturbation by models trained on permuted labels.
    null = jobs[jobs.permuted]
    if not null.empty:
        null_scores = null.score_log2.to_numpy()
        genes["null_score"] = genes.gene.map(null.groupby("gene").score_log2.mean())
        genes["p_null"] = empirical_p(genes.score.to_numpy(), null_scores)
        genes["q_null"] = stats.false_discovery_control(genes.p_null)
        summary |= {"n_null_scores": int(len(null_scores)),
                    "null_score_mean": float(null_scores.mean()),
                    "n_q05": int((genes.q_null < 0.05).sum()),
                    "n_core_q05": int((genes.core & (genes.q_null < 0.05)).sum())}
    genes = genes.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)

    per_subset = (genes.groupby("subset", sort=False)
                  .agg(set=("set", "first"), silhouette=("silhouette", "first"),
                       mean_score=("score", "mean"), n_core=("core", "sum"))
                  .reset_index().sort_values("mean_score", ascending=False, kind="stable"))
    ok = per_subset.dropna(subset=["silhouette"])
    if len(ok) > 2 and ok.silhouette.nunique() > 1:
        r, p = stats.pearsonr(ok.silhouette, ok.mean_score)
        summary |= {"pearson_r": float(r), "pearson_p": float(p)}
    return genes, per_subset, summary


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    check_fresh(out, PRODUCTS, cfg.get("overwrite", False))
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
    write_table(genes, out / "core_genes.tsv")
    write_text("".join(f"{g}\n" for g in genes.loc[genes.core, "gene"]), out / "core_genes.txt")
    write_table(per_subset, out / "subset_scores.tsv")
    write_json(summary, out / "summary.json")
    from gemdiff import plots

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
