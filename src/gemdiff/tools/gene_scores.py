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


DE_Q = 0.05  # a gene counts as differentially expressed below this BH q


def differential_expression(preprocessor: Preprocessor, genes: Sequence[str],
                            x_source: np.ndarray, x_target: np.ndarray) -> pd.DataFrame:
    """Welch's t-test of target against source samples per gene, on log2(n + 1): the log2
    fold change (target mean - source mean), t, the two-sided p and Benjamini-Hochberg q.

    The baseline a perturbation's core genes are read against: a gene the bridge moves that a
    t-test also finds, or one it does not. Constant genes in both groups get t = 0, p = 1.
    """
    from scipy import stats

    a = preprocessor.to_log2p1_scale(x_source)
    b = preprocessor.to_log2p1_scale(x_target)
    with np.errstate(divide="ignore", invalid="ignore"):
        t, p = stats.ttest_ind(b, a, axis=0, equal_var=False)
    t, p = np.nan_to_num(t, nan=0.0), np.nan_to_num(p, nan=1.0)
    q = stats.false_discovery_control(p) if len(p) else p
    return pd.DataFrame({"gene": list(genes), "de_log2fc": b.mean(axis=0) - a.mean(axis=0),
                         "de_t": t, "de_p": p, "de_q": q})


def core_versus_de(table: pd.DataFrame, q: float = DE_Q) -> dict:
    """How many core genes a t-test also calls (``de_q`` below ``q``), and those it does not."""
    core = table[table.core]
    not_de = core.loc[~(core.de_q < q), "gene"].tolist()
    return {"n_core_de": int(len(core) - len(not_de)), "core_not_de": not_de,
            "n_de": int((table.de_q < q).sum()), "de_q": q}


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
