"""Figures a user can trust on their own data: plausible values, small classes, honest nulls,
a non-circular enrichment background."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gemdiff.common.errors import InputError
from gemdiff.data.dataset import DataOptions, prepare_data
from gemdiff.data.io import GEM
from gemdiff.data.preprocess import Preprocessor
from gemdiff.evaluation.metrics import augmentation_metrics, balanced_accuracy, perturbation_metrics
from tests.conftest import make_config


def _gem(counts: dict[str, int], n_genes: int = 6, seed: int = 0, shift: float = 2.0) -> GEM:
    """A matrix with ``counts`` samples per class; classes differ in their mean."""
    rng = np.random.default_rng(seed)
    labels = np.array([c for c, n in counts.items() for _ in range(n)], dtype=object)
    index = {c: i for i, c in enumerate(counts)}
    values = rng.normal(5, 1, (len(labels), n_genes)) + shift * np.array(
        [index[c] for c in labels])[:, None]
    return GEM(values, [f"s{i}" for i in range(len(labels))],
               [f"G{j}" for j in range(n_genes)], labels, source="matrix.tsv")


def test_a_class_of_one_sample_is_an_error_naming_it_unless_allowed():
    gem = _gem({"normal": 20, "tumor": 20, "normall": 1})
    with pytest.raises(InputError) as err:
        prepare_data(gem)
    msg = str(err.value)
    assert msg.startswith("matrix.tsv: class 'normall' has a single sample ('s40')")
    assert "'normal' (20), 'tumor' (20), 'normall' (1)" in msg
    assert "data.allow_single_sample_classes=true" in msg
    # With a given test matrix the same class is caught (no split would have failed on it).
    with pytest.raises(InputError, match="single sample"):
        prepare_data(_gem({"normal": 20, "tumor": 20, "normall": 1}),
                     _gem({"normal": 5, "tumor": 5}, seed=1))
    data = prepare_data(_gem({"normal": 20, "tumor": 20, "normall": 1}),
                        _gem({"normal": 5, "tumor": 5}, seed=1),
                        options=DataOptions(allow_single_sample_classes=True))
    assert data.classes == ["normal", "normall", "tumor"]


def test_small_classes_are_named_in_the_data_summary():
    data = prepare_data(_gem({"normal": 10, "tumor": 60}))
    summary = data.summary()
    assert summary["test"]["normal"] < 10
    (warning,) = summary["warnings"]
    assert warning.startswith("class 'normal' has ") and "mean little below 10" in warning
    assert "warnings" not in prepare_data(_gem({"normal": 60, "tumor": 60})).summary()


def test_balanced_accuracy_and_the_frac_to_target_of_a_majority_classifier():
    """With 3 real normals among 60 tumours a classifier that calls everything tumour has
    accuracy 0.95 but balanced accuracy 0.5, and its frac_to_target says nothing."""
    y = np.r_[np.zeros(3), np.ones(57)].astype(int)
    assert balanced_accuracy(y, np.ones(60, int)) == 0.5

    class Majority:
        def predict(self, x):
            return np.ones(len(x), int)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    m = perturbation_metrics(x, x + 1, None, x[:3], x[3:6], Majority(), target_index=0)
    assert m.frac_to_target == 0.0 and m.frac_to_target_real == 0.0
    assert m.frac_to_target_informative is False


def test_a_null_on_too_few_samples_is_nan_with_a_reason():
    rng = np.random.default_rng(0)
    x_train, y_train = rng.normal(size=(60, 5)), np.repeat([0, 1], 30)
    x_test, y_test = rng.normal(size=(12, 5)), np.repeat([0, 1], 6)
    m = augmentation_metrics(x_train, y_train, x_test, y_test, rng.normal(size=(12, 5)),
                             np.repeat([0, 1], 6))
    assert np.isnan(m.c2st_auc_null) and "too few" in m.null_note
    assert 0 <= m.svm_bacc_test <= 1 and 0 <= m.tstr_bacc <= 1
    big = augmentation_metrics(x_train, y_train, rng.normal(size=(80, 5)), np.repeat([0, 1], 40),
                               rng.normal(size=(80, 5)), np.repeat([0, 1], 40))
    assert np.isfinite(big.c2st_auc_null) and big.null_note is None


def test_values_beyond_a_genes_plausible_range_are_held_there_and_counted():
    v = np.array([[0.0, 2.0], [4.0, 10.0], [8.0, 6.0]])  # log2(n + 1) units
    pre = Preprocessor().fit(v)
    x_train = pre.transform(v)
    lo, hi = pre.plausible_range(x_train)
    # Each gene's training range widened by one log2 unit, never below unexpressed (0).
    t = pre.to_log2p1_scale(x_train)
    np.testing.assert_allclose(pre.to_log2p1_scale(np.vstack([lo, hi])),
                               [np.maximum(t.min(0) - 1, 0), t.max(0) + 1], atol=1e-5)
    wild = pre.transform(np.array([[3.0, 5.0], [30.0, 5.0], [3.0, 0.0], [3.0, 5.0]]))
    held, share = pre.clip_plausible(wild, x_train)
    assert share == pytest.approx(2 / 8)  # 30 above gene 0's range, 0 below gene 1's
    got = pre.to_log2p1_scale(held)
    assert got[1, 0] == pytest.approx(t.max(0)[0] + 1, abs=1e-5)
    assert got[2, 1] == pytest.approx(t.min(0)[1] - 1, abs=1e-5)


def test_synthetic_results_report_the_clipped_share_and_warn(tmp_path):
    from gemdiff.tools.results import synthetic_result

    data = prepare_data(_gem({"normal": 60, "tumor": 60}))
    x = data.x_test.copy()
    x[:, 0] = 5.0  # one gene of every sample far off the scale
    y = data.y_test
    held = synthetic_result(data, x, y, umap=False)
    m = held.uns["metrics"]
    assert 1 / data.n_genes <= m["clipped_share"] < 1 / data.n_genes + 0.02
    assert any("held there" in w for w in m["warnings"])
    assert held.X[:, 0].max() <= data.preprocessor.hi[0] + 1.0 + 1e-6  # log2 input, in range
    raw = synthetic_result(data, x, y, umap=False, bounded=False)  # another tool's samples
    assert raw.uns["metrics"]["clipped_share"] == m["clipped_share"]
    assert raw.X[:, 0].max() > held.X[:, 0].max()


def test_enrichment_tests_against_the_genes_a_run_scored_by_default(tmp_path):
    from gemdiff.enrich import run

    universe = [f"G{i}" for i in range(200)]
    scored = universe[:40]  # the genes a run scored, all of one library's set plus others
    gmt = tmp_path / "lib.gmt"
    gmt.write_text("SCREENED\td\t" + "\t".join(scored[:30]) + "\nOTHER\td\t"
                   + "\t".join(universe[100:140]) + "\n")
    run_dir = tmp_path / "core_run"
    run_dir.mkdir()
    pd.DataFrame({"gene": scored, "score": np.linspace(1, 0, 40),
                  "core": [True] * 10 + [False] * 30}).to_csv(run_dir / "core_genes.tsv",
                                                              sep="\t", index=False)
    (run_dir / "core_genes.txt").write_text("\n".join(scored[:10]) + "\n")
    common = [f"genes={run_dir / 'core_genes.txt'}", f"libraries=[{gmt}]", "min_set_size=2",
              "fdr=0.05"]
    summary = run(make_config(common, tmp_path / "e1", "enrich"))
    assert summary["background_size"] == 40
    assert summary["background_source"] == f"the genes scored in {run_dir / 'core_genes.tsv'}"
    # Against the libraries' genes the screened set looks enriched; against what was scored,
    # where every listed gene comes from, it does not.
    circular = run(make_config(common + ["background=libraries"], tmp_path / "e2", "enrich"))
    table = pd.read_csv(tmp_path / "e2" / "enrichment.tsv", sep="\t")
    fair = pd.read_csv(tmp_path / "e1" / "enrichment.tsv", sep="\t")
    assert circular["background_size"] == 70
    q = lambda t: float(t.loc[t.set == "SCREENED", "q"].iloc[0])  # noqa: E731
    assert q(table) < q(fair)
    assert json.loads((tmp_path / "e1" / "summary.json").read_text())["background_source"]
