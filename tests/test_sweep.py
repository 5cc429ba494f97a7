"""Hydra multirun sweeps of the training app: summary table, launchers, skip and resume."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from gemdiff.runtime.sweep import SUMMARY, _flat, job_rows

SWEEP = ["debug=fast", "trainer.accelerator=cpu", "trainer.max_steps=30",
         "callbacks.checkpoint.every_n_train_steps=10", "logger=none", "data.n_genes=8,16"]


def multirun(sweep_dir, *extra):
    proc = subprocess.run([sys.executable, "-m", "gemdiff.train", "-m", *SWEEP,
                           f"hydra.sweep.dir={sweep_dir}", *extra], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_flatten_keeps_scalars():
    assert _flat({"a": 1, "b": {"c": 2.5, "d": [1, 2]}, "e": "x"}) == {"a": 1, "b.c": 2.5,
                                                                      "e": "x"}


@pytest.mark.parametrize("launcher", ["basic", pytest.param("joblib", marks=pytest.mark.slow)])
def test_sweep_writes_one_summary_and_a_rerun_skips_finished_jobs(tmp_path, launcher):
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1"] \
        if launcher == "joblib" else []
    multirun(tmp_path, *extra)
    table = pd.read_csv(tmp_path / SUMMARY, sep="\t")
    assert sorted(table["data.n_genes"]) == [8, 16]
    assert table.finished.all() and (table.global_step == 30).all()
    if launcher == "joblib":
        return  # skipping and resuming happen inside each job, the same under both launchers
    ckpt = tmp_path / "0/checkpoints/last.ckpt"
    stamp = ckpt.stat().st_mtime_ns
    # Job 1 stopped after a checkpoint (no summary yet); job 0 finished.
    (tmp_path / "1/summary.json").unlink()
    log = multirun(tmp_path, *extra)
    assert "holds a finished run: skipped" in log and "resuming the stopped job" in log
    assert ckpt.stat().st_mtime_ns == stamp  # the finished job was not run again
    assert (tmp_path / "1/summary.json").is_file()
    assert len(job_rows(tmp_path)) == 2


def test_slurm_launcher_config_follows_the_trainer():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="hydra-submitit-launcher (the slurm extra) is not installed")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gemdiff.common.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp",
                                          "trainer.devices=4", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.tasks_per_node == 4 and launcher.nodes == 1
    assert launcher.timeout_min == 240 and launcher.mem_gb == 32
