"""gemdiff.sample and gemdiff.perturb on a briefly trained synthetic model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gemdiff import perturb, sample
from gemdiff.common.config import compose_config
from gemdiff.data.io import read_gemdiff
from gemdiff.common.errors import InputError


@pytest.fixture(scope="module")
def ckpt(trained_synthetic):
    out, summary = trained_synthetic
    return summary["checkpoint"]


def test_sample_writes_files_in_input_units(ckpt, tmp_path):
    cfg = compose_config([f"ckpt_path={ckpt}", "n_per_class=60", "sampler=ddim",
                          "ddim_steps=50", "umap=false"], tmp_path, "sample")
    metrics = sample.run(cfg)
    gem = read_gemdiff(tmp_path / "synthetic.tsv", tmp_path / "synthetic_labels.tsv")
    assert gem.values.shape == (120, 16) and gem.class_counts() == {"normal": 60, "tumor": 60}
    finite = gem.values[np.isfinite(gem.values)]
    assert -4 < np.median(finite) < 14  # log2 expression, not the [-1, 1] model scale
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("mmd", "mmd_baseline", "mmd_ratio", "svm_acc_test", "svm_acc_synthetic",
                "tstr_acc", "c2st_auc", "dcr_ratio", "corr_slope", "corr_slope_real", "silhouette"):
        assert np.isfinite(saved[key]) and saved[key] == metrics[key]
    assert metrics["svm_acc_synthetic"] > 0.8 and metrics["dcr_ratio"] > 0.5


def test_perturb_moves_source_to_target_and_flags_drivers(ckpt, tmp_path):
    cfg = compose_config([f"ckpt_path={ckpt}", "source=normal", "target=tumor",
                          "ddim_steps=50", "umap=true", "core_k=1.0"], tmp_path, "perturb")
    metrics = perturb.run(cfg)
    for name in ("perturbed.tsv", "perturbed.h5ad", "gene_scores.tsv", "core_genes.txt",
                 "metrics.json", "umap.png", "trajectory.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    model_meta = torch.load(ckpt, weights_only=True)["gemdiff"]
    moved = pd.read_csv(tmp_path / "perturbed.tsv", sep="\t", index_col=0)
    assert set(moved.index) <= set(model_meta["test_ids"]) and len(moved) == metrics["n_samples"]
    assert metrics["frac_to_target"] > 0.8 > metrics["frac_to_target_before"]
    assert metrics["cycle_error"] < 0.05
    src = model_meta["config"]["data"]["source"]
    from gemdiff.data.synthetic import simulate_gem

    drivers = set(simulate_gem(**{k: v for k, v in src.items() if k != "format"}).drivers)
    core = set((tmp_path / "core_genes.txt").read_text().split())
    assert core and core <= drivers


def test_unknown_class_is_a_clear_error_and_writes_nothing(ckpt, tmp_path):
    out = tmp_path / "out"
    cfg = compose_config([f"ckpt_path={ckpt}", "source=metastatic"], out, "perturb")
    with pytest.raises(InputError, match="has no class 'metastatic'; its classes are normal"):
        perturb.run(cfg)
    assert not out.exists()


def test_missing_checkpoint(tmp_path):
    cfg = compose_config([f"ckpt_path={tmp_path / 'nope.ckpt'}"], tmp_path / "o", "sample")
    with pytest.raises(InputError, match="checkpoint not found"):
        sample.run(cfg)


def test_checkpoint_that_disagrees_with_itself_is_refused(ckpt, tmp_path):
    raw = torch.load(ckpt, weights_only=True)
    raw["gemdiff"]["genes"] = raw["gemdiff"]["genes"][1:]  # metadata edited: one gene less
    other = tmp_path / "other.ckpt"
    torch.save(raw, other)
    cfg = compose_config([f"ckpt_path={other}", "umap=false"], tmp_path / "o", "perturb")
    with pytest.raises(InputError, match="inconsistent checkpoint: its network has 16 genes, "
                                         "its metadata 15"):
        perturb.run(cfg)
    assert not (tmp_path / "o").exists()
