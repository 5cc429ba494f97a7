"""W&B offline runs: what the training sweep and the perturbation log, read back from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config


def records(run_dir: Path) -> list[dict]:
    """The records of an offline W&B run, through ``wandb leet inspect --json``."""
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    wandb = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(wandb), "leet", "inspect", "--json", str(log)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def merged(recs: list[dict], kind: str) -> dict:
    """All updates of one record type (``config`` also takes the run record's config)."""
    out: dict = {}
    for r in recs:
        if r["type"] == kind or (kind == "config" and r["type"] == "run"):
            part = r[r["type"]].get(kind, r[r["type"]]) if r["type"] == "run" else r[kind]
            out |= part.get("update", part.get("item", {}))
    return out


@pytest.mark.slow  # 15-20 s: a two-job sweep in a child process
def test_sweep_runs_share_a_group_and_log_config_and_final_metrics(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "gemdiff.train", "-m", "logger=wandb", "trainer.accelerator=cpu",
         "trainer.max_steps=60", "trainer.val_check_interval=30", "model.denoiser.d_model=32",
         "model.denoiser.depth=1", "trainer.enable_progress_bar=false", "data.n_genes=8,16",
         f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=300,
        env=os.environ | {"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = set()
    for job, n_genes in (("0", 8), ("1", 16)):
        recs = records(sweep / job)
        (run,) = [r["run"] for r in recs if r["type"] == "run"]
        groups.add(run["run_group"])
        assert f"genes={n_genes}" in run["tags"] and "fraction=1.0" in run["tags"]
        config = merged(recs, "config")
        assert config["data"]["n_genes"] == n_genes and "model" in config
        summary = merged(recs, "summary")
        assert "val/loss" in summary and "train/loss" in summary
        assert "loss_curve.path" in summary
    assert groups == {"train/sweep"}


def test_perturbation_logs_metrics_figures_and_gene_table(trained_synthetic, tmp_path,
                                                          monkeypatch):
    from gemdiff.perturb import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    _, summary = trained_synthetic
    out = tmp_path / "perturb"
    metrics = run(make_config([f"ckpt_path={summary['checkpoint']}", "ddim_steps=20",
                               "wandb=true", "umap=false", "progress=false"], out,
                              config_name="perturb"))
    recs = records(out)
    logged = merged(recs, "summary")
    assert logged["frac_to_target"] == metrics["frac_to_target"]
    assert "gene_scores._type" in logged and "trajectory._type" in logged
    assert merged(recs, "config")["source"] == "tumor"


def test_tensorboard_and_csv_loggers_are_one_override_away(tmp_path):
    from importlib.util import find_spec

    from gemdiff.train import run as train

    tensorboard = any(find_spec(m) for m in ("tensorboard", "tensorboardX"))
    for logger, pattern in (("csv", "csv/metrics.csv"), ("tensorboard", "tensorboard/events.*")):
        if logger == "tensorboard" and not tensorboard:
            continue  # TensorBoard itself is not a dependency
        out = tmp_path / logger
        train(make_config([f"logger={logger}", "trainer.accelerator=cpu", "trainer.max_steps=20",
                           "trainer.val_check_interval=10", "trainer.log_every_n_steps=5",
                           "model.denoiser.d_model=32", "model.denoiser.depth=1",
                           "trainer.enable_progress_bar=false"], out))
        assert list(out.glob(pattern)), logger


def test_training_into_a_file_writes_no_progress_bars(tmp_path):
    """Logs written to a file (stderr not a terminal) get no bar redraws."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-m", "gemdiff.train", "debug=fast", "logger=none",
         "sample_plot=false", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "it/s" not in said and "\r" not in said, said


def test_wandb_logger_leaves_out_the_setting_wandb_warns_about():
    """Lightning's logger hands wandb.init ``anonymous=None``, which wandb answers with a
    warning that the setting has no effect; ours leaves the key out."""
    from lightning.pytorch.loggers import WandbLogger as Lightning

    from gemdiff.training.loggers import WandbLogger

    assert "anonymous" in Lightning(mode="disabled")._wandb_init  # what the class corrects
    ours = WandbLogger(mode="disabled", project="gemdiff")
    assert "anonymous" not in ours._wandb_init and ours._wandb_init["project"] == "gemdiff"


def test_progress_bars_show_where_they_redraw_in_place(monkeypatch):
    import io

    from gemdiff.common.progress import interactive, progress_bar

    assert not interactive()  # pytest captures stderr: like a log file
    assert isinstance(progress_bar(range(3), True, "x"), range)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert interactive() and not isinstance(progress_bar(range(3), True, "x"), range)
    assert isinstance(progress_bar(range(3), False, "x"), range)
