"""From a data config to model-ready arrays: read, select genes, split, fit preprocessing.

Kept apart from Lightning so that training and every later command (sample, perturb) prepare
data the same way; later commands pass the checkpoint's genes, split and preprocessor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from gemdiff.data.genesets import GeneSelection
from gemdiff.data.io import GEM, read_gemdiff, read_h5ad, read_rnaseqdb
from gemdiff.data.preprocess import ConstantGenes, Preprocessor, check_choice, missing_genes
from gemdiff.data.preprocess import constant_genes as constant_genes_mask
from gemdiff.data.synthetic import simulate_gem
from gemdiff.errors import GemdiffError, InputError

FORMATS = ("synthetic", "gemdiff", "rnaseqdb", "h5ad")


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
        return read_h5ad(source["path"], source.get("label_key", "label")), None
    except KeyError as err:
        raise GemdiffError(f"data.source (format {fmt}) needs the key {err.args[0]!r}") from None
    except TypeError as err:
        raise GemdiffError(f"data.source (format {fmt}): {err}") from None


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

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    def summary(self) -> dict:
        count = lambda y: {c: int((y == i).sum()) for i, c in enumerate(self.classes)}  # noqa: E731
        return {"n_genes": self.n_genes, "classes": self.classes,
                "train": count(self.y_train), "test": count(self.y_test)}


def _restrict_classes(gem: GEM, classes: Sequence[str] | None) -> GEM:
    present = gem.classes
    if classes is None:
        return gem
    unknown = [c for c in classes if c not in present]
    if unknown:
        raise InputError(gem.source, f"has no class {unknown[0]!r}; its classes are "
                                     f"{', '.join(present)}")
    return gem.take_samples(np.flatnonzero(np.isin(gem.labels, list(classes))))


def _subsample_per_class(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Row indices keeping ``fraction`` of each class (at least one), seeded."""
    if not 0.0 < fraction <= 1.0:
        raise GemdiffError(f"train_fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n = max(1, int(round(fraction * len(rows))))
        keep.append(rng.choice(rows, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def prepare_data(
    train: GEM,
    test: GEM | None = None,
    selection: GeneSelection | None = None,
    classes: Sequence[str] | None = None,
    input_scale: str = "log2",
    nan_policy: str = "replace",
    scaling: str = "global",
    test_size: float = 0.33,
    train_fraction: float = 1.0,
    seed: int = 0,
    constant_genes: str = "error",
    permute_labels: bool = False,
) -> PreparedData:
    """Select genes, split (stratified, seeded) and fit preprocessing on the training split.

    Parameters
    ----------
    train, test
        The matrix, and a separate test matrix if the user gave one (then no split is drawn).
    selection
        Which genes to keep (all by default).
    classes
        Keep only these classes (all by default); at least two are needed.
    input_scale, nan_policy, scaling
        See :class:`~gemdiff.data.preprocess.Preprocessor`. ``nan_policy="drop"`` removes
        genes with any missing cell in either matrix.
    constant_genes
        What to do with chosen genes that have one value in every sample (missing cells
        counting as unexpressed): ``error`` (the default) or ``drop``. Random genes and
        gene-set members are drawn among the genes that vary, so this concerns explicit gene
        lists and the whole matrix.
    test_size, train_fraction, seed
        Held-out share of each class, share of each class's training samples kept, and the
        seed of both draws.
    permute_labels
        Shuffle the labels among the samples (within each matrix, seeded) before the split: a
        model trained so learns no real class difference, the null for perturbation scores.
    """
    prep = Preprocessor(input_scale=input_scale, nan_policy=nan_policy, scaling=scaling)
    selection = selection or GeneSelection()
    train = _restrict_classes(train, classes)
    if test is not None:
        test = _restrict_classes(test, classes)
    if permute_labels:
        rng = np.random.default_rng([seed, 7])
        train = GEM(train.values, train.samples, train.genes, rng.permutation(train.labels),
                    train.source, train.meta)
        if test is not None:
            test = GEM(test.values, test.samples, test.genes, rng.permutation(test.labels),
                       test.source, test.meta)

    check_choice("constant_genes", constant_genes, ConstantGenes)
    flat = constant_genes_mask(train.values, input_scale, train.source)
    constant = {g for g, c in zip(train.genes, flat, strict=True) if c}
    genes = selection.select(train.genes, source=train.source, constant=constant)
    flat_chosen = [g for g in genes if g in constant]
    if flat_chosen and constant_genes == "error":
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
    train = train.take_genes(genes)
    test = test.take_genes(genes) if test is not None else None
    if nan_policy == "drop":
        bad = missing_genes(train.values)
        if test is not None:
            bad |= missing_genes(test.values)
        genes = [g for g, b in zip(genes, bad, strict=True) if not b]
        if not genes:
            raise InputError(train.source, "every selected gene has a missing value, so "
                                           "nan_policy='drop' leaves none; use 'replace'")
        train = train.take_genes(genes)
        test = test.take_genes(genes) if test is not None else None

    class_names = train.classes
    if len(class_names) < 2:
        raise InputError(train.source, f"has only one class ({class_names[0]!r}); "
                                       "at least two are needed")
    if test is not None:
        extra = sorted(set(test.classes) - set(class_names))
        if extra:
            raise InputError(test.source, f"has class {extra[0]!r}, absent from the training data")
    else:
        counts = train.class_counts()
        small = [c for c, n in counts.items() if n < 2]
        if small:
            raise InputError(train.source, f"class {small[0]!r} has {counts[small[0]]} sample; "
                                           "a stratified split needs at least 2 per class")
        if not 0.0 < test_size < 1.0:
            raise GemdiffError(f"test_size must be in (0, 1), got {test_size}")
        rows = np.arange(len(train.samples))
        tr, te = train_test_split(rows, test_size=test_size, stratify=train.labels,
                                  random_state=seed)
        train, test = train.take_samples(np.sort(tr)), train.take_samples(np.sort(te))

    train = train.take_samples(_subsample_per_class(train.labels, train_fraction, seed))
    index = {c: i for i, c in enumerate(class_names)}
    y_train = np.array([index[c] for c in train.labels], dtype=np.int64)
    prep.fit(train.values, source=train.source, labels=y_train)
    return PreparedData(
        genes=list(genes),
        classes=class_names,
        preprocessor=prep,
        x_train=prep.transform(train.values, train.source),
        y_train=y_train,
        x_test=prep.transform(test.values, test.source),
        y_test=np.array([index[c] for c in test.labels], dtype=np.int64),
        train_ids=list(train.samples),
        test_ids=list(test.samples),
        source=train.source,
    )


def prepare_from_checkpoint(
    source: Mapping[str, Any], genes: Sequence[str], classes: Sequence[str],
    preprocessor: Preprocessor, train_ids: Sequence[str], test_ids: Sequence[str],
    labels: Mapping[str, str] | None = None,
) -> PreparedData:
    """Re-read a model's data and rebuild its exact split, genes and scaling (nothing refit).

    ``labels`` (sample id -> class) replaces the file's labels: a model trained on permuted
    labels keeps them in its checkpoint.

    Raises :class:`InputError` when the data no longer holds the model's genes or samples
    (for example a checkpoint trained on another gene list).
    """
    train, test = read_dataset(source)
    parts = [train] if test is None else [train, test]
    index: dict[str, tuple[GEM, int]] = {}
    for gem in parts:
        present = set(gem.genes)
        missing = [g for g in genes if g not in present]
        if missing:
            raise InputError(gem.source, f"lacks {len(missing)} of the checkpoint's genes, "
                                         f"e.g. {missing[0]!r}; was the model trained on "
                                         "another gene list?")
        index.update({s: (gem, i) for i, s in enumerate(gem.samples)})
    class_index = {c: i for i, c in enumerate(classes)}

    def rows(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        absent = [s for s in ids if s not in index]
        if absent:
            raise InputError(parts[0].source, f"lacks {len(absent)} sample(s) the model was "
                                              f"trained or tested on, e.g. {absent[0]!r}")
        values, names = [], []
        for gem in parts:
            mine = [index[s][1] for s in ids if index[s][0] is gem]
            if mine:
                sub = gem.take_samples(np.array(mine)).take_genes(genes)
                values.append(sub.values)
                names += sub.labels.tolist() if labels is None else [labels[s] for s in
                                                                     sub.samples]
        y = np.array([class_index[c] for c in names], dtype=np.int64)
        return preprocessor.transform(np.concatenate(values), parts[0].source), y

    # Rows come back grouped by file; keep the ids in the same order.
    ordered = lambda ids: [s for gem in parts for s in ids if index[s][0] is gem]  # noqa: E731
    train_ids, test_ids = ordered(train_ids), ordered(test_ids)
    x_train, y_train = rows(train_ids)
    x_test, y_test = rows(test_ids)
    return PreparedData(list(genes), list(classes), preprocessor, x_train, y_train, x_test,
                        y_test, train_ids, test_ids, parts[0].source)
