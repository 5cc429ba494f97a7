"""DistributedDataParallel on CPU (gloo, two processes), run as `python -m gemdiff.train`.

Lightning's ``ddp`` relaunches the command for every rank, so these tests start the app in a
child process (called in-process it would relaunch pytest). The process-group timeout is short
so that a hung rank fails the test instead of blocking it.
"""

from __future__ import annotations

import pytest

import os
import subprocess
import sys

import pandas as pd
import torch

from gemdiff.training.checkpoint import load_checkpoint

COMMON = ["trainer.accelerator=cpu", "trainer.max_steps=40", "trainer.val_check_interval=20",
          "callbacks.checkpoint.every_n_train_steps=20", "logger=none",
          "trainer.enable_progress_bar=false", "model.denoiser.d_model=32",
          "model.denoiser.depth=1", "data.n_genes=8", "calibrate.rows=0", "sample_plot=false"]
ENV = os.environ | {"GEMDIFF_DDP_TIMEOUT_S": "60", "WANDB_MODE": "disabled"}


def train(*args, cwd, multirun=False):
    flags = ["-m"] if multirun else []
    proc = subprocess.run([sys.executable, "-m", "gemdiff.train", *flags, *COMMON, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_two_cpu_ranks_train_a_checkpoint_like_the_single_process_one(tmp_path):
    log = train("trainer=ddp", "trainer.devices=2", f"hydra.run.dir={tmp_path / 'ddp'}",
                cwd=tmp_path)
    assert "EMA weights identical on 2 ranks" in log
    train(f"hydra.run.dir={tmp_path / 'single'}", cwd=tmp_path)
    ddp = load_checkpoint(tmp_path / "ddp/checkpoints/last.ckpt")
    single = load_checkpoint(tmp_path / "single/checkpoints/last.ckpt")
    assert ddp.genes == single.genes and ddp.classes == single.classes
    assert ddp.meta["train_ids"] == single.meta["train_ids"]
    a, b = ddp.generator.denoiser.state_dict(), single.generator.denoiser.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert all(torch.isfinite(v).all() for v in a.values())
    assert sorted(p.name for p in (tmp_path / "ddp/checkpoints").iterdir()) == ["last.ckpt"]
    raw = torch.load(tmp_path / "ddp/checkpoints/last.ckpt", weights_only=True)
    assert raw["global_step"] == 40


@pytest.mark.slow  # 20 s; the plain DDP test above runs by default
def test_ddp_inside_a_sweep_spawns_its_ranks(tmp_path):
    log = train("trainer=ddp", "trainer.devices=2", "seed=0,1",
                f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, multirun=True)
    assert log.count("ranks are spawned") == 2  # and not the whole sweep once per rank
    table = pd.read_csv(tmp_path / "sweep/summary.tsv", sep="\t")
    assert len(table) == 2 and table.finished.all() and (table.global_step == 40).all()


@pytest.mark.slow  # 15-25 s; the shards themselves are tested by default (test_scale.py)
def test_two_cpu_ranks_stream_their_own_shares_of_a_sparse_file(tmp_path):
    import json

    from tests.test_scale import counts_adata

    counts_adata(15_000, 200, density=0.1).write_h5ad(tmp_path / "cells.h5ad")
    log = train("trainer=ddp", "trainer.devices=2", "data=h5ad",
                f"data.source.path={tmp_path / 'cells.h5ad'}", "data.source.label_key=state",
                "data.n_genes=16", f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert "EMA weights identical on 2 ranks" in log
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["data"]["input_scale"] == "counts" and "streamed" in summary["data"]
    assert sum(summary["data"]["train"].values()) > 10_000
