"""Gene-set screening: statistics on constructed scores, the cache, and small end-to-end screens."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gemdiff.evaluation import embedding
from gemdiff.evaluation.embedding import UmapParams
from gemdiff.tools import cluster_potential as cp
from gemdiff.common.config import compose_config
from gemdiff.common.errors import ScreenInterrupted
from gemdiff.screen import run

SMALL = [
    "data.source.n_samples=200", "data.source.n_genes=400", "data.source.n_modules=8",
    "data.source.n_drivers=24", "n_control=30", "feature_sizes=[8,32]",
    "feature_size_repeats=3", "umap.n_epochs=30", "n_jobs=1", "progress=false", "plot_top=2",
]


def small_screen(out, *extra):
    return compose_config([*SMALL, *extra], out, "screen")


def test_empirical_p_by_hand():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    p = cp.empirical_p(np.array([0.35, 0.05, 0.5, np.nan]), null)
    np.testing.assert_allclose(p[:3], [(1 + 1) / 5, (1 + 4) / 5, 1 / 5])
    assert np.isnan(p[3])


def test_t_test_and_flags_on_constructed_scores():
    subsets = np.array([0.1, 0.2, 0.3, 0.4, 0.9, -0.5])
    control = np.array([0.0, 0.1, 0.05, 0.15, 0.1])
    st = cp.compare_to_control(subsets, control, flag_sd=1.0)
    t, p = stats.ttest_ind(subsets, control)  # Student's, equal variances
    assert st.t == pytest.approx(t) and st.p_student == pytest.approx(p)
    mean, sd = subsets.mean(), subsets.std(ddof=1)
    assert st.high_threshold == pytest.approx(mean + sd)
    assert st.low_threshold == pytest.approx(mean - sd)
    assert cp.flags(subsets, st).tolist() == ["", "", "", "", "high", "low"]
    st_c = cp.compare_to_control(subsets, control, flag_sd=2.0, reference="control")
    assert st_c.high_threshold == pytest.approx(control.mean() + 2 * control.std(ddof=1))


def test_balanced_rows_take_the_smallest_class_count():
    y = np.array([0] * 10 + [1] * 3 + [2] * 5)
    rows = cp.balanced_rows(y, seed=0)
    assert np.bincount(y[rows]).tolist() == [3, 3, 3]
    assert np.array_equal(rows, cp.balanced_rows(y, seed=0))


def test_silhouette_separates_shifted_classes():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    apart = rng.normal(size=(120, 16)) + 4.0 * y[:, None]
    mixed = rng.normal(size=(120, 16))
    settings = UmapParams(n_epochs=30)
    s_apart = cp.score_subset(apart.astype(np.float32), y, None, settings)
    s_mixed = cp.score_subset(mixed.astype(np.float32), y, None, settings)
    assert s_apart["silhouette"] > 0.5 > abs(s_mixed["silhouette"])
    assert s_apart["silhouette_gene"] > s_mixed["silhouette_gene"]


def test_cache_skips_done_sets_and_ignores_a_cut_line(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 30)).astype(np.float32)
    y = np.repeat([0, 1], 20)
    cols = [list(range(i, i + 4)) for i in range(0, 24, 4)]
    settings = cp.ScoreSettings(UmapParams(), score="gene")
    cache = cp.ScoreCache(tmp_path / "cache.jsonl")
    first = cp.score_many(x, y, cols[:3], settings, cache)
    with open(tmp_path / "cache.jsonl", "a") as f:
        f.write('{"key": "cut sho')  # a kill in the middle of a line
    calls = []
    real = cp._score_chunk
    monkeypatch.setattr(cp, "_score_chunk", lambda c, *a: calls.append(len(c)) or real(c, *a))
    again = cp.score_many(x, y, cols, settings, cp.ScoreCache(tmp_path / "cache.jsonl"))
    assert sum(calls) == 3  # only the three new sets were computed
    assert again[:3] == first


def test_parallel_scores_equal_serial(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 40)).astype(np.float32)
    y = np.repeat([0, 1], 25)
    x[y == 1, :5] += 1.0
    cols = [rng.choice(40, 5, replace=False) for _ in range(12)]
    settings = cp.ScoreSettings(UmapParams(), score="gene")
    serial = cp.score_many(x, y, cols, settings, cp.ScoreCache(tmp_path / "a.jsonl"))
    par = cp.score_many(x, y, cols, settings, cp.ScoreCache(tmp_path / "b.jsonl"), n_jobs=2,
                        chunk_size=2)
    assert serial == par


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    out = tmp_path_factory.mktemp("screen")
    summary = run(small_screen(out))
    return out, summary


def test_screen_finds_the_planted_module_and_writes_every_file(screened):
    out, summary = screened
    for name in ("subsets.tsv", "sets.tsv", "feature_sizes.tsv", "control.tsv", "subsets.gmt",
                 "summary.json", "scores.png", "umaps.png", "feature_sizes.png"):
        assert (out / name).is_file(), name
    subsets = pd.read_csv(out / "subsets.tsv", sep="\t")
    sets = pd.read_csv(out / "sets.tsv", sep="\t")
    assert sets.iloc[0]["set"] == "MODULE_1"  # the drivers' module clusters best
    module1 = subsets[subsets.set == "MODULE_1"]
    assert (module1.flag == "high").all()
    assert (subsets[subsets.set != "MODULE_1"].flag != "high").all()
    genes = [g for row in subsets.genes for g in row.split(",")]
    assert len(genes) == len(set(genes)) == 16 * len(subsets)  # no gene in two subsets
    assert set(pd.read_csv(out / "feature_sizes.tsv", sep="\t")["size"]) == {8, 32}
    assert len(pd.read_csv(out / "control.tsv", sep="\t")) == 30
    gmt = (out / "subsets.gmt").read_text().splitlines()
    assert len(gmt) == len(subsets) and all(len(line.split("\t")) == 18 for line in gmt)
    assert summary["n_high"] == len(module1)
    assert json.loads((out / "summary.json").read_text())["n_subsets"] == len(subsets)


def test_screen_is_deterministic_and_resumes_from_its_cache(screened, tmp_path, monkeypatch):
    out, _ = screened
    expected = pd.read_csv(out / "subsets.tsv", sep="\t")
    # Stop a fresh screen after two chunks, as Ctrl-C would.
    calls = []
    real = cp._score_chunk

    def stop_after_two(chunk, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(chunk, *args)

    monkeypatch.setattr(cp, "_score_chunk", stop_after_two)
    with pytest.raises(ScreenInterrupted, match="stopped after 8 of"):
        run(small_screen(tmp_path))
    assert not (tmp_path / "subsets.tsv").exists()
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 8
    monkeypatch.setattr(cp, "_score_chunk", real)
    run(small_screen(tmp_path))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "subsets.tsv", sep="\t"), expected)


def test_gene_space_screen_needs_no_umap(tmp_path, monkeypatch):
    for module in (cp, embedding):
        monkeypatch.setattr(module, "umap_2d", lambda *a, **k: pytest.fail("UMAP was run"))
    summary = run(small_screen(tmp_path, "score=gene"))
    assert (tmp_path / "umaps.png").is_file()
    assert summary["n_high"] >= 1
