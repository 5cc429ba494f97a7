"""The Hydra config tree of the package: where it is, and composing it outside a Hydra run."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    """Absolute path of the Hydra configs: packaged with the wheel, or ``conf/`` of a checkout."""
    here = Path(__file__).resolve().parents[1]  # the package folder
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"gemdiff configs not found next to {here}")


def compose_config(overrides: list[str], output_dir: str | Path, config_name: str = "train"):
    """Compose the real config outside a Hydra run (the Python API, tests, experiment
    drivers); ``paths.output_dir`` is set to ``output_dir``, since no Hydra run folder exists.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg
