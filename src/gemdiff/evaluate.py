"""Score synthetic or perturbed expression from any generator against real data.

    python -m gemdiff.evaluate ckpt_path=... synthetic=synth.tsv synthetic_labels=synth_labels.tsv
    python -m gemdiff.evaluate data=breast synthetic=... synthetic_labels=...
    python -m gemdiff.evaluate ckpt_path=... perturbed=perturbed.tsv source=tumor target=normal

The real data comes from a checkpoint (exactly the genes, split and scaling its model saw) or
from a dataset config (``data=...``, split and scaling fit as ``gemdiff.train`` would). The files
to score are in the real data's units, with genes matched by name (extra genes are ignored).
Writes ``metrics.json`` with the keys of ``gemdiff.sample`` (for ``synthetic``) and of
``gemdiff.perturb`` (for ``perturbed``; no ``cycle_error``, which needs the model), and the
same UMAP plots.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gemdiff.common.config import config_dir
from gemdiff.runtime.cli import rounded, run_task

log = logging.getLogger("gemdiff.evaluate")


def real_data(cfg: DictConfig):
    """The real data to compare with, from ``ckpt_path`` or the ``data`` config."""
    from gemdiff.common.errors import GemdiffError

    if cfg.ckpt_path and cfg.get("data"):
        raise GemdiffError("give ckpt_path or data=..., not both")
    if cfg.ckpt_path:
        from gemdiff.training.checkpoint import load_checkpoint

        return load_checkpoint(cfg.ckpt_path).data()
    if cfg.get("data"):
        return hydra.utils.instantiate(cfg.data).prepare()
    raise GemdiffError("no real data: give ckpt_path=... or data=... (e.g. data=breast)")


def _scaled(gem, data):
    """The real data's genes of a matrix read from a file, scaled as the real data."""
    from gemdiff.common.errors import InputError

    present = set(gem.genes)
    missing = [g for g in data.genes if g not in present]
    if missing:
        raise InputError(gem.source, f"lacks {len(missing)} of the real data's {data.n_genes} "
                                     f"genes, e.g. {missing[0]!r}")
    # synthetic files are in the units the model writes (counts: normalised already)
    return data.preprocessor.transform(gem.take_genes(data.genes).values, gem.source)


def evaluate_synthetic(cfg: DictConfig, data):
    """The synthetic file scored as ``gemdiff.sample`` scores its samples (an AnnData result)."""
    import numpy as np

    from gemdiff.common.errors import GemdiffError, InputError
    from gemdiff.data.io import read_gemdiff
    from gemdiff.common.resultsets import trusted_result
    from gemdiff.tools.results import synthetic_result

    if not cfg.synthetic_labels:
        raise GemdiffError("synthetic=... needs synthetic_labels=... (sample<TAB>class)")
    gem = read_gemdiff(trusted_result(cfg.synthetic), trusted_result(cfg.synthetic_labels))
    unknown = sorted(set(gem.labels.tolist()) - set(data.classes))
    if unknown:
        raise InputError(cfg.synthetic_labels, f"has class {unknown[0]!r}, not a class of the "
                                               f"real data ({', '.join(data.classes)})")
    y_syn = np.array([data.classes.index(c) for c in gem.labels], dtype=np.int64)
    return synthetic_result(data, _scaled(gem, data), y_syn, cfg.seed, umap=cfg.umap,
                            bounded=False, device=cfg.get("device", "auto"))


def evaluate_perturbed(cfg: DictConfig, data):
    """The perturbed file scored as ``gemdiff.perturb`` scores its samples."""
    import numpy as np

    from gemdiff.common.errors import InputError
    from gemdiff.data.io import read_samples
    from gemdiff.models.generators import Perturbation
    from gemdiff.common.resultsets import trusted_result
    from gemdiff.tools.perturbation import split_samples
    from gemdiff.tools.results import perturbation_result

    gem = read_samples(trusted_result(cfg.perturbed))
    x_moved = _scaled(gem, data)
    x, y, real_ids, x_other, y_other = split_samples(data, cfg.split)
    row = {s: i for i, s in enumerate(real_ids)}
    absent = [s for s in gem.samples if s not in row]
    if absent:
        raise InputError(cfg.perturbed, f"sample {absent[0]!r} is not a real sample of the "
                                        f"{cfg.split} split (perturbed samples keep their ids)")
    rows = np.array([row[s] for s in gem.samples])
    src, tgt = _source_target(cfg, data, sorted({data.classes[i] for i in y[rows]}))
    wrong = [s for s, i in zip(gem.samples, rows, strict=True) if y[i] != src]
    if wrong:
        raise InputError(cfg.perturbed, f"sample {wrong[0]!r} is not a "
                                        f"{data.classes[src]!r} sample")
    res = Perturbation(x[rows], x_moved)
    return perturbation_result(data, res, gem.samples, src, tgt, x[y == tgt],
                               x_other[y_other == tgt], seed=cfg.seed, umap=cfg.umap,
                               bounded=False, device=cfg.get("device", "auto"))


def _source_target(cfg: DictConfig, data, found: list[str]) -> tuple[int, int]:
    """Class indices of the perturbed samples' source (default: their class) and target
    (default: the other class of two)."""
    from gemdiff.common.errors import GemdiffError

    source = cfg.source or (found[0] if len(found) == 1 else None)
    if source is None:
        raise GemdiffError(f"{cfg.perturbed} holds samples of {', '.join(found)}; set source=")
    target = cfg.target
    if target is None:
        others = [c for c in data.classes if c != source]
        if len(others) != 1:
            raise GemdiffError(f"set target= to one of {', '.join(others)}")
        target = others[0]
    for name in (source, target):
        if name not in data.classes:
            raise GemdiffError(f"class {name!r} is not one of {', '.join(data.classes)}")
    if source == target:
        raise GemdiffError(f"source and target are both {source!r}")
    return data.classes.index(source), data.classes.index(target)


def run(cfg: DictConfig) -> dict:
    """Compute the metrics of every given file, write ``metrics.json``; returns the metrics."""
    from gemdiff.common.errors import GemdiffError
    from gemdiff.common.files import write_json
    from gemdiff.common.resultsets import ResultSet
    from gemdiff.data.io import check_file

    if not cfg.synthetic and not cfg.perturbed:
        raise GemdiffError("nothing to score: give synthetic=... (with synthetic_labels=...) "
                           "and/or perturbed=...")
    for name in ("synthetic", "synthetic_labels", "perturbed"):
        if cfg.get(name):
            check_file(cfg[name])  # a mistyped path fails before the real data is prepared
    out = Path(cfg.paths.output_dir)
    published = ResultSet(out, ["metrics.json"], cfg.get("overwrite", False), "gemdiff evaluate")
    data = real_data(cfg)
    results = {}  # every input is read and scored before anything is written
    if cfg.synthetic:
        results["augmentation"] = evaluate_synthetic(cfg, data)
    if cfg.perturbed:
        results["perturbation"] = evaluate_perturbed(cfg, data)
    parts = {key: dict(adata.uns["metrics"]) for key, adata in results.items()}
    for key, metrics in parts.items():
        log.info("%s metrics: %s", key, rounded(metrics))
    if "perturbation" in parts:
        parts["perturbation"].update(source=results["perturbation"].obs.original_label.iloc[0],
                                     target=results["perturbation"].obs.label.iloc[0],
                                     split=cfg.split)
    metrics = parts if len(parts) > 1 else next(iter(parts.values()))
    from gemdiff.tools.results import plot_perturbation, plot_synthetic

    with published.writing():
        write_json(metrics, out / "metrics.json")
        if cfg.umap and "augmentation" in results:
            m = parts["augmentation"]
            plot_synthetic(results["augmentation"], out / "umap_real_vs_synthetic.png",
                           f"real test vs synthetic (MMD ratio {m['mmd_ratio']:.2f})")
        if cfg.umap and "perturbation" in results:
            plot_perturbation(results["perturbation"], out / "umap.png", cfg.seed)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.evaluate import main as entry

    entry()
