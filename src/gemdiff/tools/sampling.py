"""Synthetic expression per class from a trained model (augmentation)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from gemdiff.common.errors import GemdiffError
from gemdiff.models.generators import SampleOptions
from gemdiff.training.checkpoint import TrainedModel


def labels_to_generate(classes: list[str], y_test: np.ndarray,
                       n_per_class: int | Mapping[str, int] | None) -> np.ndarray:
    """Class indices to generate, sorted: ``n_per_class`` of every class (a number, or a
    number per class name), or the test split's class counts when None."""
    if n_per_class is None:
        return np.sort(np.asarray(y_test, dtype=np.int64))
    counts = n_per_class if isinstance(n_per_class, Mapping) else \
        {c: n_per_class for c in classes}
    unknown = [c for c in counts if c not in classes]
    if unknown:
        raise GemdiffError(f"n_per_class names class {unknown[0]!r}; the classes are "
                           f"{', '.join(classes)}")
    bad = {c: n for c, n in counts.items() if not isinstance(n, (int, np.integer)) or n < 0}
    if bad or not sum(counts.values()):
        raise GemdiffError(f"n_per_class must be a whole number of at least 1, got {n_per_class}")
    return np.concatenate([np.full(int(counts.get(c, 0)), i, dtype=np.int64)
                           for i, c in enumerate(classes)])


def sample_scaled(model: TrainedModel, labels: np.ndarray, seed: int = 0,
                  options: SampleOptions = SampleOptions()) -> np.ndarray:
    """One sample per label (scaled units), post-processed as real data look: values below
    each gene's detection floor and, within each class, the lowest values of each gene up to
    its training share of unexpressed samples set to unexpressed (every model kind the same,
    see :meth:`~gemdiff.data.preprocess.Preprocessor.snap_unexpressed`)."""
    synth = model.generator.sample(np.asarray(labels, dtype=np.int64), seed, options)
    return model.preprocessor.snap_unexpressed(synth, labels)
