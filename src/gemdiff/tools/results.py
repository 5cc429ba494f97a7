"""Results as AnnData: synthetic or perturbed expression with its metrics and embeddings.

One builder per kind of result, shared by the Python API, ``gemdiff.sample``,
``gemdiff.perturb`` and ``gemdiff.evaluate``:

- ``X``: the samples in the input's units; ``obs``: sample ids (the index) and ``label``;
- ``layers["original"]`` (perturbed): the samples before they were moved;
- ``var``: per gene, the perturbation scores (perturbed);
- ``uns["metrics"]``: the metrics against the real data; ``uns["gemdiff"]``: provenance;
- ``obsm["X_umap"]``: a 2-D UMAP of the samples embedded together with the real samples they
  are compared with (those are in ``uns["umap_reference"]``), so ``scanpy.pl.umap`` draws it;
  for perturbed samples ``obsm["X_umap_original"]`` places the samples before they moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gemdiff.data.dataset import PreparedData
from gemdiff.data.preprocess import CLIPPED_WARN, PLAUSIBLE_MARGIN
from gemdiff.evaluation.embedding import UmapParams, embed_2d
from gemdiff.evaluation.metrics import (METRIC_ROWS, augmentation_metrics, bounded_rows, fit_svm,
                                         per_class_metrics, perturbation_metrics)
from gemdiff.models.generators import Perturbation
from gemdiff.tools.gene_scores import core_versus_de, differential_expression, gene_scores


def _anndata(values: np.ndarray, ids: Sequence[str], labels: Sequence[str],
             data: PreparedData):
    import anndata

    obs = pd.DataFrame({"label": pd.Categorical(list(labels), categories=data.classes)},
                       index=pd.Index(list(ids), dtype=str))
    var = pd.DataFrame(index=pd.Index(list(data.genes), dtype=str))
    return anndata.AnnData(X=np.asarray(values, dtype=np.float64), obs=obs, var=var)


def bounded_train(data: PreparedData, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The training samples a classifier of the real data is fitted on: a seeded draw of at
    most ``METRIC_ROWS``, classes in proportion."""
    rows = bounded_rows(len(data.y_train), METRIC_ROWS, data.y_train, seed)
    return data.x_train[rows], data.y_train[rows]


SD_RATIO_OK = (0.67, 1.5)  # synthetic over real per-gene SD outside this range is warned about


def result_warnings(data: PreparedData, metrics: dict) -> list[str]:
    """What makes a result's figures mean less than they seem: classes too small, values held
    at the plausible bound, a degenerate null, lost gene-gene structure, a classifier that does
    not recognise real target samples."""
    out = list(data.summary().get("warnings", []))
    clipped = metrics.get("clipped_share")
    if clipped is not None and clipped > CLIPPED_WARN:
        out.append(f"{clipped:.1%} of the values lay beyond the genes' training ranges widened "
                   f"by {PLAUSIBLE_MARGIN:g} log2 unit(s) and were held there: the generator "
                   "is off the data's scale (train longer, or check the input's units)")
    if metrics.get("null_note"):
        out.append(metrics["null_note"])
    slope, real = metrics.get("corr_slope"), metrics.get("corr_slope_real")
    if slope is not None and real is not None and real > 0.2 and slope < real / 2:
        out.append(f"synthetic samples keep little of the real gene-gene correlation "
                   f"(corr_slope {slope:.2f} against {real:.2f} for real test samples): do "
                   "not read co-expression from them")
    widths = [("", metrics.get("sd_ratio"))] + [
        (f" of class {c!r}", m.get("sd_ratio")) for c, m in metrics.get("per_class", {}).items()]
    lo, hi = SD_RATIO_OK
    for where, ratio in widths:
        if ratio is not None and np.isfinite(ratio) and not lo <= ratio <= hi:
            out.append(f"synthetic samples{where} spread {ratio:.2f}x as wide as the real ones "
                       f"(sd_ratio; {'too narrow' if ratio < 1 else 'too wide'}): their "
                       "variability, and figures built on it, are not the data's")
    if metrics.get("frac_to_target_informative") is False:
        out.append(f"frac_to_target is uninformative: the classifier calls only "
                   f"{metrics['frac_to_target_real']:.0%} of the real target samples target")
    return out


def synthetic_result(data: PreparedData, x_syn: np.ndarray, y_syn: np.ndarray, seed: int = 0,
                     metrics: bool = True, umap: bool = True,
                     provenance: dict[str, Any] | None = None, bounded: bool = True,
                     device=None):
    """Synthetic samples (scaled units, classes ``y_syn``) as AnnData in input units, with the
    augmentation metrics against the real test split (MMDs on ``device``) and a joint UMAP
    with it.

    With ``bounded`` (a generator's own samples) values beyond each gene's plausible range
    (:meth:`~gemdiff.data.preprocess.Preprocessor.plausible_range`) are held at it; either way
    ``clipped_share`` in the metrics says how many lay beyond it."""
    x_held, clipped = data.preprocessor.clip_plausible(x_syn, data.x_train)
    if bounded:
        x_syn = x_held
    names = [data.classes[i] for i in y_syn]
    ids = [f"synthetic_{c}_{i + 1}" for i, c in enumerate(names)]
    adata = _anndata(data.preprocessor.inverse_transform(x_syn), ids, names, data)
    adata.uns["gemdiff"] = dict(provenance or {})
    if metrics:
        adata.uns["metrics"] = augmentation_metrics(
            data.x_train, data.y_train, data.x_test, data.y_test, x_syn, y_syn, seed=seed,
            with_umap=umap, device=device).to_dict() | {"n_synthetic": int(len(y_syn)),
                                         "clipped_share": clipped}
        if len(data.classes) > 2:
            adata.uns["metrics"]["per_class"] = per_class_metrics(
                data.x_train, data.y_train, data.x_test, data.y_test, x_syn, y_syn,
                data.classes, seed, device)
        adata.uns["metrics"]["warnings"] = result_warnings(data, adata.uns["metrics"])
    if umap:
        emb, axis = embed_2d(np.concatenate([data.x_test, x_syn]), UmapParams(seed=seed))
        adata.obsm["X_umap"] = emb[len(data.x_test):]
        adata.uns["umap_reference"] = {
            "X_umap": emb[:len(data.x_test)],
            "label": np.array([data.classes[i] for i in data.y_test], dtype=object),
            "ids": np.array(data.test_ids, dtype=object), "axis": axis}
    return adata


def perturbation_result(data: PreparedData, res: Perturbation, ids: Sequence[str], source: int,
                        target: int, x_target: np.ndarray, x_target_ref: np.ndarray,
                        core_k: float = 1.0, seed: int = 0, metrics: bool = True,
                        umap: bool = True, provenance: dict[str, Any] | None = None,
                        bounded: bool = True, device=None,
                        target_ids: Sequence[str] | None = None):
    """Samples of class ``source`` carried to ``target`` as AnnData in input units: the moved
    values in ``X``, the originals in ``layers["original"]``, the gene scores in ``var``; with
    the perturbation metrics against real target samples of the same split (``x_target``) and
    of the other one (``x_target_ref``; MMDs on ``device``), and a joint UMAP with
    ``x_target`` (whose sample ids, ``target_ids``, are kept with its embedding)."""
    pre = data.preprocessor
    moved, clipped = pre.clip_plausible(res.x_moved, data.x_train)
    if bounded:
        res.x_moved = moved
    adata = _anndata(pre.inverse_transform(res.x_moved), ids,
                     [data.classes[target]] * len(ids), data)
    adata.obs["original_label"] = pd.Categorical([data.classes[source]] * len(ids),
                                                 categories=data.classes)
    adata.layers["original"] = pre.inverse_transform(res.x_source)
    scores = gene_scores(pre, data.genes, res.x_source, res.x_moved, core_k)
    if len(x_target) >= 2 and len(res.x_source) >= 2:
        de = differential_expression(pre, data.genes, res.x_source, x_target)
        scores = scores.merge(de, on="gene", how="left", sort=False)
    var = scores.set_index("gene").loc[list(data.genes)]
    var["direction"] = pd.Categorical(var["direction"], categories=["down", "up"])
    var.index = var.index.astype(str)
    adata.var = var
    adata.uns["gemdiff"] = dict(provenance or {}) | {"core_k": core_k}
    adata.uns["core_genes"] = np.array(scores.gene[scores.core].tolist(), dtype=object)
    if metrics:
        svm = fit_svm(*bounded_train(data, seed))
        adata.uns["metrics"] = perturbation_metrics(
            res.x_source, res.x_moved, res.x_cycle, x_target, x_target_ref, svm,
            target, res.cycle_index, device, seed=seed).to_dict() | {
                "n_core_genes": int(scores.core.sum()), "clipped_share": clipped}
        if "de_q" in scores:
            adata.uns["metrics"] |= core_versus_de(scores)
        adata.uns["metrics"]["warnings"] = result_warnings(data, adata.uns["metrics"])
    if umap:
        emb, axis = embed_2d(np.concatenate([x_target, res.x_source, res.x_moved]),
                             UmapParams(seed=seed))
        n_t, n = len(x_target), len(res.x_source)
        adata.obsm["X_umap"] = emb[n_t + n:]
        adata.obsm["X_umap_original"] = emb[n_t:n_t + n]
        adata.uns["umap_reference"] = {"X_umap": emb[:n_t], "label": np.array(
            [data.classes[target]] * n_t, dtype=object), "axis": axis}
        if target_ids is not None:
            adata.uns["umap_reference"]["ids"] = np.array(list(target_ids), dtype=object)
    if res.encode is not None and res.encode.trajectory:
        adata.uns["trajectory"] = trajectory_frames(res, x_target)
    adata.uns["gene_shifts"] = gene_shift_values(data, scores, res, x_target)
    return adata


def gene_shift_values(data: PreparedData, scores: pd.DataFrame, res: Perturbation,
                      x_target: np.ndarray, top: int = 8) -> dict[str, Any]:
    """For the top genes by score (core genes first): their values in the source samples,
    the same perturbed and the real target samples, in log2(n + 1) units (``genes.png``)."""
    best = scores.sort_values(["core", "score"], ascending=False, kind="stable").head(top)
    cols = [list(data.genes).index(g) for g in best.gene]
    pre = data.preprocessor
    return {"genes": np.array(best.gene.tolist(), dtype=object),
            "source": pre.to_log2p1_scale(res.x_source)[:, cols],
            "moved": pre.to_log2p1_scale(res.x_moved)[:, cols],
            "target": pre.to_log2p1_scale(x_target)[:, cols]}


def trajectory_frames(res: Perturbation, x_target: np.ndarray) -> dict[str, np.ndarray]:
    """The bridge's recorded states on the first two principal axes of the real samples (a
    fixed projection, so the frames compare): titles, (frames, n, 2) points and the target
    samples' (m, 2) reference."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(np.concatenate([res.x_source, x_target]))
    step = lambda lv: f"t={lv}" if lv >= 0 else "data"  # noqa: E731 - level -1: clean samples
    frames = [(f"encode {step(lv)}", s) for lv, s in zip(res.encode.levels,
                                                         res.encode.trajectory, strict=True)]
    frames += [(f"decode {step(lv)}", s) for lv, s in zip(res.decode.levels,
                                                          res.decode.trajectory, strict=True)][1:]
    return {"titles": np.array([t for t, _ in frames], dtype=object),
            "points": np.stack([pca.transform(s.numpy()) for _, s in frames]),
            "reference": pca.transform(x_target)}


def plot_synthetic(adata, path: str | Path, title: str = "") -> Path:
    """The joint UMAP of a synthetic result: real test and synthetic samples by class."""
    from gemdiff.evaluation import plots

    ref = adata.uns["umap_reference"]
    emb = np.concatenate([ref["X_umap"], adata.obsm["X_umap"]])
    names = list(ref["label"]) + adata.obs["label"].astype(str).tolist()
    is_syn = np.r_[np.zeros(len(ref["label"]), bool), np.ones(adata.n_obs, bool)]
    return plots.umap_real_vs_synthetic(emb, names, is_syn, path, title,
                                        genes=list(adata.var_names), axis=_axis(ref))


def plot_perturbation(adata, path: str | Path, seed: int = 0) -> Path:
    """The joint UMAP of a perturbation result: real target, source and perturbed source, as
    a class-balanced draw and with all samples."""
    from gemdiff.evaluation import plots

    ref = adata.uns["umap_reference"]["X_umap"]
    src, tgt = adata.obs["original_label"].iloc[0], adata.obs["label"].iloc[0]
    rng = np.random.default_rng(seed)
    n = min(adata.n_obs, len(ref))
    panels = []
    for title, s_idx, t_idx in (
            ("balanced", rng.choice(adata.n_obs, n, replace=False),
             rng.choice(len(ref), n, replace=False)),
            ("all samples", np.arange(adata.n_obs), np.arange(len(ref)))):
        pts = np.concatenate([ref[t_idx], adata.obsm["X_umap_original"][s_idx],
                              adata.obsm["X_umap"][s_idx]])
        groups = np.array([f"target: {tgt}"] * len(t_idx) + [f"source: {src}"] * len(s_idx)
                          + [f"perturbed source: {src} -> {tgt}"] * len(s_idx))
        panels.append((title, pts, groups))
    return plots.umap_perturbation(panels, path, genes=list(adata.var_names),
                                   axis=_axis(adata.uns["umap_reference"]))


def _axis(reference) -> str:
    """The embedding's axis name (results written before it was kept: UMAP)."""
    return str(reference.get("axis", "UMAP"))


def plot_trajectory(adata, path: str | Path) -> Path:
    """Small multiples of the bridge's recorded states (``uns["trajectory"]``)."""
    from gemdiff.evaluation import plots

    t = adata.uns["trajectory"]
    frames = [(title, pts, t["reference"]) for title, pts in zip(t["titles"], t["points"],
                                                                 strict=True)]
    return plots.trajectory_panel(frames, path, source=str(adata.obs["original_label"].iloc[0]),
                                  target=str(adata.obs["label"].iloc[0]))


def plot_samples(data: PreparedData, x_syn: np.ndarray, y_syn: np.ndarray,
                 path: str | Path, title: str = "") -> Path:
    """Synthetic samples against the real test samples on the real samples' first two
    principal components (cheap: no UMAP), coloured by class and origin."""
    from sklearn.decomposition import PCA

    from gemdiff.evaluation import plots

    pca = PCA(n_components=2, random_state=0).fit(data.x_test)
    emb = np.concatenate([pca.transform(data.x_test), pca.transform(x_syn)])
    names = [data.classes[i] for i in data.y_test] + [data.classes[i] for i in y_syn]
    is_syn = np.r_[np.zeros(len(data.y_test), bool), np.ones(len(y_syn), bool)]
    return plots.umap_real_vs_synthetic(emb, names, is_syn, path, title, genes=data.genes,
                                        axis="PC")


def plot_gene_shifts(adata, path: str | Path) -> Path:
    """The top core genes of a perturbation result: source, perturbed and real target values
    side by side (``uns["gene_shifts"]``)."""
    from gemdiff.evaluation import plots

    g = adata.uns["gene_shifts"]
    return plots.gene_shifts(list(g["genes"]), g["source"], g["moved"], g["target"], path,
                             str(adata.obs["original_label"].iloc[0]),
                             str(adata.obs["label"].iloc[0]))
