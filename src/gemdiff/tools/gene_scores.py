"""Per-gene perturbation scores and the one rule that calls core genes."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from gemdiff.data.preprocess import Preprocessor


def core_calls(scores, k: float) -> np.ndarray:
    """Core genes: score above the mean + ``k`` SD (sample SD) of all the scores given."""
    s = np.asarray(scores, dtype=np.float64)
    return s > s.mean() + k * s.std(ddof=1) if len(s) > 1 else np.zeros(len(s), dtype=bool)


def gene_scores(preprocessor: Preprocessor, genes: Sequence[str], x_source: np.ndarray,
                x_moved: np.ndarray, k: float = 1.0) -> pd.DataFrame:
    """Per gene, best first: perturbation score (mean |x - x'|, scaled units; ``score_log2`` the
    same in log2(n + 1) units, comparable between models of different genes), mean signed
    change in log2(n + 1) units and its direction, z-score of the score across genes, and the
    core call (:func:`core_calls`, the same as z > k)."""
    score = np.abs(x_moved - x_source).mean(axis=0)
    moved, source = preprocessor.to_log2p1_scale(x_moved), preprocessor.to_log2p1_scale(x_source)
    change = (moved - source).mean(axis=0)
    sd = score.std(ddof=1) if len(score) > 1 else 0.0
    z = (score - score.mean()) / sd if sd > 0 else np.zeros_like(score)
    df = pd.DataFrame({"gene": list(genes), "score": score,
                       "score_log2": np.abs(moved - source).mean(axis=0),
                       "mean_change_log2": change,
                       "direction": np.where(change >= 0, "up", "down"), "z": z,
                       "core": core_calls(score, k)})
    return df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
