"""Fixtures: the real data folder, real configs shrunk for tests, a briefly trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings
from omegaconf import DictConfig, open_dict

from gemdiff.common.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
settings.register_profile("default", max_examples=60)
settings.register_profile("deep", max_examples=2000)
settings.load_profile("default")


def shared_data_dir() -> Path | None:
    """The real public data: $GEMDIFF_DATA_DIR, else ../shared/data beside the checkout."""
    env = os.environ.get("GEMDIFF_DATA_DIR")
    for candidate in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data"]:
        if (candidate / "README.md").is_file():
            return candidate.resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data not found: set GEMDIFF_DATA_DIR or place it at ../shared/data")
    return path


def make_config(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """Compose the real config with overrides, writing into ``output_dir``; no Hydra run dir."""
    cfg = compose_config(overrides, output_dir, config_name)
    data = shared_data_dir()
    if data is not None:
        with open_dict(cfg):
            cfg.paths.data_dir = str(data)
    return cfg


TINY = ["debug=fast", "trainer.accelerator=cpu"]


@pytest.fixture(scope="session")
def trained_synthetic(tmp_path_factory):
    """A small model trained briefly on the built-in synthetic data (shared by several tests)."""
    from gemdiff.train import run as train

    out = tmp_path_factory.mktemp("trained")
    cfg = make_config(TINY + ["trainer.max_steps=800", "trainer.val_check_interval=400",
                              "callbacks.checkpoint.every_n_train_steps=400",
                              "model.denoiser.d_model=64", "model.denoiser.depth=2",
                              "model.denoiser.n_heads=4", "data.source.n_genes=16",
                              "data.source.n_drivers=4", "data.source.n_samples=400"], out)
    summary = train(cfg)
    return out, summary
