"""Carry samples of one phenotype to another and call the genes that move most (Algorithm 1).

    python -m gemdiff.perturb ckpt_path=... source=tumor target=normal split=test

Each source sample is DDIM-encoded with the source label to the latent at ``t_end`` and decoded
with the target label. Writes into the run folder: ``perturbed.tsv`` (the input's units, same
sample ids), ``gene_scores.tsv``, ``core_genes.txt``, ``metrics.json``, ``umap.png`` (real
target, real source and perturbed source; balanced and all samples) and ``trajectory.png``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from gemdiff.checkpoint import TrainedModel, load_checkpoint
from gemdiff.cli import config_dir, rounded, run_task
from gemdiff.errors import GemdiffError
from gemdiff.metrics import fit_svm, perturbation_metrics, umap_embed
from gemdiff.models.baselines import MAPS, mean_shift_map, ot_map
from gemdiff.models.gaussian import DiffusionOutput
from gemdiff.tracking import log_results
from gemdiff.outputs import check_fresh, write_json, write_matrix, write_table, write_text

log = logging.getLogger("gemdiff.perturb")
PRODUCTS = ("perturbed.tsv", "gene_scores.tsv", "core_genes.txt", "metrics.json")
SPLITS = ("test", "train", "all")


@dataclass
class Perturbation:
    """Source samples, their latents, and the results of decoding them (scaled units)."""

    x_source: np.ndarray  # (n, n_genes)
    x_moved: np.ndarray  # decoded with the target label
    x_cycle: np.ndarray | None  # decoded with the source label: should equal x_source
    encode: DiffusionOutput | None  # None for the baseline maps
    decode: DiffusionOutput | None


def perturb(model: TrainedModel, x: np.ndarray, source: int, target: int, steps: int = 250,
            t_end: int = 990, guidance: float = 1.0, record: int = 0,
            progress: bool = False, cycle: bool = True) -> Perturbation:
    """Algorithm 1: encode with the source label, decode with the target label (batched).

    ``cycle`` also decodes the latents with the source label (for ``cycle_error``); without it
    ``x_cycle`` is None.
    """
    d = model.diffusion
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    y_src = torch.full((len(xt),), source, dtype=torch.long)
    y_tgt = torch.full((len(xt),), target, dtype=torch.long)
    with torch.inference_mode():
        plain = model.eps_fn()
        enc = d.ddim_encode(plain, xt, y_src, steps, t_end, record, progress)
        dec = d.ddim_decode(model.eps_fn(guidance), enc.x, y_tgt, steps, t_end, record, progress)
        cyc = d.ddim_decode(plain, enc.x, y_src, steps, t_end, 0, progress) if cycle else None
    moved = model.preprocessor.snap_unexpressed(dec.x.numpy())
    return Perturbation(x, moved, cyc.x.numpy() if cycle else None, enc, dec)


def apply_map(name: str, x: np.ndarray, data, source: int, target: int) -> Perturbation:
    """A baseline perturbation map fitted on the real training split: ``mean_shift`` or ``ot``
    (see :mod:`gemdiff.models.baselines`)."""
    if name == "mean_shift":
        moved = mean_shift_map(x, data.x_train, data.y_train, source, target)
    elif name == "ot":
        moved = ot_map(x, data.x_train[data.y_train == target])
    else:
        raise GemdiffError(f"map={name!r} is not one of {', '.join(MAPS)}")
    return Perturbation(x, moved, None, None, None)


def gene_scores(model: TrainedModel, x_source: np.ndarray, x_moved: np.ndarray,
                k: float = 1.0) -> pd.DataFrame:
    """Per gene: perturbation score (mean |x - x'|, scaled units; ``score_log2`` the same in
    log2(n + 1) units, comparable between models of different genes), mean signed change in
    log2(n + 1) units, z-score of the score across genes, and the core flag (z > k)."""
    score = np.abs(x_moved - x_source).mean(axis=0)
    pre = model.preprocessor
    change = (pre.to_log2p1_scale(x_moved) - pre.to_log2p1_scale(x_source)).mean(axis=0)
    score_log2 = np.abs(pre.to_log2p1_scale(x_moved) - pre.to_log2p1_scale(x_source)).mean(axis=0)
    sd = score.std()
    z = (score - score.mean()) / sd if sd > 0 else np.zeros_like(score)
    df = pd.DataFrame({"gene": model.genes, "score": score, "score_log2": score_log2,
                       "mean_change_log2": change,
                       "direction": np.where(change >= 0, "up", "down"), "z": z,
                       "core": z > k})
    return df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def split_samples(data, split: str):
    """(x, y, ids) of a split (test, train or all), then (x, y) of the other split.

    The other split gives baselines between two real samples; for ``all`` it is the test split.
    """
    if split not in SPLITS:
        raise GemdiffError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    if split == "all":
        return (np.concatenate([data.x_train, data.x_test]),
                np.concatenate([data.y_train, data.y_test]),
                data.train_ids + data.test_ids, data.x_test, data.y_test)
    if split == "train":
        return data.x_train, data.y_train, data.train_ids, data.x_test, data.y_test
    return data.x_test, data.y_test, data.test_ids, data.x_train, data.y_train


def _rows(y: np.ndarray, cls: int) -> np.ndarray:
    return np.flatnonzero(y == cls)


def run(cfg: DictConfig) -> dict:
    """Perturb, score genes, compute metrics and write every file; returns the metrics."""
    if cfg.split not in SPLITS:
        raise GemdiffError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    how = cfg.get("map", "bridge")
    if how not in MAPS:
        raise GemdiffError(f"map={how!r} is not one of {', '.join(MAPS)}")
    check_fresh(cfg.paths.output_dir, PRODUCTS, cfg.get("overwrite", False))
    model = load_checkpoint(cfg.ckpt_path)
    src = model.class_index(cfg.source, cfg.ckpt_path)
    tgt = model.class_index(cfg.target, cfg.ckpt_path)
    if src == tgt:
        raise GemdiffError(f"source and target are both {cfg.source!r}")
    data = model.data()
    x, y, ids, x_o, y_o = split_samples(data, cfg.split)
    rows = _rows(y, src)
    if len(rows) == 0:
        raise GemdiffError(f"the {cfg.split} split has no {cfg.source!r} samples")
    if how == "bridge":
        if model.kind != "diffusion":
            raise GemdiffError(f"{cfg.ckpt_path}: map=bridge needs a diffusion model, this is a "
                               f"{model.kind} baseline; use map=mean_shift or map=ot")
        torch.manual_seed(cfg.seed)
        res = perturb(model, x[rows], src, tgt, cfg.ddim_steps, cfg.t_end, cfg.guidance,
                      record=cfg.trajectory_frames, progress=cfg.get("progress", True))
    else:
        res = apply_map(how, x[rows], data, src, tgt)

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_matrix(model.preprocessor.inverse_transform(res.x_moved), [ids[i] for i in rows],
                 model.genes, out / "perturbed.tsv")
    scores = gene_scores(model, res.x_source, res.x_moved, cfg.core_k)
    write_table(scores, out / "gene_scores.tsv")
    write_text("".join(f"{g}\n" for g in scores.loc[scores.core, "gene"]), out / "core_genes.txt")

    # Real target samples: of the same split (what the perturbed samples should resemble) and
    # of the other split (the baseline between two real samples of the target class).
    x_t_eval = x[_rows(y, tgt)]
    x_t_ref = x_o[_rows(y_o, tgt)]
    svm = fit_svm(data.x_train, data.y_train)
    metrics = perturbation_metrics(res.x_source, res.x_moved, res.x_cycle, x_t_eval, x_t_ref,
                                   svm, tgt).to_dict()
    metrics.update(source=cfg.source, target=cfg.target, split=cfg.split, map=how,
                   ddim_steps=cfg.ddim_steps, t_end=cfg.t_end, guidance=cfg.guidance,
                   n_core_genes=int(scores.core.sum()), core_k=cfg.core_k)
    write_json(metrics, out / "metrics.json")
    _plots(cfg, model, res, x_t_eval, out)
    log_results(cfg, out, metrics, [out / "umap.png", out / "trajectory.png"],
                {"gene_scores": scores})
    log.info("metrics: %s", rounded(metrics))
    return metrics


def _plots(cfg, model: TrainedModel, res: Perturbation, x_target: np.ndarray, out: Path) -> None:
    from sklearn.decomposition import PCA

    from gemdiff import plots

    # Trajectory: intermediate states of encode and decode on the first two principal axes of
    # the real samples (a fixed projection, so the panels are comparable). Bridge only.
    if res.encode is not None and res.encode.trajectory:
        pca = PCA(n_components=2, random_state=0).fit(np.concatenate([res.x_source, x_target]))
        ref = pca.transform(x_target)
        frames = [(f"encode t={lv}", pca.transform(s.numpy()), ref)
                  for lv, s in zip(res.encode.levels, res.encode.trajectory, strict=True)]
        frames += [(f"decode t={lv}", pca.transform(s.numpy()), ref)
                   for lv, s in zip(res.decode.levels, res.decode.trajectory, strict=True)][1:]
        plots.trajectory_panel(frames, out / "trajectory.png")
    if cfg.umap:
        plot_perturbation_umap(res.x_source, res.x_moved, x_target, cfg.source, cfg.target,
                               out / "umap.png", cfg.seed)


def plot_perturbation_umap(x_source: np.ndarray, x_moved: np.ndarray, x_target: np.ndarray,
                           source: str, target: str, path: Path, seed: int = 0) -> Path:
    """UMAPs of real target, real source and perturbed source: class-balanced and all samples."""
    from gemdiff import plots

    rng = np.random.default_rng(seed)
    n = min(len(x_source), len(x_target))
    panels = []
    for title, balanced in (("balanced", True), ("all samples", False)):
        if balanced:
            s_idx = rng.choice(len(x_source), n, replace=False)
            t_idx = rng.choice(len(x_target), n, replace=False)
        else:
            s_idx, t_idx = np.arange(len(x_source)), np.arange(len(x_target))
        pts = np.concatenate([x_target[t_idx], x_source[s_idx], x_moved[s_idx]])
        groups = np.array([f"target: {target}"] * len(t_idx) + [f"source: {source}"]
                          * len(s_idx) + [f"perturbed source: {source} -> {target}"]
                          * len(s_idx))
        panels.append((title, umap_embed(pts, seed=seed), groups))
    return plots.umap_perturbation(panels, path)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="perturb")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    # Run the module's own copy, not __main__'s, so that launchers pickle it by reference.
    from gemdiff.perturb import main as entry

    entry()
