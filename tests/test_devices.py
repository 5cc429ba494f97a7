"""The device and precision options of sampling, perturbation, evaluation and calibration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gemdiff import GEMDiff
from gemdiff.common.config import compose_config
from gemdiff.common.devices import autocast, check_precision, resolve_device
from gemdiff.common.errors import GemdiffError
from gemdiff.evaluation.metrics import mmd_rbf
from gemdiff.runtime.options import check_options

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")


@no_gpu
def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_a_clear_error():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(GemdiffError, match=rf"device={name}: PyTorch sees no CUDA GPU"):
            resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CPU", ""])
def test_a_name_that_is_no_device_is_refused(name):
    with pytest.raises(GemdiffError, match="is not one of 'auto', 'cpu', 'cuda'"):
        resolve_device(name)


def test_precision_names_and_bf16_autocast():
    assert check_precision(32) == check_precision("32") == "32"
    with pytest.raises(GemdiffError, match="precision=16 is not one of 32, bf16"):
        check_precision(16)
    a = torch.randn(8, 8)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "32"):
        assert (a @ a).dtype == torch.float32


@pytest.mark.parametrize("app,override,message", [
    ("sample", "device=gpu", "option device=gpu: string should match"),
    ("perturb", "precision=16", "option precision=16"),
    ("evaluate", "device=cuda0", "option device=cuda0"),
    ("train", "calibrate.device=tpu", "option calibrate.device=tpu"),
])
def test_bad_device_options_are_one_line_naming_the_key(app, override, message, tmp_path):
    extra = ["ckpt_path=x.ckpt"] if app in ("sample", "perturb") else []
    cfg = compose_config([*extra, override], tmp_path, app)
    with pytest.raises(GemdiffError, match=message):
        check_options(app, cfg)


@pytest.fixture(scope="module")
def model(trained_synthetic) -> GEMDiff:
    out, summary = trained_synthetic
    return GEMDiff.load(summary["checkpoint"])


def test_cpu_gives_what_auto_gives_and_bf16_stays_near_float32(model):
    kw = {"n_per_class": 16, "sampler": "ddim", "ddim_steps": 20, "metrics": False,
          "umap": False}
    auto, cpu = model.sample(**kw).X, model.sample(device="cpu", **kw).X
    bf16 = model.sample(device="cpu", precision="bf16", **kw).X
    if not torch.cuda.is_available():
        np.testing.assert_array_equal(auto, cpu)
    assert not np.array_equal(bf16, cpu, equal_nan=True)  # the autocast really ran
    assert np.nanmean(np.abs(bf16 - cpu)) < 0.05 * np.nanmean(np.abs(cpu))

    pkw = {"source": "tumor", "metrics": False, "umap": False, "trajectory": 3}
    moved = model.perturb(device="cpu", **pkw)
    moved_bf16 = model.perturb(device="cpu", precision="bf16", **pkw)
    assert moved.uns["gemdiff"]["device"] == "cpu"
    assert moved_bf16.uns["gemdiff"]["precision"] == "bf16"
    assert not np.array_equal(moved.X, moved_bf16.X, equal_nan=True)
    assert np.nanmean(np.abs(moved.X - moved_bf16.X)) < 0.05 * np.nanmean(np.abs(moved.X))
    frames = moved.uns["trajectory"]
    assert all(isinstance(v, np.ndarray) for v in frames.values() if not isinstance(v, list))


def test_mmd_on_a_named_device_equals_the_default():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(0.3, size=(30, 6))
    assert mmd_rbf(x, y, device="cpu") == mmd_rbf(x, y)


@no_gpu
def test_cli_device_cuda_without_a_gpu_is_one_line_and_writes_nothing(trained_synthetic,
                                                                     tmp_path: Path):
    _, summary = trained_synthetic
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "gemdiff.perturb", f"ckpt_path={summary['checkpoint']}",
         "source=tumor", "device=cuda", f"paths.log_dir={runs}", "umap=false"],
        capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert "device=cuda: PyTorch sees no CUDA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(p.is_file() for p in runs.rglob("*")) if runs.exists() else True
