"""Metrics for generated and perturbed expression against real data (vectorised, no Python loops
over sample pairs). Inputs are arrays on the model's scaled [-1, 1] scale unless stated.

torch (for the pairwise distances of the MMDs) is imported where it is used, so that the gene
set screen's workers, which need only :func:`silhouette`, start without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import SVC

from gemdiff.evaluation.embedding import UmapParams, umap_2d


def _t(a, device=None):
    import torch

    from gemdiff.common.devices import resolve_device

    where = "cpu" if device is None else resolve_device(device)
    return torch.as_tensor(np.asarray(a), dtype=torch.float64, device=where)


def _sq_dists(a, b):
    """Pairwise squared Euclidean distances, (n, m) torch tensors."""
    import torch

    return torch.cdist(a, b).pow(2)


def mmd_rbf(x: np.ndarray, y: np.ndarray, gamma: float | None = None, device=None) -> float:
    """Squared MMD with a Gaussian kernel k(a, b) = exp(-gamma ||a - b||^2), biased estimator.

    ``gamma`` defaults to 1 / n_genes (the paper's choice on scaled data). The biased
    (V-statistic) estimate mean k(x, x') + mean k(y, y') - 2 mean k(x, y) is >= 0. The
    pairwise distances are taken in float64 on ``device`` (None: the CPU; see
    :func:`gemdiff.common.devices.resolve_device`).
    """
    xt, yt = _t(x, device), _t(y, device)
    gamma = 1.0 / xt.shape[1] if gamma is None else gamma
    kxx = (-gamma * _sq_dists(xt, xt)).exp().mean()
    kyy = (-gamma * _sq_dists(yt, yt)).exp().mean()
    kxy = (-gamma * _sq_dists(xt, yt)).exp().mean()
    return float(kxx + kyy - 2 * kxy)


def mmd_multiscale(
    x: np.ndarray, y: np.ndarray, scales: tuple[float, ...] = (0.5, 1.0, 2.0), device=None
) -> float:
    """Squared MMD averaged over Gaussian kernels whose bandwidths are ``scales`` times the
    median pairwise distance of the pooled samples (the median heuristic), on ``device`` as
    :func:`mmd_rbf`."""
    import torch

    xt, yt = _t(x, device), _t(y, device)
    pooled = torch.cat([xt, yt])
    d2 = _sq_dists(pooled, pooled)
    median = d2[torch.triu_indices(len(pooled), len(pooled), 1).unbind()].median().sqrt()
    n = len(xt)
    total = 0.0
    for s in scales:
        k = (-d2 / (2 * (s * median) ** 2)).exp()
        total += float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())
    return total / len(scales)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean of per-class recalls: 1 / n_classes for a classifier that calls every sample
    the majority class, however unbalanced the classes are."""
    return float(balanced_accuracy_score(y_true, y_pred))


def fit_svm(x: np.ndarray, y: np.ndarray) -> SVC:
    """The paper's classifier: an RBF support vector machine on scaled expression."""
    return SVC(kernel="rbf").fit(x, y)


# Every metric reads at most this many samples of each set it compares (a seeded draw, in
# proportion to the classes): a sample from a model of 10^5 cells is scored in seconds
# (benchmarks/README.md), and on bulk data (hundreds of samples) nothing changes.
METRIC_ROWS = 1000
# The classifier two-sample test reads data of more genes on the real samples' top principal
# components: its trees on thousands of genes took minutes (benchmarks/README.md).
C2ST_DIMS = 50


def bounded_rows(n: int, limit: int | None, labels: np.ndarray | None = None,
                 seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded draw of at most ``limit`` of ``n`` rows (all where None
    or n <= limit), each class of ``labels`` kept in proportion (at least one row each)."""
    if limit is None or n <= limit:
        return np.arange(n)
    rng = np.random.default_rng([seed, n])
    if labels is None:
        return np.sort(rng.choice(n, size=limit, replace=False))
    labels = np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(limit * len(rows) / n)))
        keep.append(rng.choice(rows, size=min(k, len(rows)), replace=False))
    return np.sort(np.concatenate(keep))


def c2st_auc(real: np.ndarray, other: np.ndarray, seed: int = 0,
             dims: int | None = C2ST_DIMS) -> float:
    """Classifier two-sample test: cross-validated ROC AUC of telling ``other`` from ``real``.

    0.5 means indistinguishable; 1.0 means perfectly separable. Gradient-boosted trees, 5 folds.
    Data of more than ``dims`` genes are compared on the top ``dims`` principal components of
    ``real`` (None: on every gene).
    A leaf holds at least 20 samples, fewer where a fold trains on fewer than 200 (one tenth
    of them, at least 2): with the fixed 20 a 40-sample comparison could not split at all and
    scored the class priors whatever the data. The trees grow on one OpenMP thread: on data of
    this size more threads gain little on a quiet machine, and where another job shares the
    cores their spin-waiting made one test take 50 times longer (``benchmarks/README.md``).
    """
    from threadpoolctl import threadpool_limits

    if dims is not None and real.shape[1] > dims and len(real) > dims:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=dims, random_state=seed).fit(real)
        real, other = pca.transform(real), pca.transform(other)
    x = np.concatenate([real, other])
    y = np.r_[np.zeros(len(real)), np.ones(len(other))]
    min_leaf = int(np.clip(len(x) * 4 // 5 // 10, 2, 20))
    clf = HistGradientBoostingClassifier(max_iter=100, min_samples_leaf=min_leaf,
                                         random_state=seed)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    with threadpool_limits(1, user_api="openmp"):
        p = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def dcr_ratio(synthetic: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Distance to closest record: median distance from each synthetic sample to its nearest
    training sample, over the same for real test samples. Near or above 1: no memorisation;
    well below 1: the generator copies training samples."""
    nn = NearestNeighbors(n_neighbors=1).fit(train)
    d_syn = nn.kneighbors(synthetic)[0][:, 0]
    d_test = nn.kneighbors(test)[0][:, 0]
    return float(np.median(d_syn) / np.median(d_test))


def corr_slope(synthetic: np.ndarray, y_syn: np.ndarray, real: np.ndarray,
               y_real: np.ndarray, max_genes: int = 2000, seed: int = 0) -> float:
    """How much of each class's gene-gene correlation the synthetic samples keep: the
    least-squares slope of the synthetic samples' within-class correlations (each pair of genes
    once) on the real samples', averaged over the classes both hold at least 3 samples of.
    1: kept; 0: the genes are sampled independently. Read it against new real samples of the
    same classes (``corr_slope_real`` of :func:`augmentation_metrics`): with few training
    samples their correlations are noisy estimates, which new real samples do not repeat, so a
    generator of the true distribution reads below 1 and one that copies the training
    correlations reads 1. Pairs with a constant gene
    are left out; NaN where no pair is left. Above ``max_genes`` genes a seeded random subset
    of that many is used (about 2 million pairs; a whole transcriptome's 20,000 genes would
    need gigabytes per correlation matrix)."""
    if synthetic.shape[1] > max_genes:
        keep = np.sort(np.random.default_rng(seed).choice(synthetic.shape[1], max_genes,
                                                          replace=False))
        synthetic, real = synthetic[:, keep], real[:, keep]
    slopes = []
    for c in np.intersect1d(np.unique(y_syn), np.unique(y_real)):
        a, b = real[y_real == c], synthetic[y_syn == c]
        if len(a) < 3 or len(b) < 3 or a.shape[1] < 2:
            continue
        iu = np.triu_indices(a.shape[1], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ra, rb = np.corrcoef(a.T)[iu], np.corrcoef(b.T)[iu]
        ok = np.isfinite(ra) & np.isfinite(rb)
        if ok.sum() < 2 or np.ptp(ra[ok]) == 0:
            continue
        slopes.append(float(np.polyfit(ra[ok], rb[ok], 1)[0]))
    return float(np.mean(slopes)) if slopes else float("nan")


def sd_ratio(synthetic: np.ndarray, y_syn: np.ndarray, real: np.ndarray,
             y_real: np.ndarray) -> float:
    """How wide the synthetic samples are: the median over the classes both hold at least 2
    samples of and over the genes of the synthetic samples' SD over the real samples' (genes
    constant in the real class left out). 1: as wide; below 1: too narrow."""
    ratios = []
    for c in np.intersect1d(np.unique(y_syn), np.unique(y_real)):
        a, b = real[y_real == c], synthetic[y_syn == c]
        if len(a) < 2 or len(b) < 2:
            continue
        sd = a.std(axis=0, ddof=1)
        ratios.append(b.std(axis=0, ddof=1)[sd > 0] / sd[sd > 0])
    return float(np.median(np.concatenate(ratios))) if ratios else float("nan")


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette score by class (Euclidean), of samples or of an embedding; NaN where it is
    undefined (one class, or all points the same)."""
    if len(np.unique(labels)) < 2 or len(np.unique(x, axis=0)) < 2:
        return float("nan")
    return float(silhouette_score(x, labels))


def random_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of range(n), for null references."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: n // 2], perm[n // 2:]


@dataclass
class AugmentationMetrics:
    """Synthetic versus real samples (``metrics.json`` of ``gemdiff.sample``)."""

    mmd: float
    mmd_baseline: float
    mmd_ratio: float
    mmd_null: float
    mmd_multiscale: float
    svm_acc_test: float
    svm_acc_synthetic: float
    tstr_acc: float
    svm_bacc_test: float  # balanced accuracy (the mean of per-class recalls) of each
    svm_bacc_synthetic: float
    tstr_bacc: float
    c2st_auc: float
    c2st_auc_null: float  # NaN where the null is degenerate (null_note says why)
    dcr_ratio: float
    corr_slope: float
    corr_slope_real: float
    sd_ratio: float
    silhouette: float
    silhouette_real: float
    silhouette_umap: float | None = None
    null_note: str | None = None
    # the samples each comparison read: {"train": n, "test": n, "synthetic": n, "limit": rows}
    metric_rows: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


MIN_NULL_HALF = 10  # samples in each half of real test below which a null is not computed


def c2st_null(x_test: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0
              ) -> tuple[float, str | None]:
    """C2ST AUC between two random halves of real test, the value an indistinguishable
    generator scores, or NaN with the reason where it cannot mean that: halves of fewer than
    ``MIN_NULL_HALF`` samples, or an AUC far from 0.5 (cross-validation on too few samples
    scores the folds' class balance, not the data)."""
    if min(len(a), len(b)) < MIN_NULL_HALF:
        return float("nan"), (f"no null: the real test split has {len(x_test)} samples, halves "
                              f"of fewer than {MIN_NULL_HALF} are too few")
    auc = c2st_auc(x_test[a], x_test[b], seed)
    if abs(auc - 0.5) > 0.25:
        return float("nan"), (f"degenerate null: two halves of real test scored AUC {auc:.2f}, "
                              "far from 0.5 (too few samples)")
    return auc, None


def augmentation_metrics(x_train, y_train, x_test, y_test, x_syn, y_syn, seed: int = 0,
                         with_umap: bool = False, device=None,
                         max_rows: int | None = METRIC_ROWS) -> AugmentationMetrics:
    """All augmentation metrics of `gemdiff.sample` and `gemdiff.evaluate`.

    ``mmd``: synthetic vs real test; ``mmd_baseline``: real train vs real test; ``mmd_null``:
    two random halves of real test. ``svm_acc_*``: an SVM fit on real train, scored on real
    test and on the synthetic samples; ``tstr_acc``: fit on synthetic, scored on real test.
    ``c2st_auc``: real test vs synthetic (null: two halves of real test). ``corr_slope``: the
    share of real train's within-class gene-gene correlations the synthetic samples keep (the
    test split is too small to estimate correlations on in many datasets); ``corr_slope_real``:
    the same for real test, what new real samples keep. ``sd_ratio``: the median over classes
    and genes of the synthetic samples' SD over real train's (:func:`sd_ratio`). The MMDs run
    on ``device`` (:func:`mmd_rbf`). Each set is read through a seeded draw of at most
    ``max_rows`` samples (:func:`bounded_rows`; None: all), recorded in ``metric_rows``.
    """
    x_train, y_train = _bounded(x_train, y_train, max_rows, seed)
    x_test, y_test = _bounded(x_test, y_test, max_rows, seed)
    x_syn, y_syn = _bounded(x_syn, y_syn, max_rows, seed)
    rows = {"train": len(x_train), "test": len(x_test), "synthetic": len(x_syn),
            "limit": max_rows}
    mmd = mmd_rbf(x_syn, x_test, device=device)
    base = mmd_rbf(x_train, x_test, device=device)
    a, b = random_halves(len(x_test), seed)
    svm = fit_svm(x_train, y_train)
    on_test, on_syn = svm.predict(x_test), svm.predict(x_syn)  # each set once
    tstr = tstr_b = float("nan")
    if len(np.unique(y_syn)) > 1:
        pred = fit_svm(x_syn, y_syn).predict(x_test)
        tstr, tstr_b = float(np.mean(pred == y_test)), balanced_accuracy(y_test, pred)
    null, note = c2st_null(x_test, a, b, seed)
    sil_umap = None
    if with_umap:
        sil_umap = silhouette(umap_2d(x_syn, UmapParams(seed=seed)), y_syn)
    return AugmentationMetrics(
        mmd=mmd, mmd_baseline=base, mmd_ratio=mmd / base if base > 0 else float("inf"),
        mmd_null=mmd_rbf(x_test[a], x_test[b], device=device),
        mmd_multiscale=mmd_multiscale(x_syn, x_test, device=device),
        svm_acc_test=float(np.mean(on_test == y_test)),
        svm_acc_synthetic=float(np.mean(on_syn == y_syn)),
        tstr_acc=float(tstr),
        svm_bacc_test=balanced_accuracy(y_test, on_test),
        svm_bacc_synthetic=balanced_accuracy(y_syn, on_syn),
        tstr_bacc=tstr_b,
        c2st_auc=c2st_auc(x_test, x_syn, seed),
        c2st_auc_null=null,
        dcr_ratio=dcr_ratio(x_syn, x_train, x_test),
        corr_slope=corr_slope(x_syn, y_syn, x_train, y_train),
        corr_slope_real=corr_slope(x_test, y_test, x_train, y_train),
        sd_ratio=sd_ratio(x_syn, y_syn, x_train, y_train),
        silhouette=silhouette(x_syn, y_syn),
        silhouette_real=silhouette(x_test, y_test),
        silhouette_umap=sil_umap,
        null_note=note,
        metric_rows=rows,
    )


def _bounded(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int):
    rows = bounded_rows(len(x), limit, y, seed)
    return x[rows], y[rows]


def per_class_metrics(x_train, y_train, x_test, y_test, x_syn, y_syn, classes, seed: int = 0,
                      device=None, max_rows: int | None = METRIC_ROWS
                      ) -> dict[str, dict[str, float]]:
    """The augmentation metrics that compare one class's synthetic samples with its real ones,
    per class (by name): where a model has more than two classes a pooled figure can hide one
    class drawn badly. ``mmd_ratio``: MMD to the class's real test samples over real train's;
    ``c2st_auc``, ``sd_ratio``, ``corr_slope`` as pooled, within the class; ``svm_recall``:
    the share of its synthetic samples the real-data classifier calls that class. NaN where a
    class has fewer than 2 real test or synthetic samples. Sets are read as in
    :func:`augmentation_metrics` (at most ``max_rows`` samples each)."""
    x_train, y_train = _bounded(x_train, y_train, max_rows, seed)
    x_test, y_test = _bounded(x_test, y_test, max_rows, seed)
    x_syn, y_syn = _bounded(x_syn, y_syn, max_rows, seed)
    svm = fit_svm(x_train, y_train)
    out = {}
    for k, name in enumerate(classes):
        tr, te, sy = x_train[y_train == k], x_test[y_test == k], x_syn[y_syn == k]
        row = dict.fromkeys(("mmd_ratio", "c2st_auc", "sd_ratio", "corr_slope", "svm_recall"),
                            float("nan"))
        if min(len(te), len(sy), len(tr)) >= 2:
            base = mmd_rbf(tr, te, device=device)
            ys, yr = np.full(len(sy), k), np.full(len(tr), k)
            row.update(
                mmd_ratio=mmd_rbf(sy, te, device=device) / base if base > 0 else float("inf"),
                c2st_auc=c2st_auc(te, sy, seed), sd_ratio=sd_ratio(sy, ys, tr, yr),
                corr_slope=corr_slope(sy, ys, tr, yr),
                svm_recall=float(np.mean(svm.predict(sy) == k)))
        out[str(name)] = row
    return out


@dataclass
class PerturbationMetrics:
    """Source samples carried to the target class (``metrics.json`` of ``gemdiff.perturb``)."""

    n_samples: int
    frac_to_target: float
    frac_to_target_before: float
    frac_to_target_real: float  # the same SVM on real target samples: what a perfect bridge gets
    frac_to_target_informative: bool  # the SVM calls at least half of the real target samples so
    mmd_to_target: float
    mmd_target_baseline: float
    mmd_to_target_ratio: float
    mmd_source_to_target: float
    cycle_error: float | None  # None where no cycle was run (e.g. scoring another tool's output)
    transport_cost: float
    ot_cost: float
    metric_rows: dict | None = None  # the samples each comparison read (see max_rows)

    def to_dict(self) -> dict:
        return asdict(self)


def ot_cost(source: np.ndarray, target: np.ndarray) -> float:
    """Exact optimal-transport cost (squared Euclidean, uniform weights) between two samples."""
    import ot

    cost = ot.dist(np.asarray(source, np.float64), np.asarray(target, np.float64))
    return float(ot.emd2(np.full(len(source), 1 / len(source)),
                         np.full(len(target), 1 / len(target)), cost, numItermax=1_000_000))


def perturbation_metrics(x_src, x_moved, x_cycle, x_target_eval, x_target_ref, svm: SVC,
                         target_index: int, cycle_index=None, device=None,
                         max_rows: int | None = METRIC_ROWS, seed: int = 0
                         ) -> PerturbationMetrics:
    """Metrics of a perturbation.

    Parameters
    ----------
    x_src, x_moved, x_cycle
        Source samples, the same carried to the target, and encoded-then-decoded with their
        own label (the cycle; None to skip ``cycle_error``), of the rows ``cycle_index`` of
        ``x_src`` (all where None).
    x_target_eval, x_target_ref
        Real target-class samples of the same split as the source (compared with the moved
        samples) and of the other split (for the baseline MMD between real target samples).
    svm
        A classifier fit on real training data.
    device
        Where the MMDs run (:func:`mmd_rbf`).
    max_rows
        Each set is read through a seeded draw of at most this many samples (the moved
        samples and their sources the same rows; the cycle error on all it was run on).
    """
    n_samples, x_all = len(x_src), x_src
    rows = bounded_rows(n_samples, max_rows, seed=seed)
    x_src, x_moved = x_src[rows], x_moved[rows]
    x_target_eval = x_target_eval[bounded_rows(len(x_target_eval), max_rows, seed=seed)]
    x_target_ref = x_target_ref[bounded_rows(len(x_target_ref), max_rows, seed=seed)]
    mmd_t = mmd_rbf(x_moved, x_target_eval, device=device)
    base = mmd_rbf(x_target_ref, x_target_eval, device=device)
    real = float(np.mean(svm.predict(x_target_eval) == target_index))
    return PerturbationMetrics(
        n_samples=n_samples,
        frac_to_target=float(np.mean(svm.predict(x_moved) == target_index)),
        frac_to_target_before=float(np.mean(svm.predict(x_src) == target_index)),
        frac_to_target_real=real,
        frac_to_target_informative=bool(real >= 0.5),
        mmd_to_target=mmd_t,
        mmd_target_baseline=base,
        mmd_to_target_ratio=mmd_t / base if base > 0 else float("inf"),
        mmd_source_to_target=mmd_rbf(x_src, x_target_eval, device=device),
        cycle_error=None if x_cycle is None else float(np.abs(
            x_cycle - (x_all if cycle_index is None else x_all[cycle_index])).mean()),
        transport_cost=float(np.mean(np.sum((x_moved - x_src) ** 2, axis=1))),
        ot_cost=ot_cost(x_src, x_target_eval),
        metric_rows={"moved": len(x_src), "target": len(x_target_eval),
                     "target_other_split": len(x_target_ref), "limit": max_rows},
    )
