"""Library sizes, log2(n + 1) transform, missing values and min-max scaling to [-1, 1].

Counts (``input_scale="counts"``) are first scaled, sample by sample, to the same total over
all genes (the training samples' median total; scanpy's ``normalize_total``), then go on as
linear expression: log2(n + 1) is scanpy's ``log1p`` in base 2. Files written for counts hold
these normalised counts.

The model works on ``scaled`` values. Every file the package writes goes back through
:meth:`Preprocessor.inverse_transform` to the input's own units.

Scaling is global by default: one minimum and one maximum over all genes of the training
split. A unit then means the same fold change for every gene, so distances between samples
(MMD, UMAP, perturbation scores) weigh genes by how much they really vary; scaling each gene to
its own range would stretch near-constant genes and make their noise look like signal. Per-gene
scaling is available (``scaling="per_gene"``); a constant gene is mapped to 0 there instead of
dividing by zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from gemdiff.common.choices import check_choice
from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.data.io import dense
from gemdiff.data.rows import BackedRows, row_blocks

InputScale = Literal["log2", "linear", "counts"]
DeclaredScale = Literal["auto", "log2", "linear", "counts"]  # what a user may set: auto infers
NanPolicy = Literal["replace", "drop"]
Scaling = Literal["global", "per_gene"]
ConstantGenes = Literal["error", "drop"]


def to_log2p1(values: np.ndarray, input_scale: InputScale, source: str = "") -> np.ndarray:
    """Map input values to log2(n + 1), with missing cells taken as unexpressed (0).

    ``log2``: values are log2(n) (the GEMDiff example), so n = 2**x; ``linear`` and
    ``counts`` (already normalised, :meth:`~gemdiff.data.io.GEM.normalized`): values are n.
    """
    check_choice("input_scale", input_scale, InputScale)
    if input_scale == "log2":
        n = np.exp2(values)
    else:
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() < 0:
            raise InputError(source or None, f"has negative values but input_scale="
                                             f"'{input_scale}' expects FPKM/TPM/counts; use "
                                             "input_scale='log2'")
        n = values
    return np.log2(np.nan_to_num(n, nan=0.0) + 1.0)


# Expression above 2**30 (a billion FPKM, TPM or reads) is measured by no assay: larger values
# cannot be log2 expression.
LOG2_MAX = 30.0
# The 99th percentile of expressed values over their median: log-scale data stay within a few
# fold (1.6 in the breast example), linear expression spans orders of magnitude (90 in kidney).
LOG_SKEW, LINEAR_SKEW = 10.0, 30.0
EVIDENCE_VALUES = 200_000  # expressed values drawn (seeded) for the whole-number and skew tests
EVIDENCE_CELLS = 1 << 22  # stored values of a larger matrix are drawn (seeded) before that


@dataclass(frozen=True)
class ScaleEvidence:
    """What the values of a matrix say about their scale."""

    minimum: float
    maximum: float
    whole: bool  # every expressed value drawn is a whole number, as read counts are
    skew: float  # 99th percentile of the expressed values' sizes over their median

    @classmethod
    def of(cls, values) -> "ScaleEvidence | None":
        """From a dense or scipy sparse matrix; None when it holds no finite non-zero value."""
        if isinstance(values, BackedRows):  # a matrix on disk: judged by its first rows
            values = next(row_blocks(values))[1]
        raw = (values.data if hasattr(values, "tocsr") else np.asarray(values)).ravel()
        if raw.size > EVIDENCE_CELLS:  # judged by a seeded draw, extremes aside: no copy
            with np.errstate(invalid="ignore"):
                lo, hi = np.nanmin(raw), np.nanmax(raw)
            draw = raw[np.random.default_rng(0).integers(0, raw.size, EVIDENCE_CELLS)]
            raw = np.append(draw, [lo, hi])
        v = np.asarray(raw, dtype=np.float64)
        v = v[np.isfinite(v)]
        if hasattr(values, "tocsr") and v.size < np.prod(values.shape):
            v = np.append(v, 0.0)  # implicit zeros
        if not v.size:
            return None
        nonzero = v[v != 0]
        if not nonzero.size:
            return None
        if nonzero.size > EVIDENCE_VALUES:
            nonzero = np.random.default_rng(0).choice(nonzero, EVIDENCE_VALUES, replace=False)
        size = np.abs(nonzero)
        return cls(float(v.min()), float(v.max()), bool(np.all(nonzero == np.round(nonzero))),
                   float(np.quantile(size, 0.99) / np.median(size)))

    def infer(self) -> tuple[str | None, str]:
        """The scale these values are in (None: no telling) and why, in a few words."""
        if self.minimum < 0:
            return "log2", "it has negative values"
        if self.whole:
            return "counts", "every value is a whole number, as read counts are"
        if self.maximum > LOG2_MAX:
            return "linear", f"values reach {self.maximum:.4g}, beyond any log2 expression"
        if self.skew < LOG_SKEW:
            return "log2", (f"values are fractional, at most {self.maximum:.3g} and within "
                            f"{self.skew:.2g}-fold of their median, as log-scale data are")
        if self.skew > LINEAR_SKEW:
            return "linear", (f"values span {self.skew:.3g}-fold around their median, as "
                              "linear expression does")
        return None, (f"values are fractional, at most {self.maximum:.3g} and span "
                      f"{self.skew:.2g}-fold around their median")


def resolve_input_scale(values, declared: str, source: str = "") -> tuple[str, str, list[str]]:
    """The scale to read ``values`` (samples x genes, dense or sparse) in, given the declared
    ``input_scale``: ``auto`` infers it. Returns the scale, how it was chosen, and warnings
    where the values look unlike the declared scale. Raises :class:`InputError` where they
    cannot be in it (log2 values above ``LOG2_MAX``, negative linear values) or where ``auto``
    cannot tell.
    """
    check_choice("input_scale", declared, DeclaredScale)
    evidence = ScaleEvidence.of(values)
    if evidence is None:
        scale = "log2" if declared == "auto" else declared
        return scale, "no expressed value to judge by", []
    inferred, why = evidence.infer()
    if declared == "auto":
        if inferred is None:
            raise InputError(source or None, f"cannot tell log2 from linear expression: {why}; "
                                             "set data.input_scale=log2 or linear")
        return inferred, f"inferred: {why}", []
    if declared == "log2" and evidence.maximum > LOG2_MAX:
        raise InputError(source or None, f"has values up to {evidence.maximum:.4g}, too high for "
                                         "log2 expression (2^30 is a billion): it looks like "
                                         "linear FPKM/TPM/counts; set data.input_scale=linear "
                                         "or auto")
    if declared in ("linear", "counts") and evidence.minimum < 0:
        raise InputError(source or None, f"has negative values but input_scale='{declared}' "
                                         "expects FPKM/TPM/counts; set data.input_scale=log2 "
                                         "or auto")
    warnings = []
    linear = {"linear", "counts"}
    if inferred is not None and inferred != declared and not (
            declared == "counts" and inferred in linear):  # normalising TPM again does no harm
        warnings.append(f"{source or 'the data'} is declared input_scale={declared} but looks "
                        f"{inferred} ({why}); if it is, set data.input_scale={inferred} or auto")
    return declared, "declared", warnings


def from_log2p1(values: np.ndarray, input_scale: InputScale) -> np.ndarray:
    """Inverse of :func:`to_log2p1`; unexpressed genes come back as NaN on the log2 scale.

    Values are capped at 2**60 (no expression is that high) so that nothing overflows to inf.
    """
    n = np.clip(np.exp2(np.clip(values, None, 60.0)) - 1.0, 0.0, None)
    if input_scale != "log2":
        return n
    with np.errstate(divide="ignore"):
        out = np.log2(n)
    out[n <= 0] = np.nan
    return out


# Generated values stay within each gene's training range widened by this many log2 units
# (a factor of 2 beyond the largest and below the smallest training value).
PLAUSIBLE_MARGIN = 1.0
# A larger share of values held at that bound is reported as a warning.
CLIPPED_WARN = 0.01


@dataclass
class Preprocessor:
    """Fitted transform from input units to the model's [-1, 1] scale; plain data only."""

    input_scale: str = "log2"
    nan_policy: str = "replace"
    scaling: str = "global"
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    # Half the smallest expressed value seen in training, in log2(n + 1) units: generated
    # values below it are called unexpressed, like the zeros of real data.
    floor: float = 0.0
    # Per gene, the smallest expressed value seen in training (log2(n + 1) units) where the
    # gene also has unexpressed training samples, else NaN. RNA-seq leaves a gap between zero
    # and the smallest level a gene is detected at; generated values inside it are called
    # unexpressed. Empty in checkpoints written before it existed (the global floor only).
    gene_floor: list[float] = field(default_factory=list)
    # Per class (row, in class-index order) and gene: the share of training samples where the
    # gene is unexpressed. Generated samples of a class are given the same share of zeros
    # (see snap_unexpressed). Empty when fitted without labels and in older checkpoints.
    zero_share: list[list[float]] = field(default_factory=list)
    # Counts: the total every sample is scaled to over all its genes before log2(n + 1).
    target_sum: float | None = None

    def __post_init__(self):
        check_choice("input_scale", self.input_scale, InputScale)
        check_choice("nan_policy", self.nan_policy, NanPolicy)
        check_choice("scaling", self.scaling, Scaling)

    def fit(self, values: np.ndarray, source: str = "",
            labels: np.ndarray | None = None) -> "Preprocessor":
        """Fit the min-max range on (training) values in input units; with ``labels`` (class
        indices 0..K-1 per sample) also each class's share of unexpressed values per gene."""
        v = to_log2p1(values, self.input_scale, source)
        expressed = v[v > 0]
        self.floor = float(expressed.min() / 2) if expressed.size else 0.0
        self.gene_floor = detection_floors(v).tolist()
        self.zero_share = [] if labels is None else zero_shares(v, labels).tolist()
        if self.scaling == "global":
            self.lo, self.hi = [float(v.min())], [float(v.max())]
        else:
            self.lo, self.hi = v.min(axis=0).tolist(), v.max(axis=0).tolist()
        return self

    def _range(self) -> tuple[np.ndarray, np.ndarray]:
        """Effective (lo, span) with x_scaled = 2 (v - lo) / span - 1."""
        if not self.lo:
            raise RuntimeError("Preprocessor used before fit")
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        const = hi <= lo
        # A constant gene has no range: lo - 1 and span 2 map its value to 0, no division by 0.
        return np.where(const, lo - 1.0, lo), np.where(const, 2.0, hi - lo)

    def transform(self, values: np.ndarray, source: str = "") -> np.ndarray:
        """Input units -> [-1, 1] (float32); test data may fall slightly outside."""
        lo, span = self._range()
        v = to_log2p1(values, self.input_scale, source)
        return (2.0 * (v - lo) / span - 1.0).astype(np.float32)

    def transform_gem(self, gem, genes) -> np.ndarray:
        """The scaled values of ``genes`` of a matrix in the input's units (counts scaled to
        :attr:`target_sum` over all of the matrix's genes first)."""
        if self.input_scale == "counts":
            gem = gem.normalized(self.target_sum)
        return self.transform(gem.take_genes(genes).values, gem.source)

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] -> input units (float64)."""
        return from_log2p1(self.to_log2p1_scale(scaled), self.input_scale)

    def plausible_range(self, x_train: np.ndarray, margin: float = PLAUSIBLE_MARGIN
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Per gene, the range generated values may take (scaled units): the gene's training
        range (``x_train``, scaled) widened by ``margin`` log2 units each way, never below
        unexpressed (log2(n + 1) = 0)."""
        lo, span = self._range()
        step = 2.0 * margin / span  # margin log2 units in scaled units
        zero = 2.0 * (0.0 - lo) / span - 1.0
        x = np.asarray(x_train, dtype=np.float64)
        return (np.maximum(x.min(axis=0) - step, zero), x.max(axis=0) + step)

    def clip_plausible(self, scaled: np.ndarray, x_train: np.ndarray,
                       margin: float = PLAUSIBLE_MARGIN) -> tuple[np.ndarray, float]:
        """``scaled`` held to :meth:`plausible_range`, and the share of values that were
        outside it (a generator stuck at the edge of the scale shows as a large share)."""
        lo, hi = self.plausible_range(x_train, margin)
        x = np.asarray(scaled)
        outside = (x < lo) | (x > hi)
        return np.clip(x, lo, hi).astype(x.dtype), float(outside.mean()) if x.size else 0.0

    def snap_unexpressed(self, scaled: np.ndarray,
                         labels: np.ndarray | None = None) -> np.ndarray:
        """Set generated values to exactly unexpressed (0 in log2(n + 1) units), the point mass
        real data has and a continuous generator lacks.

        Values below the detection floor always: half the smallest expressed training value,
        and per gene with unexpressed training samples the smallest level that gene was
        detected at (real data holds nothing between zero and that level, where a continuous
        generator spreads the zeros' mass).

        With ``labels`` (the class of each row) the samples of each class are also given that
        class's training share of zeros per gene: where fewer of them are unexpressed, the
        lowest values of the gene within the class's rows are, up to the nearest whole count
        (a gene unexpressed in 90% of a class's training samples is unexpressed in 90% of its
        generated ones). The count is matched within the rows given, so it needs a whole draw
        of the class, not a sample at a time; classes with no rows are left alone.
        """
        lo, span = self._range()
        zero = 2.0 * (0.0 - lo) / span - 1.0  # the scaled value of log2(0 + 1)
        v = self.to_log2p1_scale(scaled)
        below = v < self.floor
        if self.gene_floor:
            # Below by more than float32 rounding (a value at the level itself stays); NaN:
            # no gap known, never below.
            with np.errstate(invalid="ignore"):
                below |= v < np.asarray(self.gene_floor) - 1e-5 * span
        if labels is not None and self.zero_share:
            below |= self._below_class_share(np.where(below, -np.inf, v), np.asarray(labels))
        return np.where(below, zero, scaled).astype(np.asarray(scaled).dtype)

    def _below_class_share(self, v: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Mask of the values that are among the lowest ``zero_share`` of their class and gene
        (those already unexpressed are -inf in ``v``, so they count first)."""
        share = np.asarray(self.zero_share)
        if len(labels) != len(v):
            raise GemdiffError(f"{len(labels)} labels for {len(v)} samples")
        if labels.size and (labels.min() < 0 or labels.max() >= len(share)):
            raise GemdiffError(f"labels must be class indices 0..{len(share) - 1}")
        out = np.zeros(v.shape, dtype=bool)
        for k in np.unique(labels):
            rows = np.flatnonzero(labels == k)
            wanted = np.floor(share[k] * len(rows) + 0.5)  # per gene: how many zeros
            rank = np.argsort(np.argsort(v[rows], axis=0, kind="stable"), axis=0)
            out[rows] = rank < wanted
        return out

    def to_log2p1_scale(self, scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] -> log2(n + 1) units, for changes reported in log2 fold terms."""
        lo, span = self._range()
        return (np.asarray(scaled, dtype=np.float64) + 1.0) / 2.0 * span + lo

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> "Preprocessor":
        return cls(**state)


def detection_floors(v: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Per gene (column of ``v``, log2(n + 1) units): the smallest expressed value where the
    gene has unexpressed (0) samples too, NaN where it has none or is never expressed.
    Works in column chunks."""
    out = np.full(v.shape[1], np.nan)
    for start in range(0, v.shape[1], chunk):
        block = v[:, start:start + chunk]
        smallest = np.where(block > 0, block, np.inf).min(axis=0)
        gap = (block == 0).any(axis=0) & np.isfinite(smallest)
        out[start:start + chunk][gap] = smallest[gap]
    return out


def zero_shares(v: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(classes x genes) share of each class's samples (rows of ``v``, log2(n + 1) units)
    where the gene is unexpressed; ``labels`` are class indices, a class without samples
    gets zeros."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    out = np.zeros((n_classes, v.shape[1]))
    for k in range(n_classes):
        rows = labels == k
        if rows.any():
            out[k] = (v[rows] <= 0).mean(axis=0)
    return out


def constant_genes(values, input_scale: InputScale, source: str = "",
                   chunk: int = 2048) -> np.ndarray:
    """Boolean mask of genes with one value in every sample, missing cells counting as
    unexpressed (so a gene with no value at all is constant). Works through the columns in
    chunks, of a dense or scipy sparse matrix, or through the rows of one on disk: a
    whole-transcriptome matrix is never copied whole."""
    if isinstance(values, BackedRows):
        lo, hi = np.full(values.shape[1], np.inf), np.full(values.shape[1], -np.inf)
        for _, block in row_blocks(values):
            a, b = _log2p1_extremes(block, input_scale, source)
            lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        return lo == hi
    if hasattr(values, "tocsc"):
        if not np.isnan(values.data).any():
            # log2(n + 1) of either scale is strictly increasing: a gene is constant exactly
            # where its raw values are, implicit zeros included.
            return np.equal(values.min(axis=0).toarray(), values.max(axis=0).toarray()).ravel()
        if input_scale != "log2":
            return np.equal(*_log2p1_extremes(values, input_scale, source))
    out = np.empty(values.shape[1], dtype=bool)
    for j in range(0, values.shape[1], chunk):
        t = to_log2p1(dense(values[:, j:j + chunk]), input_scale, source)
        out[j:j + chunk] = t.max(axis=0) == t.min(axis=0)
    return out


def _log2p1_extremes(block, input_scale: InputScale, source: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the smallest and largest log2(n + 1) of a block. A sparse block of linear
    values is transformed where stored (0 stays 0), its implicit zeros never expanded."""
    if hasattr(block, "tocsr") and input_scale != "log2":
        b = block.tocsr().astype(np.float64)
        b.data = to_log2p1(b.data, input_scale, source)
        return b.min(axis=0).toarray().ravel(), b.max(axis=0).toarray().ravel()
    t = to_log2p1(dense(block), input_scale, source)
    return t.min(axis=0), t.max(axis=0)


def missing_genes(values) -> np.ndarray:
    """Boolean mask of genes (columns, of a dense or sparse matrix) with a missing cell."""
    if hasattr(values, "tocsr"):
        values = values.tocsr()
        bad = np.zeros(values.shape[1], dtype=bool)
        bad[values.indices[np.isnan(values.data)]] = True
        return bad
    return np.isnan(values).any(axis=0)
