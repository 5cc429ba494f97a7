"""Over-representation statistics against hand computations, and the enrich command."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from gemdiff.tools.enrichment import (
    enrich, over_representation, read_background, read_gene_list, toppgene,
)
from gemdiff.common.errors import GemdiffError
from tests.conftest import make_config

BACKGROUND = [f"G{i:02d}" for i in range(20)]


def test_hypergeometric_p_matches_a_hand_computation():
    library = {"S": BACKGROUND[:5], "T": BACKGROUND[10:16]}
    df = over_representation(BACKGROUND[:3] + [BACKGROUND[10]], library, BACKGROUND,
                             min_set_size=1)
    s = df.set_index("set").loc["S"]
    assert (s.k, s.K, s.n, s.N) == (3, 5, 4, 20)
    # P(X >= 3), X ~ Hypergeometric(N=20, K=5, n=4)
    hand = (comb(5, 3) * comb(15, 1) + comb(5, 4) * comb(15, 0)) / comb(20, 4)
    assert s.p == pytest.approx(hand, rel=1e-12)  # 155 / 4845
    assert s.fold == pytest.approx((3 / 4) / (5 / 20))
    assert s.genes == "G00,G01,G02"


def test_q_values_are_benjamini_yekutieli():
    rng = np.random.default_rng(0)
    library = {f"S{i}": list(rng.choice(BACKGROUND, size=rng.integers(3, 9), replace=False))
               for i in range(12)}
    df = over_representation(BACKGROUND[:6], library, BACKGROUND, min_set_size=1)
    p = df.p.to_numpy()
    m = len(p)
    order = np.argsort(p)
    c = np.sum(1.0 / np.arange(1, m + 1))
    adj = np.minimum.accumulate((p[order] * m * c / np.arange(1, m + 1))[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(adj, 1.0)
    assert np.allclose(df.q.to_numpy(), q)


def test_background_and_set_sizes():
    library = {"small": BACKGROUND[:2], "ok": BACKGROUND[:6] + ["NOT_MEASURED"] * 3,
               "big": BACKGROUND}
    df = over_representation(BACKGROUND[:4] + ["ELSEWHERE"], library, BACKGROUND,
                             min_set_size=3, max_set_size=10)
    assert list(df.set) == ["ok"]
    row = df.iloc[0]
    assert (row.K, row.n, row.k) == (6, 4, 4)  # unmeasured genes count nowhere


def test_planted_set_comes_first(tmp_path):
    from gemdiff.enrich import run

    rng = np.random.default_rng(1)
    universe = [f"GENE{i}" for i in range(2000)]
    sets = {f"SET_{i}": list(rng.choice(universe, 40, replace=False)) for i in range(60)}
    planted = sets["SET_7"][:25]
    core = planted + list(rng.choice(universe, 15, replace=False))
    gmt = tmp_path / "lib.gmt"
    gmt.write_text("".join(f"{k}\tdesc\t" + "\t".join(v) + "\n" for k, v in sets.items()))
    (tmp_path / "core_genes.txt").write_text("\n".join(core) + "\n")
    matrix = tmp_path / "matrix.tsv"
    matrix.write_text("\t" + "\t".join(universe) + "\ns1\t" + "\t".join(["1"] * 2000) + "\n")
    out = tmp_path / "out"
    summary = run(make_config([f"genes={tmp_path / 'core_genes.txt'}", f"background={matrix}",
                               f"libraries=[{gmt}]", "fdr=1e-10"], out, config_name="enrich"))
    table = pd.read_csv(out / "enrichment.tsv", sep="\t")
    assert table.iloc[0].set == "SET_7" and table.iloc[0].significant
    assert summary["n_significant"] == int(table.significant.sum()) >= 1
    assert summary["background_size"] == 2000
    assert (out / "enrichment.png").exists()
    assert json.loads((out / "summary.json").read_text())["top"][0]["set"] == "SET_7"


def test_gene_lists_and_backgrounds_from_gemdiff_files(tmp_path):
    scores = tmp_path / "gene_scores.tsv"
    scores.write_text("gene\tscore\tcore\nA\t2\tTrue\nB\t1\tFalse\nC\t3\tTrue\n")
    assert read_gene_list(scores) == ["A", "C"]
    rsdb = tmp_path / "x.txt"
    rsdb.write_text("Hugo_Symbol\ts1\ts2\nA\t1\t2\nB\t3\t4\n")
    assert read_background(rsdb) == ["A", "B"]
    listed = tmp_path / "bg.txt"
    listed.write_text("A\nB\n\nC\n")
    assert read_background(listed) == ["A", "B", "C"]
    assert enrich(["A"], {"lib": {"S": ["A", "B"]}}, ["A", "B", "C"], 0.05, 1).q.iloc[0] > 0


def test_toppgene_without_network_is_one_clear_error():
    with pytest.raises(GemdiffError, match="cannot reach ToppGene"):
        toppgene(["TP53"], 0.05, url="http://127.0.0.1:9/API", timeout=5)


STRING_EXPORT = ("#node1\tnode2\tnode1_string_id\tnode2_string_id\tcombined_score\n"
                 "TP53\tMDM2\t9606.a\t9606.b\t0.999\nMDM2\tTP53\t9606.b\t9606.a\t0.999\n"
                 "TP53\tCDK1\t9606.a\t9606.c\t0.41\nCDK1\tCCNB1\t9606.c\t9606.d\t0.95\n"
                 "CCNB1\tOTHER\t9606.d\t9606.e\t0.9\n")
MITAB = ("#ID(s) interactor A\tID(s) interactor B\tAlt. ID(s) interactor A\tAlt. ID(s) "
         "interactor B\tAlias(es) interactor A\tAlias(es) interactor B\tConfidence value(s)\n"
         "uniprotkb:P04637\tuniprotkb:Q00987\t-\t-\tuniprotkb:TP53(gene name)|uniprotkb:p53"
         "(gene name synonym)\tuniprotkb:MDM2(gene name)\tintact-miscore:0.85\n"
         "uniprotkb:P06493\tuniprotkb:P14635\t-\t-\tuniprotkb:CDK1(gene name)\t"
         "uniprotkb:CCNB1(gene name)\tintact-miscore:0.7\n"
         "uniprotkb:X\tchebi:1\t-\t-\tuniprotkb:X(gene name)\tchebi:water\t-\n")


def test_interaction_exports_and_the_core_network(tmp_path):
    from gemdiff.tools.ppi import core_network, read_edges

    genes = ["TP53", "MDM2", "CDK1", "CCNB1", "LONELY"]
    for name, text in (("string.tsv", STRING_EXPORT), ("intact.txt", MITAB),
                       ("plain.tsv", "TP53\tMDM2\nCDK1\tCCNB1\nTP53\tTP53\n")):
        path = tmp_path / name
        path.write_text(text)
        edges = read_edges(path)
        pairs = set(zip(edges.a, edges.b, strict=True))
        assert {("MDM2", "TP53"), ("CCNB1", "CDK1")} <= pairs, name
        assert not (edges.a == edges.b).any() and not edges.duplicated(["a", "b"]).any()
    path = tmp_path / "string.tsv"
    edges, degrees = core_network(read_edges(path), genes, min_score=0.4)
    assert len(edges) == 3  # the OTHER edge is outside the list
    assert degrees.set_index("gene").degree.to_dict() == {
        "TP53": 2, "CDK1": 2, "MDM2": 1, "CCNB1": 1, "LONELY": 0}
    strong, _ = core_network(read_edges(path), genes, min_score=0.5)
    assert len(strong) == 2


def test_enrich_draws_the_interaction_network(tmp_path):
    from gemdiff.enrich import run

    (tmp_path / "core.txt").write_text("TP53\nMDM2\nCDK1\nCCNB1\n")
    (tmp_path / "string.tsv").write_text(STRING_EXPORT)
    (tmp_path / "lib.gmt").write_text("S\td\tTP53\tMDM2\tCDK1\tCCNB1\tX1\tX2\n")
    out = tmp_path / "out"
    summary = run(make_config([f"genes={tmp_path / 'core.txt'}", f"ppi={tmp_path / 'string.tsv'}",
                               f"libraries=[{tmp_path / 'lib.gmt'}]", "min_set_size=1"], out,
                              config_name="enrich"))
    assert summary["ppi"]["edges"] == 3 and summary["ppi"]["genes_connected"] == 4
    for name in ("ppi_edges.tsv", "ppi_degrees.tsv", "ppi.png"):
        assert (out / name).is_file()
