"""Protein-interaction view of a gene list: the network among core genes and its degrees.

Reads an interaction export the user downloaded (no network access here):

- STRING network export (TSV with ``#node1``, ``node2`` and optionally ``combined_score``);
- IntAct / PSI-MITAB 2.5+ (gene names from the ``(gene name)`` aliases of interactors A and B,
  the score from ``intact-miscore``);
- any tab-separated edge list: the first two columns are gene symbols, an optional third
  column a score.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from gemdiff.common.errors import InputError
from gemdiff.data.io import read_text_rows

_GENE_NAME = re.compile(r"uniprotkb:([^|()]+)\(gene name\)")
_MISCORE = re.compile(r"intact-miscore:([0-9.eE+-]+)")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_edges(path: str | Path) -> pd.DataFrame:
    """Undirected edges ``a``, ``b`` (sorted pair, no self-loops, no duplicates) and ``score``
    (NaN when the file has none) of an interaction file."""
    rows = read_text_rows(path)
    if not rows:
        raise InputError(path, "holds no interactions")
    head = [h.lstrip("#").strip().lower() for h in rows[0]]
    edges = []
    if head[0].startswith("id(s) interactor a") or head[0].startswith("unique id"):
        if len(head) < 6:
            raise InputError(path, "looks like PSI-MITAB but has fewer than 6 columns")
        conf = next((i for i, h in enumerate(head) if h.startswith("confidence")), None)
        for r in rows[1:]:
            a = _GENE_NAME.search(r[4]) if len(r) > 5 else None
            b = _GENE_NAME.search(r[5]) if len(r) > 5 else None
            if a and b:
                m = _MISCORE.search(r[conf]) if conf is not None and len(r) > conf else None
                edges.append((a.group(1), b.group(1), float(m.group(1)) if m else float("nan")))
    else:
        named = head[:2] == ["node1", "node2"]
        score = head.index("combined_score") if "combined_score" in head else (
            2 if not named and len(head) > 2 else None)
        header = named or rows[0][0].startswith("#") or (
            score is not None and _float(rows[0][score]) != _float(rows[0][score]))  # NaN
        body = rows[1:] if header else rows
        for r in body:
            if len(r) < 2:
                raise InputError(path, f"has a line with one field ({r[0]!r}); expected two "
                                       "gene symbols separated by a tab")
            s = _float(r[score]) if score is not None and len(r) > score else float("nan")
            edges.append((r[0], r[1], s))
    df = pd.DataFrame(edges, columns=["a", "b", "score"])
    if df.empty:
        raise InputError(path, "holds no interaction between two named genes")
    pair = df[["a", "b"]].to_numpy()
    df["a"], df["b"] = pair.min(axis=1), pair.max(axis=1)
    df = df[df.a != df.b]
    return (df.sort_values("score", ascending=False, na_position="last")
            .drop_duplicates(["a", "b"]).reset_index(drop=True))


def core_network(edges: pd.DataFrame, genes: Sequence[str], min_score: float | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Edges among ``genes`` (at least ``min_score`` where given) and every gene's degree."""
    keep = set(genes)
    sub = edges[edges.a.isin(keep) & edges.b.isin(keep)]
    if min_score is not None:
        sub = sub[sub.score >= min_score]
    degree = pd.concat([sub.a, sub.b]).value_counts()
    degrees = pd.DataFrame({"gene": list(genes)})
    degrees["degree"] = degrees.gene.map(degree).fillna(0).astype(int)
    degrees = degrees.sort_values(["degree", "gene"], ascending=[False, True], kind="stable")
    return sub.reset_index(drop=True), degrees.reset_index(drop=True)
