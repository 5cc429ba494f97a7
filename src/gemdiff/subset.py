"""One job of the core-gene sweep: train on a screened gene subset, then perturb it.

    python -m gemdiff.subset screen=<screen run> subset=MODULE_1_0 source=tumor target=normal
    python -m gemdiff.subset -m screen=<screen run> subset=MODULE_1_0,MODULE_1_1 seed=0,1

The model is trained on the subset's genes (``data.gmt=<screen>/subsets.gmt``,
``data.gene_set=<subset>``) as ``gemdiff.train`` trains, and the source samples are carried to
the target as ``gemdiff.perturb`` carries them, into ``perturb/`` of the job folder; ``job.json``
records what was run. A job whose folder already holds its results is skipped and one stopped
during training resumes from its checkpoint, so a sweep run again does only what is missing.
``python -m gemdiff.core`` selects the subsets, launches the sweep and aggregates it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import run_task

log = logging.getLogger("gemdiff.subset")


def perturb_config(cfg: DictConfig, ckpt: str, out: Path) -> DictConfig:
    """The ``gemdiff.perturb`` config of this job: its defaults with the map ``perturb.map``,
    then the rest of ``cfg.perturb``."""
    conf = Path(config_dir())
    base = OmegaConf.load(conf / "perturb.yaml")
    base.pop("defaults")
    base.map = OmegaConf.load(conf / "map" / f"{cfg.perturb.get('map', 'bridge')}.yaml")
    given = {k: v for k, v in cfg.perturb.items() if k != "map"}
    return OmegaConf.merge(base, given, {
        "ckpt_path": ckpt, "source": cfg.source, "target": cfg.target, "seed": cfg.seed,
        "overwrite": True, "tags": list(cfg.tags), "paths": {"output_dir": str(out)}})


def run(cfg: DictConfig) -> dict:
    from gemdiff.common.files import write_json
    from gemdiff.common.resultsets import complete_set
    from gemdiff.runtime.commands import perturb_run, train_run
    from gemdiff.tools.core_genes import JOB_FILE

    out = Path(cfg.paths.output_dir)
    job = {"subset": cfg.subset, "seed": int(cfg.seed),
           "permuted": bool(cfg.data.get("permute_labels", False)),
           "source": cfg.source, "target": cfg.target, "screen": str(cfg.screen)}
    if (out / JOB_FILE).is_file() and complete_set(out / "perturb") and not cfg.overwrite:
        log.info("%s: already done, skipped", out)
        return job
    ckpt = out / "checkpoints/last.ckpt"
    train_run(cfg, pick_up=True)  # skipped when finished, resumed when stopped
    metrics = perturb_run(perturb_config(cfg, str(ckpt), out / "perturb"))
    job |= {"checkpoint": str(ckpt), "frac_to_target": metrics.get("frac_to_target"),
            "n_core_genes": metrics.get("n_core_genes")}
    write_json(job, out / JOB_FILE)
    return job


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="subset")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.subset import main as entry

    entry()
