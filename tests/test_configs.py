"""Every experiment config composes and trains a few steps; the default config runs as a command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gemdiff.common.config import config_dir
from gemdiff.train import run as train
from tests.conftest import TINY, make_config

EXPERIMENTS = sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_a_few_steps(name, tmp_path, data_dir):
    cfg = make_config([f"experiment={name}", *TINY], tmp_path)
    summary = train(cfg)
    assert summary["global_step"] == 20
    meta = torch.load(summary["checkpoint"], weights_only=True)["gemdiff"]
    assert len(meta["genes"]) == 16 and meta["classes"] == ["normal", "tumor"]


def test_breast_16_uses_the_given_split(tmp_path, data_dir):
    cfg = make_config(["experiment=breast_16", *TINY, "trainer.max_steps=2"], tmp_path)
    summary = train(cfg)
    assert summary["data"]["train"] == {"normal": 125, "tumor": 663}
    assert summary["data"]["test"] == {"normal": 74, "tumor": 319}


@pytest.mark.parametrize("overrides", [
    ["diffusion=cosine"], ["model.denoiser.tokenization=single"],
    ["model.denoiser.tokenization=patch", "model.denoiser.patch_size=5"],
    ["model.denoiser.tokenization=patch", "model.denoiser.token_weights=own"],
    ["model.denoiser.conditional=false"], ["data.scaling=per_gene", "data.train_fraction=0.5"],
    ["logger=csv"],
])
def test_options_train(overrides, tmp_path):
    summary = train(make_config([*TINY, *overrides], tmp_path))
    assert summary["global_step"] == 20 and Path(summary["checkpoint"]).is_file()


def test_the_default_recipe_standardises_genes_and_the_paper_preset_does_not(tmp_path):
    quick = [*TINY, "trainer.max_steps=2", "calibrate.rows=0"]
    sections = {}
    for name, extra in (("default", []), ("paper", ["preset=paper"])):
        summary = train(make_config([*quick, *extra], tmp_path / name))
        sections[name] = torch.load(summary["checkpoint"], weights_only=True)["gemdiff"]
    default, paper = (sections[k]["diffusion"] for k in ("default", "paper"))
    n_genes = len(sections["default"]["genes"])
    assert default["prediction"] == "v" and default["standardize"] is True
    assert default["data_mean"].shape == default["data_sd"].shape == (n_genes,)
    assert paper["prediction"] == "eps" and paper["standardize"] is False
    assert "data_mean" not in paper


def test_default_command_writes_checkpoint(tmp_path):
    """`python -m gemdiff.train` with the default config (shortened), W&B offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run([sys.executable, "-m", "gemdiff.train", "trainer.max_steps=30",
                           "trainer.val_check_interval=15", "hydra.run.dir=run"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "loss_curve.png").is_file()
    assert any((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_help_lists_config_groups(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gemdiff.train", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for group in ("data:", "model:", "diffusion:", "experiment:", "breast_16"):
        assert group in proc.stdout


def test_gemdiff_command_dispatches(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "gemdiff", *a], cwd=tmp_path,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    top = run("--help")
    assert top.returncode == 0 and "train" in top.stdout and "download" in top.stdout
    assert run("train", "--help").returncode == 0
    assert "gemdiff_example" in run("download", "--list").stdout
    bad = run("bogus")
    assert bad.returncode == 2 and "unknown subcommand" in bad.stderr


@pytest.mark.parametrize("app", ["train", "sample", "perturb", "evaluate", "screen", "subset",
                                 "core", "enrich"])
def test_every_app_has_its_own_help(app):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gemdiff.__main__ import SUBCOMMANDS

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(app, return_hydra_config=True)
    assert cfg.hydra.help.app_name == f"gemdiff.{app}"
    assert cfg.hydra.help.header.startswith(f"gemdiff.{app}:")
    assert app in SUBCOMMANDS


def test_bad_model_value_is_one_clear_error(tmp_path, capfd):
    from hydra.core.global_hydra import GlobalHydra

    from gemdiff.__main__ import main

    runs = tmp_path / "runs"
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "model.lr_decay=linear", "logger=none", f"paths.log_dir={runs}",
              "hydra/job_logging=disabled"])
    err = capfd.readouterr().err
    assert exit_.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gemdiff train: error:"), err
    assert "lr_decay" in lines[0] and "Error in call to target" not in err
    assert not runs.exists() or not any(p.is_file() for p in runs.rglob("*"))


def test_every_app_takes_threads_and_the_cap_reaches_torch_and_blas():
    import subprocess
    import sys

    from gemdiff.common.config import compose_config

    for app in ("train", "sample", "perturb", "evaluate", "screen", "core", "enrich"):
        assert "threads" in compose_config([], "/tmp/x", app), app
    code = ("from gemdiff.runtime.cli import limit_threads; limit_threads(1); import torch; "
            "from threadpoolctl import threadpool_info; import numpy; "
            "print(torch.get_num_threads(), max(p['num_threads'] for p in threadpool_info()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["1", "1"], out.stderr


def test_openmp_threads_sleep_while_idle_unless_the_environment_says_otherwise(monkeypatch):
    import os

    from gemdiff.runtime.cli import passive_wait

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
