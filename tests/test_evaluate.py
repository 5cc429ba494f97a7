"""gemdiff.evaluate scores files from any generator with the metrics of sample and perturb."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemdiff import evaluate, perturb, sample
from gemdiff.training.checkpoint import load_checkpoint
from gemdiff.common.config import compose_config
from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.common.files import write_labels, write_matrix


@pytest.fixture(scope="module")
def ckpt(trained_synthetic):
    return trained_synthetic[1]["checkpoint"]


@pytest.fixture(scope="module")
def sampled(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("sampled")
    cfg = compose_config([f"ckpt_path={ckpt}", "n_per_class=80", "sampler=ddim",
                          "ddim_steps=40", "umap=false"], out, "sample")
    return out, sample.run(cfg)


def test_scores_samples_as_gemdiff_sample_did(ckpt, sampled, tmp_path):
    src, expected = sampled
    cfg = compose_config([f"ckpt_path={ckpt}", f"synthetic={src / 'synthetic.tsv'}",
                          f"synthetic_labels={src / 'synthetic_labels.tsv'}", "umap=true"],
                         tmp_path, "evaluate")
    metrics = evaluate.run(cfg)
    # The files hold input units; scaled back they give the same metrics up to rounding.
    for key in ("mmd", "mmd_baseline", "svm_acc_synthetic", "tstr_acc", "dcr_ratio",
                "corr_slope", "corr_slope_real", "silhouette"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-6), key
    assert json.loads((tmp_path / "metrics.json").read_text())["n_synthetic"] == 160
    assert (tmp_path / "umap_real_vs_synthetic.png").stat().st_size > 0


def test_copied_training_data_is_flagged_by_dcr(ckpt, tmp_path):
    model = load_checkpoint(ckpt)
    data = model.data()
    ids = [f"copy_{i}" for i in range(len(data.x_train))]
    write_matrix(model.preprocessor.inverse_transform(data.x_train), ids, model.genes,
                 tmp_path / "copy.tsv")
    write_labels(ids, [model.classes[i] for i in data.y_train], tmp_path / "copy_labels.tsv")
    cfg = compose_config([f"ckpt_path={ckpt}", f"synthetic={tmp_path / 'copy.tsv'}",
                          f"synthetic_labels={tmp_path / 'copy_labels.tsv'}", "umap=false"],
                         tmp_path / "out", "evaluate")
    metrics = evaluate.run(cfg)
    assert metrics["dcr_ratio"] < 0.05  # synthetic samples sit on training samples
    assert metrics["mmd_ratio"] == pytest.approx(1.0, abs=0.01)  # train vs test, as baseline
    assert metrics["corr_slope"] == pytest.approx(1.0, abs=0.01)  # every correlation kept


def test_scores_a_perturbation_without_the_model(ckpt, tmp_path):
    run_dir = tmp_path / "perturb"
    cfg = compose_config([f"ckpt_path={ckpt}", "source=normal", "target=tumor",
                          "ddim_steps=40", "umap=false"], run_dir, "perturb")
    expected = perturb.run(cfg)
    cfg = compose_config([f"ckpt_path={ckpt}", f"perturbed={run_dir / 'perturbed.tsv'}"],
                         tmp_path / "eval", "evaluate")
    metrics = evaluate.run(cfg)
    assert (metrics["source"], metrics["target"]) == ("normal", "tumor")  # inferred
    assert metrics["cycle_error"] is None
    for key in ("frac_to_target", "frac_to_target_before", "mmd_target_baseline", "ot_cost"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-6), key
    assert (tmp_path / "eval" / "umap.png").stat().st_size > 0


def test_real_data_from_a_dataset_config(sampled, tmp_path):
    src, _ = sampled
    cfg = compose_config(["data=synthetic", "data.source.n_genes=16", "data.source.n_drivers=4",
                          "data.source.n_samples=400", f"synthetic={src / 'synthetic.tsv'}",
                          f"synthetic_labels={src / 'synthetic_labels.tsv'}", "umap=false"],
                         tmp_path, "evaluate")
    metrics = evaluate.run(cfg)
    assert metrics["svm_acc_synthetic"] > 0.8 and np.isfinite(metrics["mmd_ratio"])


def _bad(ckpt, tmp_path, overrides):
    out = tmp_path / "out"
    cfg = compose_config([f"ckpt_path={ckpt}", "umap=false", *overrides], out, "evaluate")
    return cfg, out


def test_missing_gene_is_a_clear_error_and_writes_nothing(ckpt, sampled, tmp_path):
    src, _ = sampled
    text = (src / "synthetic.tsv").read_text().splitlines()
    header = text[0].split("\t")
    keep = [i for i in range(len(header)) if i != 3]
    rows = ["\t".join(line.split("\t")[i] for i in keep) for line in text]
    (tmp_path / "short.tsv").write_text("\n".join(rows) + "\n")
    cfg, out = _bad(ckpt, tmp_path, [f"synthetic={tmp_path / 'short.tsv'}",
                                     f"synthetic_labels={src / 'synthetic_labels.tsv'}"])
    with pytest.raises(InputError, match=rf"short\.tsv.*lacks 1 of the real data's 16 genes, "
                                         rf"e\.g\. '{header[3]}'"):
        evaluate.run(cfg)
    assert not out.exists()


def test_unknown_class_and_foreign_samples(ckpt, sampled, tmp_path):
    src, _ = sampled
    labels = (src / "synthetic_labels.tsv").read_text().replace("\ttumor", "\tmetastatic")
    (tmp_path / "labels.tsv").write_text(labels)
    cfg, out = _bad(ckpt, tmp_path, [f"synthetic={src / 'synthetic.tsv'}",
                                     f"synthetic_labels={tmp_path / 'labels.tsv'}"])
    with pytest.raises(InputError, match="has class 'metastatic', not a class of the real"):
        evaluate.run(cfg)
    # Synthetic sample ids are not real samples: not a perturbation of the real data.
    cfg, out = _bad(ckpt, tmp_path, [f"perturbed={src / 'synthetic.tsv'}"])
    with pytest.raises(InputError, match="is not a real sample of the test split"):
        evaluate.run(cfg)
    cfg, out = _bad(ckpt, tmp_path, [])
    with pytest.raises(GemdiffError, match="nothing to score"):
        evaluate.run(cfg)
    assert not out.exists()
