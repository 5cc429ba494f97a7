"""Over-representation of a gene list (core genes) in gene-set libraries, offline.

    python -m gemdiff.enrich genes=<run>/core_genes.txt background=<matrix or gene list>
    python -m gemdiff.enrich genes=core_genes.txt libraries=[my.gmt] fdr=0.05
    python -m gemdiff.enrich genes=core_genes.txt toppgene=true     # ToppGene's web API instead

For each set S of a library, with B the background (all genes measured), L the listed genes
in B, k = |L & S|, n = |L|, K = |S & B| and N = |B|: the p-value is P(X >= k) for
X ~ Hypergeometric(N, K, n), the one-sided test of over-representation; q is the
Benjamini-Yekutieli adjustment of the p-values of one library (valid under any dependence
between sets, as GO's nested terms have). Sets with fewer than ``min_set_size`` or more than
``max_set_size`` genes in B are not tested.

Writes ``enrichment.tsv`` (every set tested: library, set, k, K, n, N, fold enrichment, p, q,
significant, overlapping genes), ``enrichment.png`` (dot plot of the top sets) and
``summary.json``. With ``ppi=<interaction export>`` (STRING, IntAct MITAB or a plain edge
list): the network among the listed genes, ``ppi_edges.tsv``, ``ppi_degrees.tsv`` and ``ppi.png``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import hydra
import pandas as pd
from omegaconf import DictConfig

from gemdiff.cli import config_dir, run_task
from gemdiff.data.io import _check_file, _open_text, read_gmt
from gemdiff.errors import GemdiffError, InputError
from gemdiff.outputs import check_fresh, write_json, write_table

log = logging.getLogger("gemdiff.enrich")
PRODUCTS = ("enrichment.tsv", "summary.json")
TOPPGENE_URL = "https://toppgene.cchmc.org/API"


def _lines(path: str | Path) -> list[list[str]]:
    """Non-empty lines of a text file (gzip allowed), split on tabs and stripped."""
    path = _check_file(path)
    try:
        with _open_text(path) as fh:
            rows = [[f.strip() for f in ln.rstrip("\n").split("\t")] for ln in fh]
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read as text ({err})") from None
    return [r for r in rows if any(r)]


def _unique(path: str | Path, genes: Sequence[str]) -> list[str]:
    genes = list(dict.fromkeys(g for g in genes if g))
    if not genes:
        raise InputError(path, "holds no genes")
    return genes


def read_gene_list(path: str | Path) -> list[str]:
    """Genes from a text file (one per line; ``core_genes.txt``) or a table with a ``gene``
    column (``gene_scores.tsv``: only rows whose ``core`` column is true, if it has one)."""
    rows = _lines(path)
    header = rows[0] if rows else []
    if "gene" not in header:
        return _unique(path, [r[0] for r in rows])
    g = header.index("gene")
    c = header.index("core") if "core" in header else None
    return _unique(path, [r[g] for r in rows[1:] if len(r) > g
                          and (c is None or (len(r) > c and r[c].lower() == "true"))])


def read_background(path: str | Path) -> list[str]:
    """Background genes: the genes of a matrix (GEMDiff format: its header; RNAseqDB format:
    its first column) or a gene list (one per line). Only names are used."""
    rows = _lines(path)
    first = rows[0] if rows else [""]
    if first[0] == "Hugo_Symbol":  # RNAseqDB: genes x samples
        return _unique(path, [r[0] for r in rows[1:]])
    if len(first) > 1 and first[0] == "":  # GEMDiff matrix: samples x genes
        return _unique(path, first[1:])
    return _unique(path, [r[0] for r in rows])


def over_representation(genes: Sequence[str], library: dict[str, list[str]],
                        background: Sequence[str], min_set_size: int = 5,
                        max_set_size: int = 2000) -> pd.DataFrame:
    """Hypergeometric test of every set of one library; BY-adjusted q-values."""
    from scipy.stats import false_discovery_control, hypergeom

    bg = set(background)
    listed = [g for g in genes if g in bg]
    listed_set = set(listed)
    n, N = len(listed), len(bg)
    rows = []
    for name, members in library.items():
        in_bg = [g for g in dict.fromkeys(members) if g in bg]
        K = len(in_bg)
        if not min_set_size <= K <= max_set_size:
            continue
        hits = [g for g in in_bg if g in listed_set]
        rows.append((name, len(hits), K, ",".join(hits)))
    df = pd.DataFrame(rows, columns=["set", "k", "K", "genes"])
    if df.empty:
        return df.assign(n=[], N=[], fold=[], p=[], q=[])
    k, K = df["k"].to_numpy(), df["K"].to_numpy()
    df["n"], df["N"] = n, N
    df["fold"] = (k / n) / (K / N) if n else 0.0
    df["p"] = hypergeom.sf(k - 1, N, K, n)  # P(X >= k)
    df["q"] = false_discovery_control(df["p"].to_numpy(), method="by")
    return df[["set", "k", "K", "n", "N", "fold", "p", "q", "genes"]]


def enrich(genes: Sequence[str], libraries: dict[str, dict[str, list[str]]],
           background: Sequence[str], fdr: float, min_set_size: int = 5,
           max_set_size: int = 2000) -> pd.DataFrame:
    """:func:`over_representation` for each library, one table sorted by q."""
    parts = []
    for lib, sets in libraries.items():
        df = over_representation(genes, sets, background, min_set_size, max_set_size)
        parts.append(df.assign(library=lib))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if out.empty:
        return out
    out["significant"] = out["q"] < fdr
    cols = ["library", "set", "k", "K", "n", "N", "fold", "p", "q", "significant", "genes"]
    return out[cols].sort_values(["q", "p"], kind="stable").reset_index(drop=True)


def toppgene(genes: Sequence[str], fdr: float, url: str = TOPPGENE_URL,
             timeout: float = 60.0) -> pd.DataFrame:
    """Enrichment by ToppGene's web API: symbols to Entrez ids (``/lookup``), then ``/enrich``
    with GO biological process and pathways, Benjamini-Yekutieli q-values as reported."""

    def post(endpoint: str, payload: dict) -> dict:
        req = urllib.request.Request(f"{url}/{endpoint}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "text/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as err:
            raise GemdiffError(f"cannot reach ToppGene at {url}/{endpoint} ({err}); check the "
                               "network, or use the offline libraries (toppgene=false)") from None

    found = post("lookup", {"Symbols": list(genes)}).get("Genes", [])
    ids = [g["Entrez"] for g in found if g.get("Entrez")]
    if not ids:
        raise GemdiffError("ToppGene recognised none of the genes")
    cats = [{"Type": t, "PValue": 1.0, "MinGenes": 5, "MaxGenes": 2000, "MaxResults": 1000,
             "Correction": "FDR"} for t in ("GeneOntologyBiologicalProcess", "Pathway")]
    ann = post("enrich", {"Genes": ids, "Categories": cats}).get("Annotations", [])
    df = pd.DataFrame([{
        "library": a.get("Category"), "set": f"{a.get('ID')} {a.get('Name')}",
        "k": a.get("GenesInTermInQuery"), "K": a.get("GenesInTerm"),
        "n": a.get("GenesInQuery"), "N": a.get("TotalGenes"), "p": a.get("PValue"),
        "q": a.get("QValueFDRBY"),
        "genes": ",".join(g.get("Symbol", "") for g in a.get("Genes", []))} for a in ann])
    if not df.empty:
        df["fold"] = (df.k / df.n) / (df.K / df.N)
        df["significant"] = df.q < fdr
    return df


def interaction_view(all_edges: pd.DataFrame, genes: Sequence[str], min_score: float | None,
                     out: Path) -> dict:
    """The interaction network among ``genes`` (edges from :func:`gemdiff.ppi.read_edges`):
    ``ppi_edges.tsv``, ``ppi_degrees.tsv`` and ``ppi.png`` (network and degree distribution,
    the paper's Fig. 7)."""
    from gemdiff import plots
    from gemdiff.ppi import core_network

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


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    check_fresh(out, PRODUCTS, cfg.get("overwrite", False))
    if not cfg.genes:
        raise GemdiffError("give the gene list: genes=<file> (core_genes.txt or a table with "
                           "a 'gene' column)")
    genes = read_gene_list(cfg.genes)
    interactions = None
    if cfg.get("ppi"):  # read before anything is written: a bad file leaves no output
        from gemdiff.ppi import read_edges

        interactions = read_edges(cfg.ppi, _lines(cfg.ppi))
    if cfg.toppgene:
        table, background, libs, missing = toppgene(genes, cfg.fdr), None, ["ToppGene"], []
    else:
        libraries = {Path(p).name: read_gmt(p) for p in cfg.libraries}
        if cfg.background:
            background = read_background(cfg.background)
        else:
            background = sorted({g for sets in libraries.values() for m in sets.values()
                                 for g in m})
            log.warning("no background given: using the %d genes of the libraries; give "
                        "background=<matrix> to test against the genes measured",
                        len(background))
        in_background = set(background)
        missing = [g for g in genes if g not in in_background]
        if len(missing) == len(genes):
            raise InputError(cfg.genes, "shares no gene with the background")
        if missing:
            log.warning("%d listed gene(s) are not in the background and are left out, "
                        "e.g. %s", len(missing), missing[0])
        table = enrich(genes, libraries, background, cfg.fdr, cfg.min_set_size,
                       cfg.max_set_size)
        libs = list(libraries)
    out.mkdir(parents=True, exist_ok=True)
    write_table(table, out / "enrichment.tsv")
    summary = {
        "n_genes": len(genes),
        "n_in_background": None if background is None else len(genes) - len(missing),
        "background_size": None if background is None else len(background),
        "libraries": libs, "fdr": cfg.fdr, "n_sets_tested": int(len(table)),
        "n_significant": int(table["significant"].sum()) if len(table) else 0,
        "top": table.head(10)[["library", "set", "k", "q"]].to_dict("records")
        if len(table) else [],
    }
    if interactions is not None:
        summary["ppi"] = interaction_view(interactions, genes, cfg.get("ppi_min_score"), out)
    write_json(summary, out / "summary.json")
    if len(table):
        from gemdiff import plots

        plots.enrichment_dots(table.head(cfg.plot_top), out / "enrichment.png", cfg.fdr)
    log.info("%d of %d sets significant at q < %g", summary["n_significant"], len(table), cfg.fdr)
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="enrich")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.enrich import main as entry

    entry()
