"""Hydra multirun support: one summary table per sweep, and jobs that a re-run skips.

Every app's Hydra config registers :class:`SweepSummary`, so ``python -m gemdiff.train -m ...``
(with any launcher) ends by writing ``summary.tsv`` into the sweep folder: a row per job with
its overrides and its final figures. Run again with the same ``hydra.sweep.dir``, a sweep skips
the jobs that finished and resumes those stopped during training (see :func:`in_multirun`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from gemdiff.common.errors import InputError
from gemdiff.common.resultsets import trusted_result
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("gemdiff.sweep")
SUMMARY = "summary.tsv"
# Figures a job leaves, by file (relative to its folder) and the prefix of their columns.
RESULT_FILES = {"summary.json": "", "perturb/metrics.json": "perturb.", "metrics.json": ""}


def in_multirun() -> bool:
    """Whether the running Hydra job is one job of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Scalars of a nested dict as ``a.b`` keys (lists and long strings left out)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out |= _flat(v, f"{prefix}{k}.")
    elif isinstance(data, (int, float, bool)) or (isinstance(data, str) and len(data) < 200):
        out[prefix[:-1]] = data
    return out


def job_rows(sweep_dir: str | Path):
    """A row per job folder of a sweep (one holding ``.hydra/overrides.yaml``): its overrides,
    whether it finished, and the figures of its result files (a pandas table)."""
    import pandas as pd

    rows = []
    for overrides_file in sorted(Path(sweep_dir).rglob(".hydra/overrides.yaml")):
        job = overrides_file.parent.parent
        row: dict[str, Any] = {"job": str(job.relative_to(sweep_dir))}
        for item in OmegaConf.load(overrides_file):
            key, _, value = str(item).partition("=")
            row[key.lstrip("+~")] = value
        found = False
        for name, prefix in RESULT_FILES.items():
            path = job / name
            if path.is_file():
                try:  # figures of an incomplete result set (a killed job) are not shown
                    row |= _flat(json.loads(trusted_result(path, verify=False).read_text()),
                                 prefix)
                    found = True
                except (InputError, ValueError):
                    continue
        row["finished"] = found
        rows.append(row)
    return pd.DataFrame(rows)


class SweepSummary(Callback):
    """Writes ``summary.tsv`` into the sweep folder when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table = job_rows(sweep_dir)
        if table.empty:
            return
        from gemdiff.common.files import write_table

        write_table(table, sweep_dir / SUMMARY)
        log.info("%d of %d jobs finished; summary: %s", int(table.finished.sum()), len(table),
                 sweep_dir / SUMMARY)


def search_path_override(*run_folders: str | Path) -> list[str]:
    """``hydra.searchpath=[...]`` carrying the config folders the user added (``--config-dir``,
    ``hydra.searchpath``) to the running job and to the runs in ``run_folders`` (as their
    ``.hydra/hydra.yaml`` records them), for a command that launches other gemdiff processes:
    their own configs (``data=<mine>``) resolve there too. Empty when none were added."""
    from hydra.core.hydra_config import HydraConfig

    sources = []
    if HydraConfig.initialized():
        sources += list(HydraConfig.get().runtime.config_sources)
    for folder in run_folders:
        recorded = Path(folder) / ".hydra" / "hydra.yaml"
        if recorded.is_file():
            found = OmegaConf.select(OmegaConf.load(recorded), "hydra.runtime.config_sources")
            sources += list(found or [])
    paths = []
    for src in sources:
        if src.get("schema") == "file" and src.get("provider") not in ("main", "hydra", "schema") \
                and src.get("path") and f"file://{src['path']}" not in paths:
            paths.append(f"file://{src['path']}")
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []
