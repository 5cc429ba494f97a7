"""Over-representation of a gene list (core genes) in gene-set libraries, offline.

    python -m gemdiff.enrich genes=<run>/core_genes.txt background=<matrix or gene list>
    python -m gemdiff.enrich genes=core_genes.txt libraries=[my.gmt] fdr=0.05
    python -m gemdiff.enrich genes=core_genes.txt toppgene=true     # ToppGene's web API instead

The hypergeometric test of every set against the background, Benjamini-Yekutieli q-values
per library (:mod:`gemdiff.tools.enrichment`).

Writes ``enrichment.tsv`` (every set tested: library, set, k, K, n, N, fold enrichment, p, q,
significant, overlapping genes), ``enrichment.png`` (dot plot of the top sets) and
``summary.json``. With ``ppi=<interaction export>`` (STRING, IntAct MITAB or a plain edge
list): the network among the listed genes, ``ppi_edges.tsv``, ``ppi_degrees.tsv`` and ``ppi.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import run_task

log = logging.getLogger("gemdiff.enrich")
PRODUCTS = ("enrichment.tsv", "summary.json")


def interaction_view(all_edges, genes: Sequence[str], min_score: float | None,
                     out: Path) -> dict:
    """The interaction network among ``genes`` (edges from
    :func:`gemdiff.tools.ppi.read_edges`):
    ``ppi_edges.tsv``, ``ppi_degrees.tsv`` and ``ppi.png`` (network and degree distribution,
    the paper's Fig. 7)."""
    from gemdiff.common.files import write_table
    from gemdiff.evaluation import plots
    from gemdiff.tools.ppi import core_network

    edges, degrees = core_network(all_edges, genes, min_score)
    write_table(edges, out / "ppi_edges.tsv")
    write_table(degrees, out / "ppi_degrees.tsv")
    plots.ppi_network(edges, degrees, out / "ppi.png")
    connected = int((degrees.degree > 0).sum())
    log.info("interactions among the listed genes: %d edges, %d of %d genes connected",
             len(edges), connected, len(degrees))
    return {"edges": int(len(edges)), "genes_connected": connected,
            "mean_degree": float(degrees.degree.mean()),
            "top": degrees.head(10).to_dict("records")}


def _offline(cfg: DictConfig, genes: list[str]):
    """Enrichment against the GMT libraries: (table, background, library names, listed genes
    missing from the background, where the background came from)."""
    from gemdiff.common.errors import InputError
    from gemdiff.data.io import read_gmt
    from gemdiff.tools.enrichment import enrich, read_background, scored_universe

    libraries = {Path(p).name: read_gmt(p) for p in cfg.libraries}
    scored = scored_universe(cfg.genes) if cfg.background in (None, "scored") else None
    if cfg.background == "scored" and scored is None:
        raise InputError(cfg.genes, "has no table of scored genes (gene_scores.tsv or "
                                    "core_genes.tsv) in or beside it: give background=<file>")
    if scored is not None:
        background, where = scored
        log.info("background: %d genes, %s", len(background), where)
    elif cfg.background and cfg.background != "libraries":
        background, where = read_background(cfg.background), str(cfg.background)
    else:
        background = sorted({g for sets in libraries.values() for m in sets.values() for g in m})
        where = "the genes of the libraries"
        if not cfg.background:
            log.warning("no background known: using the %d genes of the libraries; give "
                        "background=<matrix> to test against the genes measured",
                        len(background))
    in_background = set(background)
    missing = [g for g in genes if g not in in_background]
    if len(missing) == len(genes):
        raise InputError(cfg.genes, "shares no gene with the background")
    if missing:
        log.warning("%d listed gene(s) are not in the background and are left out, e.g. %s",
                    len(missing), missing[0])
    table = enrich(genes, libraries, background, cfg.fdr, cfg.min_set_size, cfg.max_set_size)
    return table, background, list(libraries), missing, where


def run(cfg: DictConfig) -> dict:
    from gemdiff.common.errors import GemdiffError
    from gemdiff.common.resultsets import ResultSet
    from gemdiff.tools.enrichment import read_gene_list, toppgene

    out = Path(cfg.paths.output_dir)
    published = ResultSet(out, PRODUCTS, cfg.get("overwrite", False), "gemdiff enrich")
    if not cfg.genes:
        raise GemdiffError("give the gene list: genes=<file> (core_genes.txt or a table with "
                           "a 'gene' column)")
    from gemdiff.common.resultsets import trusted_result

    genes = read_gene_list(trusted_result(cfg.genes))
    interactions = None
    if cfg.get("ppi"):  # read before anything is written: a bad file leaves no output
        from gemdiff.tools.ppi import read_edges

        interactions = read_edges(cfg.ppi)
    if cfg.toppgene:
        table, background, libs, missing = toppgene(genes, cfg.fdr), None, ["ToppGene"], []
        where = "ToppGene's own"
    else:
        table, background, libs, missing, where = _offline(cfg, genes)
    with published.writing():
        summary = _write(cfg, out, table, genes, background, libs, missing, interactions, where)
    log.info("%d of %d sets significant at q < %g", summary["n_significant"], len(table), cfg.fdr)
    return summary


def _write(cfg, out: Path, table, genes, background, libs, missing, interactions,
           where: str) -> dict:
    from gemdiff.common.files import write_json, write_table

    write_table(table, out / "enrichment.tsv")
    summary = {
        "n_genes": len(genes),
        "n_in_background": None if background is None else len(genes) - len(missing),
        "background_size": None if background is None else len(background),
        "background_source": where,
        "libraries": libs, "fdr": cfg.fdr, "n_sets_tested": int(len(table)),
        "n_significant": int(table["significant"].sum()) if len(table) else 0,
        "top": table.head(10)[["library", "set", "k", "q"]].to_dict("records")
        if len(table) else [],
    }
    if interactions is not None:
        summary["ppi"] = interaction_view(interactions, genes, cfg.get("ppi_min_score"), out)
    write_json(summary, out / "summary.json")
    if len(table):
        from gemdiff.evaluation import plots

        plots.enrichment_dots(table.head(cfg.plot_top), out / "enrichment.png", cfg.fdr)
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="enrich")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.enrich import main as entry

    entry()
