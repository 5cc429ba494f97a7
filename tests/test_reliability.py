"""Interrupted runs, numerical guards, determinism and safe files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import lightning as L

from gemdiff.training.callbacks import AtomicCheckpointIO
from gemdiff.training.checkpoint import load_checkpoint
from gemdiff.common.errors import OutputExistsError, OutputWriteError, TrainingDiverged
from gemdiff.train import run as train
from tests.conftest import TINY, make_config

# A model small enough that a few hundred steps take seconds; checkpoints every 20 steps.
SMALL = TINY + ["model.denoiser.d_model=32", "model.denoiser.depth=1", "data.source.n_genes=8",
                "data.source.n_samples=200", "trainer.val_check_interval=20",
                "callbacks.checkpoint.every_n_train_steps=20", "logger=none",
                "trainer.enable_progress_bar=false"]
ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _weights(path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return {**{f"ema.{k}": v for k, v in ckpt["state_dict"].items()},
            **{f"raw.{k}": v for k, v in ckpt["current_model_state"].items()}}


def _assert_same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _step(path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _train_cmd(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "gemdiff.train", *SMALL, f"hydra.run.dir={run_dir}",
            *overrides]


def _start_and_wait_for_checkpoint(run_dir: Path, min_step: int) -> subprocess.Popen:
    """Start an endless training run; return once it has saved a checkpoint of ``min_step``."""
    proc = subprocess.Popen(_train_cmd(run_dir, "trainer.max_steps=1000000"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read()}")
        if last.exists() and _step(last) >= min_step:
            return proc
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no checkpoint within 180 s")


@pytest.mark.slow  # 16 s; the SIGTERM test below resumes by default
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    proc = _start_and_wait_for_checkpoint(killed, 40)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    last = killed / "checkpoints" / "last.ckpt"
    load_checkpoint(last)  # a kill never leaves a half-written last.ckpt
    end = _step(last) + 30

    resumed = subprocess.run(_train_cmd(tmp_path / "resumed", f"trainer.max_steps={end}",
                                        f"ckpt_path={last}"),
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run(_train_cmd(tmp_path / "straight", f"trainer.max_steps={end}"),
                              env=ENV, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]

    a = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    b = tmp_path / "straight" / "checkpoints" / "last.ckpt"
    assert _step(a) == _step(b) == end
    _assert_same_weights(a, b)
    # The loss history travels in the checkpoint: the resumed run's table is the whole run's.
    ta = (tmp_path / "resumed" / "loss.tsv").read_text().splitlines()
    tb = (tmp_path / "straight" / "loss.tsv").read_text().splitlines()
    assert [r for r in ta if "\ttrain\t" in r] == [r for r in tb if "\ttrain\t" in r]


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start_and_wait_for_checkpoint(run_dir, 40)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    last = run_dir / "checkpoints" / "last.ckpt"
    step = _step(last)
    assert f"stopped by SIGTERM at step {step}" in err
    assert f"ckpt_path={last}" in err
    load_checkpoint(last)
    assert (run_dir / "loss.tsv").exists()


class PoisonWeights(L.Callback):
    """Test helper: turns the weights to NaN after optimizer step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.denoiser.parameters()).fill_(float("nan"))


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = make_config(SMALL + ["trainer.max_steps=200",
                               "+callbacks.poison._target_=tests.test_reliability.PoisonWeights",
                               "+callbacks.poison.step=30"], tmp_path)
    with pytest.raises(TrainingDiverged) as err:
        train(cfg)
    msg = str(err.value)
    assert "training diverged" in msg and "last good checkpoint" in msg
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert str(last) in msg
    assert _step(last) == 20
    model = load_checkpoint(last)
    assert all(torch.isfinite(p).all() for p in model.generator.denoiser.parameters())


def test_training_is_deterministic(tmp_path):
    runs = [train(make_config(SMALL + ["trainer.max_steps=40"], tmp_path / name))
            for name in ("a", "b")]
    _assert_same_weights(runs[0]["checkpoint"], runs[1]["checkpoint"])
    assert (tmp_path / "a" / "loss.tsv").read_text() == (tmp_path / "b" / "loss.tsv").read_text()


def test_sampling_and_perturbation_are_deterministic(trained_synthetic):
    from gemdiff.models.generators import SampleOptions
    from gemdiff.tools.gene_scores import gene_scores
    from gemdiff.tools.perturbation import BridgeMap

    _, summary = trained_synthetic
    model = load_checkpoint(summary["checkpoint"])
    gen, labels = model.generator, np.repeat([0, 1], 5)
    for sampler in ("ddpm", "ddim", "dpm2"):
        a, b = (gen.sample(labels, 3, SampleOptions(sampler, ddim_steps=20)) for _ in range(2))
        assert np.array_equal(a, b), sampler
    assert not np.array_equal(a, gen.sample(labels, 4, SampleOptions("ddim", ddim_steps=20)))
    x = model.data().x_test[:20]
    p, q = (BridgeMap(ddim_steps=20).apply(model, x, 1, 0) for _ in range(2))
    assert np.array_equal(p.x_moved, q.x_moved)
    scores = [gene_scores(model.preprocessor, model.genes, r.x_source, r.x_moved) for r in (p, q)]
    assert scores[0].equals(scores[1])


def test_an_existing_results_folder_is_not_overwritten(trained_synthetic, tmp_path):
    from gemdiff.common.resultsets import check_fresh
    from gemdiff.perturb import run as perturb_run
    from gemdiff.sample import run as sample_run

    out, summary = trained_synthetic
    (tmp_path / "metrics.json").write_text("{}")
    for app, run in (("sample", sample_run), ("perturb", perturb_run)):
        cfg = make_config([f"ckpt_path={summary['checkpoint']}"], tmp_path, config_name=app)
        with pytest.raises(OutputExistsError) as err:
            run(cfg)
        assert str(err.value).startswith(f"{tmp_path}: already holds results")
        assert "(metrics.json)" in str(err.value) and "overwrite=true" in str(err.value)
    assert (tmp_path / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    check_fresh(tmp_path, ["metrics.json"], overwrite=True)  # asked: allowed
    check_fresh(tmp_path, ["synthetic.tsv", "checkpoints"])  # other products: allowed

    # Training into a finished run's folder is refused before any work.
    with pytest.raises(OutputExistsError, match="summary.json"):
        train(make_config(SMALL + ["trainer.max_steps=5"], out))


def test_checkpoint_writer_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.ones(3)}, path)

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OutputWriteError, match="last.ckpt: cannot be written: disk full"):
        io.save_checkpoint({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_full_disk_under_torch_save_is_one_write_error_and_keeps_the_old_file(
        tmp_path, monkeypatch):
    # On a full disk PyTorch's archive writer raises RuntimeError("... unexpected pos ...")
    # from the OSError of the failed write.
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.ones(3)}, path)

    def full_disk(obj, fh, *args, **kwargs):
        try:
            raise OSError(28, "No space left on device")
        except OSError as err:
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos "
                               "64 vs 0") from err

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputWriteError, match="last.ckpt: cannot be written: No space left "
                                               "on device \\(ENOSPC\\)"):
        io.save_checkpoint({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_resume_from_another_gene_list_is_refused(trained_synthetic, tmp_path):
    from gemdiff.common.errors import InputError

    _, summary = trained_synthetic
    cfg = make_config(SMALL + ["trainer.max_steps=5", f"ckpt_path={summary['checkpoint']}"],
                      tmp_path)
    with pytest.raises(InputError, match="other genes"):
        train(cfg)
    assert not any(tmp_path.iterdir())


def test_constant_gene_is_named(tmp_path):
    from gemdiff.data.dataset import DataOptions, prepare_data
    from gemdiff.data.io import GEM
    from gemdiff.common.errors import InputError

    rng = np.random.default_rng(0)
    values = rng.normal(5, 1, (20, 4))
    values[:, 2] = 3.0
    gem = GEM(values, [f"s{i}" for i in range(20)], ["A", "B", "FLAT", "D"],
              np.array(["n"] * 10 + ["t"] * 10), source="m.tsv")
    with pytest.raises(InputError, match="'FLAT'"):
        prepare_data(gem)
    assert prepare_data(gem, options=DataOptions(constant_genes="drop")).genes == ["A", "B", "D"]
