"""From a matrix to model-ready arrays: restrict classes, select genes, split, fit preprocessing.

Kept apart from Lightning so that training, the Python API and every later command prepare
data the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from gemdiff.common.choices import check_choice
from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.data.genesets import GeneSelection, dispersion_ranks
from gemdiff.data.io import GEM, dense, read_gemdiff, read_h5ad, read_rnaseqdb
from gemdiff.data.preprocess import (ConstantGenes, DeclaredScale, NanPolicy, Preprocessor,
                                     Scaling, resolve_input_scale)
from gemdiff.data.preprocess import constant_genes as constant_genes_mask
from gemdiff.data.preprocess import missing_genes
from gemdiff.data.rows import column_moments
from gemdiff.data.synthetic import simulate_gem

FORMATS = ("synthetic", "gemdiff", "rnaseqdb", "h5ad", "memory")
# A sparse or on-disk training set of more samples than this is streamed: its chosen genes stay
# sparse and are scaled a batch at a time, while everything that reads the data as a whole
# (calibration, maps, metrics, the checkpoint) reads a seeded draw of this many samples of
# each split.
REFERENCE_ROWS = 10_000


def read_dataset(source: Mapping[str, Any]) -> tuple[GEM, GEM | None]:
    """Read the matrix described by a ``data.source`` config.

    Returns the matrix and, where the config names separate test files, the test matrix.
    """
    source = dict(source)
    fmt = source.pop("format", None)
    if fmt not in FORMATS:
        raise GemdiffError(f"data.source.format={fmt!r} is not one of {', '.join(FORMATS)}")
    try:
        if fmt == "synthetic":
            return simulate_gem(**source).gem, None
        if fmt == "gemdiff":
            train = read_gemdiff(source["matrix"], source["labels"])
            test = None
            if source.get("test_matrix"):
                test = read_gemdiff(source["test_matrix"], source["test_labels"])
            return train, test
        if fmt == "rnaseqdb":
            return read_rnaseqdb(source["files"]), None
        if fmt == "h5ad":
            return read_h5ad(source["path"], source.get("label_key", "label"),
                             source.get("layer"), source.get("backed")), None
    except KeyError as err:
        raise GemdiffError(f"data.source (format {fmt}) needs the key {err.args[0]!r}") from None
    except TypeError as err:
        raise GemdiffError(f"data.source (format {fmt}): {err}") from None
    raise GemdiffError(f"data.source.format=memory ({source.get('description', 'in-memory')}) "
                       "holds data given through the Python API; there is no file to read")


@dataclass(frozen=True)
class DataOptions:
    """How a matrix becomes model-ready data: preprocessing and split (``data.*`` of the config).

    Parameters
    ----------
    input_scale
        ``log2`` (log2 expression, missing = unexpressed), ``linear`` (FPKM, TPM or counts) or
        ``auto`` (inferred from the training matrix: :func:`~gemdiff.data.preprocess.
        resolve_input_scale`); a declared scale the values cannot be in is an error.
    nan_policy, scaling
        See :class:`~gemdiff.data.preprocess.Preprocessor`. ``nan_policy="drop"`` removes
        genes with any missing cell in either matrix.
    constant_genes
        What to do with chosen genes that have one value in every sample (missing cells
        counting as unexpressed): ``error`` or ``drop``. Random genes and gene-set members are
        drawn among the genes that vary, so this concerns explicit lists and the whole matrix.
    classes
        Keep only these classes (all by default); at least two are needed.
    test_size, train_fraction, seed
        Held-out share of each class, share of each class's training samples kept, and the
        seed of both draws.
    permute_labels
        Shuffle the labels among the samples (within each matrix, seeded) before the split: a
        model trained so learns no real class difference, the null for perturbation scores.
    allow_single_sample_classes
        A class of one sample is usually a typo in a label file (one ``normall`` among
        ``normal``) and is an error unless this is set.
    """

    input_scale: str = "auto"
    nan_policy: str = "replace"
    scaling: str = "global"
    constant_genes: str = "error"
    classes: tuple[str, ...] | None = None
    test_size: float = 0.33
    train_fraction: float = 1.0
    permute_labels: bool = False
    seed: int = 0
    allow_single_sample_classes: bool = False

    def __post_init__(self):
        check_choice("input_scale", self.input_scale, DeclaredScale)
        check_choice("nan_policy", self.nan_policy, NanPolicy)
        check_choice("scaling", self.scaling, Scaling)
        check_choice("constant_genes", self.constant_genes, ConstantGenes)
        if not 0.0 < self.test_size < 1.0:
            raise GemdiffError(f"test_size must be in (0, 1), got {self.test_size}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise GemdiffError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))


@dataclass
class StreamedRows:
    """Every training sample of a streamed set: the chosen genes in the input's units (counts
    normalised), sparse, scaled a batch at a time."""

    values: Any  # (n_train, n_genes) float32 CSR
    labels: np.ndarray  # (n_train,) int64 class index
    ids: list[str]
    preprocessor: Preprocessor
    codec: Any = None  # a model of principal components: the rows' scores are served

    def __len__(self) -> int:
        return len(self.labels)

    def scaled(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_genes) float32 in the model's scale (component scores with a
        codec)."""
        x = self.preprocessor.transform(self.values[rows].toarray().astype(np.float64))
        return x if self.codec is None else self.codec.encode(x)


@dataclass
class PreparedData:
    """Model-ready data: scaled float32 arrays, integer labels and the fitted state."""

    genes: list[str]
    classes: list[str]
    preprocessor: Preprocessor
    x_train: np.ndarray  # (n_train, n_genes) float32 in [-1, 1]
    y_train: np.ndarray  # (n_train,) int64 class index
    x_test: np.ndarray
    y_test: np.ndarray
    train_ids: list[str]
    test_ids: list[str]
    source: str
    # How the input scale was chosen ("declared", or "inferred: ..."), and warnings about the
    # units; empty where the data were rebuilt from a checkpoint.
    scale_note: str = ""
    scale_warnings: list[str] = field(default_factory=list)
    # Every training sample where x_train holds a draw of them (streamed data); None: x_train
    # holds them all.
    stream: "StreamedRows | None" = None
    # Streamed data: the samples of each class in the whole train and test splits, of which
    # x_train and x_test hold draws ({"train": {class: n}, "test": {...}}).
    split_counts: dict | None = None

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def all_train_ids(self) -> list[str]:
        return self.train_ids if self.stream is None else self.stream.ids

    def summary(self) -> dict:
        count = lambda y: {c: int((y == i).sum()) for i, c in enumerate(self.classes)}  # noqa: E731
        counts = self.split_counts or {"train": count(self.y_train), "test": count(self.y_test)}
        out = {"n_genes": self.n_genes, "classes": self.classes, **counts,
               "input_scale": self.preprocessor.input_scale}
        if self.split_counts:
            out["streamed"] = {"reference_train": len(self.y_train),
                               "reference_test": len(self.y_test)}
        if self.scale_note:
            out["input_scale_chosen"] = self.scale_note
        warnings = [*self.scale_warnings, *small_class_warnings(out)]
        return out | ({"warnings": warnings} if warnings else {})


def prepare_data(train: GEM, test: GEM | None = None, selection: GeneSelection | None = None,
                 options: DataOptions | None = None) -> PreparedData:
    """Select genes, split (stratified, seeded) and fit preprocessing on the training split.

    ``test`` is a separate test matrix if the user gave one (then no split is drawn);
    ``selection`` says which genes to keep (all by default).
    """
    options = options or DataOptions()
    scale, note, warnings = resolve_input_scale(train.values, options.input_scale, train.source)
    if test is not None:  # the test matrix must be in the same units
        warnings += resolve_input_scale(test.values, scale, test.source)[2]
    options = replace(options, input_scale=scale)
    train, test = restrict_classes(train, options.classes), restrict_classes(test, options.classes)
    if scale == "counts":  # library sizes over all genes, before any is left out
        train = train.normalized()
        test = None if test is None else test.normalized(train.meta["target_sum"])
    if options.permute_labels:
        rng = np.random.default_rng([options.seed, 7])
        train = train.with_labels(rng.permutation(train.labels))
        test = None if test is None else test.with_labels(rng.permutation(test.labels))
    genes = choose_genes(train, test, selection or GeneSelection(), options)
    streamed = not isinstance(train.values, np.ndarray) and len(train.samples) > REFERENCE_ROWS
    target_sum = train.meta.get("target_sum")
    train = train.take_genes(genes, sparse=streamed)
    test = None if test is None else test.take_genes(genes, sparse=streamed)
    train, test = split(train, test, options)
    data = fit_preprocessing(train, test, options, streamed)
    data.preprocessor.target_sum = target_sum
    return replace(data, scale_note=note, scale_warnings=warnings)


def restrict_classes(gem: GEM | None, classes: Sequence[str] | None) -> GEM | None:
    """The samples of ``classes`` only (all when None); an unknown class is an error."""
    if gem is None or classes is None:
        return gem
    present = gem.classes
    unknown = [c for c in classes if c not in present]
    if unknown:
        raise InputError(gem.source, f"has no class {unknown[0]!r}; its classes are "
                                     f"{', '.join(present)}")
    return gem.take_samples(np.flatnonzero(np.isin(gem.labels, list(classes))))


def choose_genes(train: GEM, test: GEM | None, selection: GeneSelection,
                 options: DataOptions) -> list[str]:
    """The genes to train on: the selection, without constant genes (or an error naming one),
    present in the test matrix, and with ``nan_policy=drop`` without missing cells."""
    flat = constant_genes_mask(train.values, options.input_scale, train.source)
    constant = {g for g, c in zip(train.genes, flat, strict=True) if c}
    ranks = None
    if selection.mode == "variable":  # dispersion of linear (normalised) expression
        linear = np.exp2 if options.input_scale == "log2" else None
        ranks = dispersion_ranks(*column_moments(train.values, linear, train.row_scale))
    genes = selection.select(train.genes, source=train.source, constant=constant, ranks=ranks)
    flat_chosen = [g for g in genes if g in constant]
    if flat_chosen and options.constant_genes == "error":
        raise InputError(train.source, f"{len(flat_chosen)} chosen gene(s) have the same value in "
                                       f"every sample, e.g. {flat_chosen[0]!r} (a gene with no "
                                       "value at all counts): they carry nothing to learn; remove "
                                       "them or set data.constant_genes=drop")
    genes = [g for g in genes if g not in constant]
    if not genes:
        raise InputError(train.source, "every chosen gene has the same value in every sample")
    if test is not None:
        test_genes = set(test.genes)
        absent = [g for g in genes if g not in test_genes]
        if absent:
            raise InputError(test.source, f"lacks {len(absent)} gene(s) of the training matrix, "
                                          f"e.g. {absent[0]!r}")
    if options.nan_policy == "drop":
        bad = missing_genes(train.take_genes(genes, sparse=True).values)
        if test is not None:
            bad |= missing_genes(test.take_genes(genes, sparse=True).values)
        genes = [g for g, b in zip(genes, bad, strict=True) if not b]
        if not genes:
            raise InputError(train.source, "every selected gene has a missing value, so "
                                           "nan_policy='drop' leaves none; use 'replace'")
    return genes


def split(train: GEM, test: GEM | None, options: DataOptions) -> tuple[GEM, GEM]:
    """Check the classes, draw the stratified test split unless one was given, and keep
    ``train_fraction`` of each class's training samples."""
    from sklearn.model_selection import train_test_split

    classes = train.classes
    if len(classes) < 2:
        raise InputError(train.source, f"has only one class ({classes[0]!r}); "
                                       "at least two are needed")
    if not options.allow_single_sample_classes:
        _refuse_single_sample_classes(train, test)
    if test is not None:
        extra = sorted(set(test.classes) - set(classes))
        if extra:
            raise InputError(test.source, f"has class {extra[0]!r}, absent from the training data")
    else:
        counts = train.class_counts()
        small = [c for c, n in counts.items() if n < 2]
        if small:
            raise InputError(train.source, f"class {small[0]!r} has {counts[small[0]]} sample; "
                                           "a stratified split needs at least 2 per class")
        rows = np.arange(len(train.samples))
        tr, te = train_test_split(rows, test_size=options.test_size, stratify=train.labels,
                                  random_state=options.seed)
        train, test = train.take_samples(np.sort(tr)), train.take_samples(np.sort(te))
    keep = _subsample_per_class(train.labels, options.train_fraction, options.seed)
    return train.take_samples(keep), test


def _refuse_single_sample_classes(train: GEM, test: GEM | None) -> None:
    """A class with one sample in all the data given: most likely a mistyped label."""
    counts = train.class_counts()
    if test is not None:
        for c, n in test.class_counts().items():
            counts[c] = counts.get(c, 0) + n
    single = [c for c, n in counts.items() if n == 1]
    if not single:
        return
    c = single[0]
    gem = train if c in train.class_counts() else test
    sample = gem.samples[int(np.flatnonzero(gem.labels == c)[0])]
    found = ", ".join(f"{k!r} ({n})" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    raise InputError(gem.source, f"class {c!r} has a single sample ({sample!r}); the classes "
                                 f"found are {found}. A mistyped label? Fix it, keep the "
                                 "others with data.classes=[...], or allow such a class with "
                                 "data.allow_single_sample_classes=true")


def small_class_warnings(counts: Mapping[str, Mapping[str, int]], minimum: int = 10
                         ) -> list[str]:
    """Warnings for classes too small for the figures that compare classes.

    ``counts`` maps split (train, test) to class counts. Below ``minimum`` test samples a
    class's accuracies, TSTR, C2ST and ``frac_to_target`` move in steps of 1/n or more and
    mostly say how the classifier treats the majority class.
    """
    out = []
    for c, n in counts.get("test", {}).items():
        if n < minimum:
            out.append(f"class {c!r} has {n} test and {counts.get('train', {}).get(c, 0)} "
                       f"training samples: figures that compare classes (accuracies, TSTR, "
                       f"C2ST, frac_to_target) mean little below {minimum} test samples")
    return out


def _subsample_per_class(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Row indices keeping ``fraction`` of each class (at least one), seeded."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n = max(1, int(round(fraction * len(rows))))
        keep.append(rng.choice(rows, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def fit_preprocessing(train: GEM, test: GEM, options: DataOptions,
                      streamed: bool = False) -> PreparedData:
    """Fit the preprocessing on the training split and scale both splits. ``streamed``: both
    hold sparse values; the preprocessing is fitted on, and ``x_train``/``x_test`` hold, a
    seeded draw of ``REFERENCE_ROWS`` samples of each, and every training sample is kept in
    ``stream``."""
    classes = train.classes
    index = {c: i for i, c in enumerate(classes)}
    labels = lambda gem: np.array([index[c] for c in gem.labels], dtype=np.int64)  # noqa: E731
    stream = counts = None
    if streamed:
        stream = StreamedRows(train.values, labels(train), list(train.samples), None)
        counts = {"train": train.class_counts(), "test": test.class_counts()}
        train = _reference(train, options.seed)
        test = _reference(test, options.seed + 1)
    y_train = labels(train)
    prep = Preprocessor(input_scale=options.input_scale, nan_policy=options.nan_policy,
                        scaling=options.scaling)
    prep.fit(dense(train.values), source=train.source, labels=y_train)
    if stream is not None:
        stream.preprocessor = prep
    return PreparedData(
        genes=list(train.genes),
        classes=classes,
        preprocessor=prep,
        x_train=prep.transform(dense(train.values), train.source),
        y_train=y_train,
        x_test=prep.transform(dense(test.values), test.source),
        y_test=labels(test),
        train_ids=list(train.samples),
        test_ids=list(test.samples),
        source=train.source,
        stream=stream,
        split_counts=counts,
    )


def _reference(gem: GEM, seed: int) -> GEM:
    """A seeded draw of at most ``REFERENCE_ROWS`` samples (in their order), densified."""
    n = len(gem.samples)
    rows = np.arange(n) if n <= REFERENCE_ROWS else np.sort(
        np.random.default_rng([seed, 11]).choice(n, REFERENCE_ROWS, replace=False))
    part = gem.take_samples(rows)
    return replace(part, values=dense(part.values))


def rebuild_split(
    source: Mapping[str, Any], genes: Sequence[str], classes: Sequence[str],
    preprocessor: Preprocessor, train_ids: Sequence[str], test_ids: Sequence[str],
    labels: Mapping[str, str] | None = None,
) -> PreparedData:
    """Re-read a model's data files and rebuild its exact split, genes and scaling (nothing
    refit): for checkpoints written before they carried their data.

    ``labels`` (sample id -> class) replaces the file's labels: a model trained on permuted
    labels keeps them in its checkpoint. Raises :class:`InputError` when the data no longer
    holds the model's genes or samples.
    """
    train, test = read_dataset(source)
    parts = [train] if test is None else [train, test]
    index: dict[str, tuple[int, int]] = {}
    for p, gem in enumerate(parts):
        missing = [g for g in genes if g not in set(gem.genes)]
        if missing:
            raise InputError(gem.source, f"lacks {len(missing)} of the checkpoint's genes, "
                                         f"e.g. {missing[0]!r}; was the model trained on "
                                         "another gene list?")
        index.update({s: (p, i) for i, s in enumerate(gem.samples)})
    class_index = {c: i for i, c in enumerate(classes)}

    def rows(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        absent = [s for s in ids if s not in index]
        if absent:
            raise InputError(parts[0].source, f"lacks {len(absent)} sample(s) the model was "
                                              f"trained or tested on, e.g. {absent[0]!r}")
        ordered = sorted(ids, key=lambda s: index[s][0])  # grouped by file, stable within
        values, names = [], []
        for p, gem in enumerate(parts):
            mine = np.array([index[s][1] for s in ordered if index[s][0] == p], dtype=int)
            if len(mine):
                sub = gem.take_samples(mine).take_genes(genes)
                values.append(sub.values)
                names += sub.labels.tolist() if labels is None else [labels[s] for s in
                                                                     sub.samples]
        y = np.array([class_index[c] for c in names], dtype=np.int64)
        return preprocessor.transform(np.concatenate(values), parts[0].source), y, ordered

    x_train, y_train, train_ids = rows(train_ids)
    x_test, y_test, test_ids = rows(test_ids)
    return PreparedData(list(genes), list(classes), preprocessor, x_train, y_train, x_test,
                        y_test, train_ids, test_ids, parts[0].source)
