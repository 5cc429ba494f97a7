"""Core genes over screened subsets: the per-gene aggregation of a sweep of subset models.

Per gene: the perturbation score of its subset's model (mean |x - x'| over the source
samples, in log2(n + 1) units so that models of different subsets compare), averaged over
seeds, and its direction toward the target. Core genes are called by the one rule of
:func:`~gemdiff.tools.gene_scores.core_calls` over all screened genes (the paper's 2 SD). With
permuted-label models, each gene also gets an empirical p-value against the pooled null scores
and a Benjamini-Hochberg q-value; with several seeds, how often it is called core. Per subset:
its mean score against its silhouette (Pearson's r, the paper's Fig. 6).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats

from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.common.resultsets import trusted_result
from gemdiff.tools.cluster_potential import empirical_p
from gemdiff.tools.gene_scores import core_calls, core_versus_de

log = logging.getLogger("gemdiff.core")
JOB_FILE = "job.json"  # what a finished job of the sweep (gemdiff.subset) leaves in its folder


def read_screen(screen: str | Path) -> pd.DataFrame:
    """The ``subsets.tsv`` of a screen run, with a clear error when it is not one."""
    path = Path(screen) / "subsets.tsv"
    if not path.is_file():
        raise InputError(screen, "is not a finished gemdiff.screen run (no subsets.tsv)")
    trusted_result(path)
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


def read_jobs(jobs_dir: str | Path) -> pd.DataFrame:
    """Every finished job of a sweep: one row per gene and job.

    A job counts when it wrote ``job.json`` (its last file) and its perturbation results form
    a complete set; the others (stopped, killed) are left out and counted in a warning.
    """
    frames, unfinished = [], []
    for job_file in sorted(Path(jobs_dir).rglob(JOB_FILE)):
        scores_file = job_file.parent / "perturb/gene_scores.tsv"
        try:
            trusted_result(scores_file, verify=False)
            job = json.loads(job_file.read_text())
            df = pd.read_csv(scores_file, sep="\t")
            frames.append(df.assign(subset=job["subset"], seed=job["seed"],
                                    permuted=job["permuted"]))
        except (InputError, OSError, ValueError, KeyError):
            unfinished.append(job_file.parent)
    if unfinished:
        log.warning("%d job(s) of %s left out, their results incomplete or unreadable (e.g. "
                    "%s); run the sweep again to finish them", len(unfinished), jobs_dir,
                    unfinished[0])
    if not frames:
        raise InputError(jobs_dir, f"holds no finished gemdiff.subset job (no {JOB_FILE} with "
                                   "perturb/gene_scores.tsv)")
    return pd.concat(frames, ignore_index=True)


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
    if len(summary["seeds"]) > 1:
        summary |= _seed_stability(genes, real, core_sd)
    if "de_p" in real:
        genes = genes.merge(_de_per_gene(real), on=["gene", "subset"], how="left", sort=False)
        summary |= core_versus_de(genes)
    null = jobs[jobs.permuted]
    if not null.empty:
        summary |= _against_null(genes, null)
    genes = genes.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    per_subset, correlation = _per_subset(genes)
    return genes, per_subset, summary | correlation


def _de_per_gene(real: pd.DataFrame) -> pd.DataFrame:
    """The jobs' tests per gene: mean fold change and t over seeds (each seed draws its own
    split), the median p, and BH q over all genes of the sweep (a job's own q is over its 16
    genes only); the same for the moderated t where the jobs have it."""
    from scipy import stats

    columns = {"de_log2fc": ("de_log2fc", "mean"), "de_t": ("de_t", "mean"),
               "de_p": ("de_p", "median")}
    if "de_mod_p" in real:
        columns |= {"de_mod_t": ("de_mod_t", "mean"), "de_mod_p": ("de_mod_p", "median")}
    de = real.groupby(["gene", "subset"], sort=False).agg(**columns).reset_index()
    for p in [c for c in ("de_p", "de_mod_p") if c in de]:
        de[p.replace("_p", "_q")] = stats.false_discovery_control(de[p].fillna(1.0).to_numpy())
    return de


def _seed_stability(genes: pd.DataFrame, real: pd.DataFrame, core_sd: float) -> dict:
    """How often each gene is called core from one seed's models alone (a column added to
    ``genes``), and the mean Jaccard index of the seeds' calls."""
    seeds = sorted(real.seed.unique())
    per_seed = {s: set(real.gene[real.seed == s][core_calls(real.score_log2[real.seed == s],
                                                            core_sd)]) for s in seeds}
    genes["core_frequency"] = [np.mean([g in per_seed[s] for s in seeds]) for g in genes.gene]
    pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    return {"core_jaccard_between_seeds": float(np.mean([
        len(per_seed[a] & per_seed[b]) / max(1, len(per_seed[a] | per_seed[b]))
        for a, b in pairs]))}


def _against_null(genes: pd.DataFrame, null: pd.DataFrame) -> dict:
    """Each gene's score against the same perturbation by models trained on permuted labels:
    the null score, empirical p and BH q-value (columns added to ``genes``)."""
    null_scores = null.score_log2.to_numpy()
    genes["null_score"] = genes.gene.map(null.groupby("gene").score_log2.mean())
    genes["p_null"] = empirical_p(genes.score.to_numpy(), null_scores)
    genes["q_null"] = stats.false_discovery_control(genes.p_null)
    return {"n_null_scores": int(len(null_scores)),
            "null_score_mean": float(null_scores.mean()),
            "n_q05": int((genes.q_null < 0.05).sum()),
            "n_core_q05": int((genes.core & (genes.q_null < 0.05)).sum())}


def _per_subset(genes: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Each subset's mean score, and Pearson's r of the means with the silhouettes."""
    per_subset = (genes.groupby("subset", sort=False)
                  .agg(set=("set", "first"), silhouette=("silhouette", "first"),
                       mean_score=("score", "mean"), n_core=("core", "sum"))
                  .reset_index().sort_values("mean_score", ascending=False, kind="stable"))
    ok = per_subset.dropna(subset=["silhouette"])
    if len(ok) > 2 and ok.silhouette.nunique() > 1:
        r, p = stats.pearsonr(ok.silhouette, ok.mean_score)
        return per_subset, {"pearson_r": float(r), "pearson_p": float(p)}
    return per_subset, {}
