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
import numpy as np
from omegaconf import DictConfig

from gemdiff.cli import config_dir, rounded, run_task
from gemdiff.data.dataset import PreparedData
from gemdiff.data.io import read_gemdiff, read_matrix
from gemdiff.errors import GemdiffError, InputError
from gemdiff.metrics import augmentation_metrics, fit_svm, perturbation_metrics
from gemdiff.outputs import check_fresh, write_json
from gemdiff.perturb import plot_perturbation_umap, split_samples
from gemdiff.sample import plot_real_vs_synthetic

log = logging.getLogger("gemdiff.evaluate")


def real_data(cfg: DictConfig) -> PreparedData:
    """The real data to compare with, from ``ckpt_path`` or the ``data`` config."""
    if cfg.ckpt_path and cfg.get("data"):
        raise GemdiffError("give ckpt_path or data=..., not both")
    if cfg.ckpt_path:
        from gemdiff.checkpoint import load_checkpoint

        return load_checkpoint(cfg.ckpt_path).data()
    if cfg.get("data"):
        return hydra.utils.instantiate(cfg.data).prepare()
    raise GemdiffError("no real data: give ckpt_path=... or data=... (e.g. data=breast)")


def _scaled(values: np.ndarray, genes: list[str], data: PreparedData, path) -> np.ndarray:
    """Columns of ``values`` in the real data's gene order, scaled as the real data."""
    index = {g: i for i, g in enumerate(genes)}
    missing = [g for g in data.genes if g not in index]
    if missing:
        raise InputError(path, f"lacks {len(missing)} of the real data's {data.n_genes} genes, "
                               f"e.g. {missing[0]!r}")
    return data.preprocessor.transform(values[:, [index[g] for g in data.genes]], str(path))


def evaluate_synthetic(cfg: DictConfig, data: PreparedData, out: Path):
    """Augmentation metrics of the synthetic file, and a function drawing its UMAP."""
    if not cfg.synthetic_labels:
        raise GemdiffError("synthetic=... needs synthetic_labels=... (sample<TAB>class)")
    gem = read_gemdiff(cfg.synthetic, cfg.synthetic_labels)
    unknown = sorted(set(gem.labels.tolist()) - set(data.classes))
    if unknown:
        raise InputError(cfg.synthetic_labels, f"has class {unknown[0]!r}, not a class of the "
                                               f"real data ({', '.join(data.classes)})")
    x_syn = _scaled(gem.values, gem.genes, data, cfg.synthetic)
    y_syn = np.array([data.classes.index(c) for c in gem.labels], dtype=np.int64)
    metrics = augmentation_metrics(data.x_train, data.y_train, data.x_test, data.y_test, x_syn,
                                   y_syn, seed=cfg.seed, with_umap=cfg.umap).to_dict()
    metrics["n_synthetic"] = len(y_syn)
    title = f"real test vs synthetic (MMD ratio {metrics['mmd_ratio']:.2f})"
    return metrics, lambda: plot_real_vs_synthetic(
        data.x_test, data.y_test, x_syn, y_syn, data.classes, out / "umap_real_vs_synthetic.png",
        title, cfg.seed)


def evaluate_perturbed(cfg: DictConfig, data: PreparedData, out: Path):
    """Perturbation metrics of the perturbed file, and a function drawing its UMAPs."""
    ids, genes, values = read_matrix(cfg.perturbed)
    x_moved = _scaled(values, genes, data, cfg.perturbed)
    x, y, real_ids, x_other, y_other = split_samples(data, cfg.split)
    row = {s: i for i, s in enumerate(real_ids)}
    absent = [s for s in ids if s not in row]
    if absent:
        raise InputError(cfg.perturbed, f"sample {absent[0]!r} is not a real sample of the "
                                        f"{cfg.split} split (perturbed samples keep their ids)")
    rows = np.array([row[s] for s in ids])
    found = sorted({data.classes[i] for i in y[rows]})
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
    src, tgt = data.classes.index(source), data.classes.index(target)
    wrong = [s for s, i in zip(ids, rows, strict=True) if y[i] != src]
    if wrong:
        raise InputError(cfg.perturbed, f"sample {wrong[0]!r} is not a {source!r} sample")
    x_target, x_ref = x[y == tgt], x_other[y_other == tgt]
    svm = fit_svm(data.x_train, data.y_train)
    metrics = perturbation_metrics(x[rows], x_moved, None, x_target, x_ref, svm, tgt).to_dict()
    metrics.update(source=source, target=target, split=cfg.split)
    return metrics, lambda: plot_perturbation_umap(x[rows], x_moved, x_target, source, target,
                                                   out / "umap.png", cfg.seed)


def run(cfg: DictConfig) -> dict:
    """Compute the metrics of every given file, write ``metrics.json``; returns the metrics."""
    if not cfg.synthetic and not cfg.perturbed:
        raise GemdiffError("nothing to score: give synthetic=... (with synthetic_labels=...) "
                           "and/or perturbed=...")
    check_fresh(cfg.paths.output_dir, ["metrics.json"], cfg.get("overwrite", False))
    data = real_data(cfg)
    out = Path(cfg.paths.output_dir)
    parts, plots = {}, []
    # Every input is read and scored before anything is written.
    for key, given, score in (("augmentation", cfg.synthetic, evaluate_synthetic),
                              ("perturbation", cfg.perturbed, evaluate_perturbed)):
        if given:
            parts[key], plot = score(cfg, data, out)
            plots.append(plot)
            log.info("%s metrics: %s", key, rounded(parts[key]))
    out.mkdir(parents=True, exist_ok=True)
    metrics = parts if len(parts) > 1 else next(iter(parts.values()))
    write_json(metrics, out / "metrics.json")
    if cfg.umap:
        for plot in plots:
            plot()
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.evaluate import main as entry

    entry()
