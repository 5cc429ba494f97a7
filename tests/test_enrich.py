"""Over-representation statistics against hand computations, and the enrich command."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from gemdiff.enrich import enrich, over_representation, read_background, read_gene_list, toppgene
from gemdiff.errors import GemdiffError
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
