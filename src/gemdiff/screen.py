"""Screen gene sets for cluster potential: which K-gene subsets separate the phenotypes?

    python -m gemdiff.screen data=kidney gmt=$GEMDIFF_DATA_DIR/genesets/h.all.v7.0.symbols.gmt

Every set of the GMT library is split after a seeded shuffle into K-gene subsets (K = 16),
each scored by the silhouette by class of a 2-D UMAP of all samples, compared with random
K-gene sets and flagged ``high`` or ``low`` (:mod:`gemdiff.tools.screening`).

Writes into the run folder: ``subsets.tsv``, ``sets.tsv`` (Table 3), ``feature_sizes.tsv``
(Table 2), ``control.tsv``, ``subsets.gmt`` (every subset as a gene set, to train on one with
``data.gmt=<run>/subsets.gmt data.gene_set=<subset>``), ``summary.json`` and the plots
``scores.png``, ``umaps.png`` and ``feature_sizes.png``. Scores are cached in ``cache.jsonl``
as they are computed: a screen stopped early resumes when run again in the same folder
(``hydra.run.dir=<run>``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import run_task

log = logging.getLogger("gemdiff.screen")
PRODUCTS = ("subsets.tsv", "sets.tsv", "feature_sizes.tsv", "control.tsv", "subsets.gmt",
            "summary.json")


def screen_options(cfg: DictConfig):
    """The screen's settings from its config."""
    from gemdiff.evaluation.embedding import UmapParams
    from gemdiff.tools.cluster_potential import ScoreSettings
    from gemdiff.tools.screening import ScreenOptions

    settings = ScoreSettings(UmapParams(**cfg.umap, seed=cfg.seed), cfg.score, cfg.balanced)
    return ScreenOptions(cfg.subset_size, cfg.exclusive, cfg.n_control,
                         tuple(cfg.feature_sizes), cfg.feature_size_repeats, cfg.flag_sd,
                         cfg.flag_reference, settings, cfg.n_jobs, cfg.progress, cfg.seed)


def run(cfg: DictConfig) -> dict:
    from gemdiff.common.resultsets import ResultSet
    from gemdiff.tools import screening as sc

    out = Path(cfg.paths.output_dir)
    published = ResultSet(out, PRODUCTS, cfg.get("overwrite", False), "gemdiff screen")
    options = screen_options(cfg)
    started = time.perf_counter()
    data = sc.load_screen_data(cfg.data)
    library, library_name = sc.gene_library(cfg.gmt, data)
    subsets = sc.library_subsets(library, data, options, cfg.gmt)
    jobs = sc.make_jobs(data, subsets, library, options)
    log.info("%d samples (%s), %d genes; %d subsets of %d from %d sets of %s, %d controls, "
             "%d feature-size draws", len(data.y), ", ".join(
                 f"{c} {int((data.y == i).sum())}" for i, c in enumerate(data.classes)),
             len(data.genes), len(subsets), options.subset_size,
             len({s.set_name for s in subsets}), library_name, options.n_control,
             sum(j.kind == "size" for j in jobs))
    read_s = time.perf_counter() - started
    tables = sc.screen_tables(sc.score_jobs(data, jobs, options, out / "cache.jsonl"), subsets,
                              options)
    score_s = time.perf_counter() - started - read_s
    from gemdiff.common.files import write_json
    from gemdiff.runtime.tracking import log_results

    with published.writing():
        _write(cfg, out, data, subsets, tables, options)
        summary = _summary(data, library_name, subsets, tables, options) | {
            "seconds": {"read": round(read_s, 1), "score": round(score_s, 1),
                        "total": round(time.perf_counter() - started, 1)}}
        write_json(summary, out / "summary.json")
    log_results(cfg, out, summary, [out / n for n in ("scores.png", "umaps.png",
                                                       "feature_sizes.png")],
                {"sets": tables.sets, "subsets": tables.subsets})
    st = tables.stats
    log.info("with %d controls no p-value is below %.2g and a subset standing out alone among "
             "%d gets q >= %.2g (raise n_control for finer q-values)", options.n_control,
             summary["p_min"], len(subsets), summary["q_min_single"])
    log.info("subsets %.3f +- %.3f, control %.3f +- %.3f (Student's t-test p = %.2g); %d high, "
             "%d low; %.0f s", st.subset_mean, st.subset_sd, st.control_mean, st.control_sd,
             st.p_student, summary["n_high"], summary["n_low"], summary["seconds"]["total"])
    return summary


def _write(cfg: DictConfig, out: Path, data, subsets, tables, options) -> None:
    """The tables, the library's subsets as a GMT file and the plots."""
    from gemdiff.common.files import write_table, write_text
    from gemdiff.evaluation import plots
    from gemdiff.tools.screening import subset_embeddings

    write_table(tables.subsets, out / "subsets.tsv")
    write_table(tables.sets, out / "sets.tsv")
    write_table(tables.feature_sizes, out / "feature_sizes.tsv")
    write_table(tables.control, out / "control.tsv")
    write_text("".join(f"{s.name}\t{s.set_name} subset {s.index} of {options.subset_size} "
                       "genes\t" + "\t".join(s.genes) + "\n" for s in subsets),
               out / "subsets.gmt")
    if not cfg.plots:
        return
    st = tables.stats
    plots.screen_histogram(tables.subsets["silhouette"].to_numpy(),
                           tables.control["silhouette"].to_numpy(), st.high_threshold,
                           st.low_threshold, out / "scores.png")
    panels = subset_embeddings(data, tables.subsets, options.settings, cfg.plot_top)
    if panels:
        plots.screen_umaps(panels, [data.classes[i] for i in data.y], out / "umaps.png")
    if len(tables.feature_sizes):
        plots.feature_sizes(tables.feature_sizes, out / "feature_sizes.png")


def _summary(data, library_name: str, subsets, tables, options) -> dict:
    available = int(data.varying.sum())
    return {
        "source": data.source, "library": library_name, "n_samples": int(len(data.y)),
        "classes": {c: int((data.y == i).sum()) for i, c in enumerate(data.classes)},
        "n_genes": len(data.genes), "n_genes_varying": available,
        "subset_size": options.subset_size, "n_sets": len({s.set_name for s in subsets}),
        "n_subsets": len(subsets), "n_control": options.n_control,
        **asdict(tables.stats),
        "n_high": int((tables.subsets.flag == "high").sum()),
        "n_low": int((tables.subsets.flag == "low").sum()),
        "n_q05": int((tables.subsets.q_control < 0.05).sum()),
        # The resolution n_control allows: no p below 1 / (n + 1); a subset that alone stands
        # out among m gets q = m / (n + 1) at best (Benjamini-Hochberg).
        "p_min": 1.0 / (options.n_control + 1),
        "q_min_single": min(1.0, len(subsets) / (options.n_control + 1)),
        **tables.agreement,
        "settings": asdict(options.settings),
    }


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="screen")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.screen import main as entry

    entry()
