"""Baseline generators and perturbation maps, and their use through the commands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gemdiff.training.checkpoint import load_checkpoint
from gemdiff.common.errors import GemdiffError
from gemdiff.models.baselines import CopulaGenerator, GaussianGenerator
from gemdiff.tools.perturbation import entropic_map, mean_shift, ot_map
from gemdiff.train import run as train
from tests.conftest import make_config

# Not debug=fast: its network sizes belong to the diffusion model.
QUICK = ["trainer.accelerator=cpu", "logger=none", "callbacks.progress_bar=null",
         "trainer.enable_progress_bar=false",
         "trainer.enable_model_summary=false"]


def _two_classes(n=300, g=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    centres = np.array([[-0.4] * g, [0.3] * g])
    x = centres[y] + 0.1 * rng.standard_normal((n, g))
    return x.astype(np.float32), y, centres


def _closest_centre(x_syn, y_syn, x, y):
    """For each class of the synthetic samples, the real class whose mean is nearest."""
    real = np.stack([x[y == c].mean(0) for c in (0, 1)])
    return [int(np.argmin(np.linalg.norm(real - x_syn[y_syn == c].mean(0), axis=1)))
            for c in (0, 1)]


@pytest.mark.parametrize("covariance", ["full", "ledoit_wolf", "diagonal"])
def test_gaussian_fits_each_class(covariance):
    x, y, centres = _two_classes()
    gauss = GaussianGenerator(x.shape[1], 2, covariance).fit(x, y)
    labels = np.repeat([0, 1], 2000)
    syn = gauss.sample(labels, seed=1)
    assert syn.shape == (4000, 6)
    for c in (0, 1):
        assert np.allclose(syn[labels == c].mean(0), x[y == c].mean(0), atol=0.01)
        assert np.allclose(syn[labels == c].std(0), 0.1, atol=0.015)  # shrinkage evens it out
        assert np.abs(syn[labels == c].mean(0) - centres[c]).max() < 0.05
    assert np.array_equal(syn, gauss.sample(labels, seed=1))
    back = GaussianGenerator.from_checkpoint(gauss.checkpoint_section(), {})
    assert np.array_equal(back.sample(labels, seed=1), syn)


def test_gaussian_with_fewer_samples_than_genes():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (20, 50)), np.repeat([0, 1], 10)
    for covariance in ("full", "ledoit_wolf"):
        syn = GaussianGenerator(50, 2, covariance).fit(x, y).sample(np.array([0, 1] * 5))
        assert np.isfinite(syn).all()


def test_copula_keeps_marginals_point_masses_and_correlation():
    rng = np.random.default_rng(0)
    n = 400
    f = rng.standard_normal(n)
    a = f + 0.3 * rng.standard_normal(n)
    b = np.exp(f + 0.3 * rng.standard_normal(n))  # skewed, rank-correlated with a
    c = np.where(rng.random(n) < 0.4, -1.0, rng.uniform(0, 1, n))  # 40% at a point mass
    x, y = np.column_stack([a, b, c]), np.repeat([0, 1], n // 2)
    x[y == 1, 0] += 3.0
    cop = CopulaGenerator(3, 2).fit(x, y)
    labels = np.repeat([0, 1], 4000)
    syn = cop.sample(labels, seed=1)
    for k in (0, 1):
        real, fake = x[y == k], syn[labels == k]
        assert (fake.min(0) >= real.min(0) - 1e-9).all()
        assert (fake.max(0) <= real.max(0) + 1e-9).all()
        np.testing.assert_allclose(np.median(fake, 0), np.median(real, 0), atol=0.15)
        assert abs((fake[:, 2] == -1.0).mean() - (real[:, 2] == -1.0).mean()) < 0.05
        rho = np.corrcoef(np.argsort(np.argsort(fake[:, :2], 0), 0).T)[0, 1]
        assert rho > 0.8  # Spearman correlation of a and b kept (real about 0.95)
    back = CopulaGenerator.from_checkpoint(cop.checkpoint_section(), {})
    assert np.array_equal(back.sample(labels, seed=1), syn)


def test_copula_trains_and_samples_through_the_app(tmp_path):
    summary = train(make_config(QUICK + ["model=copula"], tmp_path))
    model = load_checkpoint(summary["checkpoint"])
    assert model.kind == "copula" and summary["global_step"] == 0
    data = model.data()
    labels = np.repeat([0, 1], 200)
    syn = model.generator.sample(labels, seed=0)
    assert _closest_centre(syn, labels, data.x_train, data.y_train) == [0, 1]


def test_entropic_map_is_defined_on_new_samples():
    rng = np.random.default_rng(0)
    source, new = rng.normal(size=(300, 2)), rng.normal(size=(50, 2))
    target = rng.normal(size=(300, 2)) * 0.5 + [4.0, -2.0]
    moved = entropic_map(source, target, epsilon=0.01)(new)
    # The OT map between these Gaussians is x -> 0.5 x + (4, -2): new samples follow it.
    assert np.abs(moved - (0.5 * new + [4.0, -2.0])).mean() < 0.15


def test_mean_shift_moves_by_the_difference_of_class_means():
    x, y, _ = _two_classes()
    moved = mean_shift(x[y == 1], x, y, 1, 0)
    shift = x[y == 0].mean(0) - x[y == 1].mean(0)
    assert np.allclose(moved, x[y == 1] + shift, atol=1e-6)


def test_ot_map_between_equal_sets_is_a_matching():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(12, 3))
    source = target[rng.permutation(12)] + 5.0  # translated copy: OT matches each to its twin
    moved = ot_map(source, target)
    assert np.allclose(moved, source - 5.0, atol=1e-5)


@pytest.fixture(scope="module")
def gaussian_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("gauss")
    summary = train(make_config(QUICK + ["model=gaussian", "model.covariance=full"], out))
    return summary["checkpoint"]


def test_gaussian_through_train_sample_and_perturb(gaussian_ckpt, tmp_path):
    from gemdiff.perturb import run as perturb_run

    model = load_checkpoint(gaussian_ckpt)
    assert model.kind == "gaussian"
    data = model.data()
    labels = np.repeat([0, 1], 200)
    syn = model.generator.sample(labels, seed=0)
    assert _closest_centre(syn, labels, data.x_train, data.y_train) == [0, 1]
    for how in ("mean_shift", "ot", "entropic_ot"):
        m = perturb_run(make_config([f"ckpt_path={gaussian_ckpt}", f"map={how}", "umap=false"],
                                    tmp_path / how, config_name="perturb"))
        assert m["map"] == how and m["cycle_error"] is None
        assert m["frac_to_target"] > 0.9
        assert (tmp_path / how / "perturbed.tsv").exists()
    with pytest.raises(GemdiffError, match="map=bridge.*needs a diffusion model"):
        perturb_run(make_config([f"ckpt_path={gaussian_ckpt}", "umap=false"], tmp_path / "b",
                                config_name="perturb"))


def test_wgan_learns_the_class_means(tmp_path):
    summary = train(make_config(QUICK + ["model=wgan", "model.hidden=64", "model.depth=2",
                                         "model.lr=5e-4", "model.n_critic=3",
                                         "trainer.max_steps=1200", "data.source.n_genes=8",
                                         "trainer.val_check_interval=600"], tmp_path))
    model = load_checkpoint(summary["checkpoint"])
    assert model.kind == "wgan"
    data = model.data()
    labels = np.repeat([0, 1], 300)
    syn = model.generator.sample(labels, seed=0)
    assert syn.shape == (600, 8) and np.abs(syn).max() <= 1
    assert _closest_centre(syn, labels, data.x_train, data.y_train) == [0, 1]
    assert np.array_equal(syn, model.generator.sample(labels, seed=0))


def _baselines_driver(tmp_path, monkeypatch):
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("baselines_run",
                                                  ROOT / "experiments" / "baselines" / "run.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    monkeypatch.setattr(driver, "HERE", tmp_path)
    return driver


def test_comparison_table_builder(tmp_path, monkeypatch):
    driver = _baselines_driver(tmp_path, monkeypatch)
    rows = []
    for seed, ratio in ((0, 1.0), (1, 2.0), (2, 3.0)):
        rows += [{"dataset": "d16", "seed": seed, "task": "augment", "method": "gemdiff",
                  "mmd_ratio": ratio, "svm_acc_synthetic": 0.9, "train_seconds": 10.0},
                 {"dataset": "d16", "seed": seed, "task": "perturb", "method": "ot",
                  "frac_to_target": 0.5 + 0.1 * seed, "mmd_to_target_ratio": 1.0}]
    text = driver.write_tables(rows)
    assert "| d16 | gemdiff | 3 | 2 ± 1 | 90.0% ± 0.0% |" in text
    assert "| d16 | ot | 3 | 60.0% ± 10.0% | 1 ± 0 |" in text
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 7
    assert (tmp_path / "results.md").read_text() == text
    assert "paired by seed" not in text  # nothing to pair GEMDiff with


def test_comparison_table_pairs_gemdiff_with_each_baseline_by_seed(tmp_path, monkeypatch):
    driver = _baselines_driver(tmp_path, monkeypatch)
    rows = []
    for seed, (ours, theirs) in enumerate(((0.60, 0.70), (0.70, 0.75), (0.50, 0.62))):
        base = {"dataset": "d16", "seed": seed, "task": "augment"}
        rows += [{**base, "method": "gemdiff", "c2st_auc": ours, "mmd_ratio": 1.0},
                 {**base, "method": "gaussian_full", "c2st_auc": theirs, "mmd_ratio": 1.0},
                 {**base, "method": "real (null)", "c2st_auc": 0.5, "mmd_ratio": 2.0}]
    rows.append({"dataset": "d16", "seed": 3, "task": "augment", "method": "gaussian_full",
                 "c2st_auc": 0.9, "mmd_ratio": 1.0})  # no GEMDiff run to pair it with
    text = driver.write_tables(rows)
    # differences -0.10, -0.05, -0.12: mean -0.09, SD 0.036, t interval +- 4.303 * 0.036 / sqrt 3
    line = next(x for x in text.splitlines() if x.startswith("| d16 | gaussian_full | 3 | -0.090"))
    assert "[-0.180, -0.000]" in line
    cells = [c.strip() for c in line.split("|")]
    assert 0.04 < float(cells[5]) < 0.06  # paired t-test p
    assert cells[6:8] == ["+0.000 [+0.000, +0.000]", ""]  # equal MMD ratios: no test
    assert "real (null) | " not in text.split("paired by seed")[1]


def test_sample_size_table_builder(tmp_path, monkeypatch):
    import importlib.util
    import sys

    from tests.conftest import ROOT

    folder = ROOT / "experiments" / "baselines"
    monkeypatch.syspath_prepend(str(folder))  # the script imports run.py beside it
    monkeypatch.delitem(sys.modules, "run", raising=False)
    spec = importlib.util.spec_from_file_location("sample_size", folder / "sample_size.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = [{"fraction": 0.3, "seed": s, "method": "gemdiff", "n_train": "38/199",
             **{c: 0.5 + 0.1 * s for c in script.COLS}} for s in (0, 1)]
    rows.append({"fraction": 0.3, "seed": 0, "method": "real (null)", "n_train": "38/199",
                 "c2st_auc": 0.5})
    text = script.write_table(pd.DataFrame(rows), tmp_path / "sample_size.csv")
    assert "| 0.3 | 38/199 | gemdiff | 2 | 0.55 ± 0.071 |" in text
    assert "| 0.3 | 38/199 | real (null) | 1 |  | 0.5 ± 0 |" in text
    assert len((tmp_path / "sample_size.csv").read_text().splitlines()) == 4
    assert (tmp_path / "sample_size.md").read_text() == text
