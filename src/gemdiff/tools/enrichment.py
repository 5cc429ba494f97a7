"""Over-representation of a gene list (core genes) in gene-set libraries, offline.

For each set S of a library, with B the background (all genes measured), L the listed genes
in B, k = |L & S|, n = |L|, K = |S & B| and N = |B|: the p-value is P(X >= k) for
X ~ Hypergeometric(N, K, n), the one-sided test of over-representation; q is the
Benjamini-Yekutieli adjustment of the p-values of one library (valid under any dependence
between sets, as GO's nested terms have). Sets with fewer than ``min_set_size`` or more than
``max_set_size`` genes in B are not tested. :func:`toppgene` asks ToppGene's web API instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import pandas as pd

from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.data.io import read_text_rows

TOPPGENE_URL = "https://toppgene.cchmc.org/API"


def _unique(path: str | Path, genes: Sequence[str]) -> list[str]:
    genes = list(dict.fromkeys(g for g in genes if g))
    if not genes:
        raise InputError(path, "holds no genes")
    return genes


def read_gene_list(path: str | Path) -> list[str]:
    """Genes from a text file (one per line; ``core_genes.txt``) or a table with a ``gene``
    column (``gene_scores.tsv``: only rows whose ``core`` column is true, if it has one)."""
    rows = read_text_rows(path)
    header = rows[0] if rows else []
    if "gene" not in header:
        return _unique(path, [r[0] for r in rows])
    g = header.index("gene")
    c = header.index("core") if "core" in header else None
    return _unique(path, [r[g] for r in rows[1:] if len(r) > g
                          and (c is None or (len(r) > c and r[c].lower() == "true"))])


SCORED_TABLES = ("gene_scores.tsv", "core_genes.tsv")  # a run's table of every gene it scored


def scored_universe(genes_file: str | Path) -> tuple[list[str], str] | None:
    """The genes the listed genes were drawn from, where a run's files say: every gene of the
    table itself (``gene_scores.tsv``, ``core_genes.tsv``) or of such a table beside a gene
    list (``core_genes.txt``). Returns (genes, where from) or None.

    Testing core genes against the whole transcriptome is circular when they came from gene
    sets of a library: the library's own terms come out on top whatever the biology.
    """
    path = Path(genes_file)
    candidates = [path] if path.name in SCORED_TABLES else [path.with_name(n)
                                                            for n in SCORED_TABLES]
    for table in candidates:
        if not table.is_file():
            continue
        rows = read_text_rows(table)
        if rows and "gene" in rows[0]:
            g = rows[0].index("gene")
            return _unique(table, [r[g] for r in rows[1:] if len(r) > g]), \
                f"the genes scored in {table}"
    return None


def read_background(path: str | Path) -> list[str]:
    """Background genes: the genes of a matrix (GEMDiff format: its header; RNAseqDB format:
    its first column) or a gene list (one per line). Only names are used."""
    rows = read_text_rows(path)
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
