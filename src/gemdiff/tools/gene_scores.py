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


def _trigamma_inverse(x: float) -> float:
    """The y > 0 with trigamma(y) = x, by Newton's method from y = 0.5 + 1 / x (Smyth 2004)."""
    from scipy.special import polygamma

    if x > 1e7:
        return 1.0 / np.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = float(polygamma(1, y))
        step = tri * (1.0 - tri / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def moderated_t(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """limma's empirical-Bayes moderated t of ``b`` against ``a`` per column (Smyth 2004).

    A two-group linear model per gene (pooled variance ``s2`` on ``d = n_a + n_b - 2``
    degrees of freedom) whose variances are shrunk toward a prior fitted to all genes: the
    prior's ``d0`` and ``s0^2`` come from the moments of ``log s2`` (``fitFDist``), each gene's
    posterior variance is ``(d0 s0^2 + d s2) / (d0 + d)``, and t has ``d0 + d`` degrees of
    freedom (capped at the pooled total, as limma does). Returns t, two-sided p, ``d0`` and
    ``s0^2``. Written here rather than imported: the one Python port (inmoose) builds from
    source with a compiler and brings statsmodels; ``tests/test_de.py`` checks this against it
    where it is installed.
    """
    from scipy import special, stats

    n_a, n_b = len(a), len(b)
    d = n_a + n_b - 2
    diff = b.mean(axis=0) - a.mean(axis=0)
    s2 = (((a - a.mean(axis=0)) ** 2).sum(axis=0) + ((b - b.mean(axis=0)) ** 2).sum(axis=0)) / d
    unscaled = np.sqrt(1.0 / n_a + 1.0 / n_b)
    floor = 1e-5 * (float(np.median(s2)) or 1.0)  # limma's floor on zero variances
    s2_floored = np.maximum(s2, floor)
    e = np.log(s2_floored) - special.digamma(d / 2) + np.log(d / 2)
    evar = e.var(ddof=1) - float(special.polygamma(1, d / 2)) if len(e) > 1 else 0.0
    if evar > 0:
        d0 = 2.0 * _trigamma_inverse(evar)
        s0 = float(np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2)))
        post = (d0 * s0 + d * s2) / (d0 + d)
    else:
        d0, s0 = np.inf, float(s2_floored.mean())  # no spread beyond sampling noise
        post = np.full_like(s2, s0)
    df = min(d0 + d, d * len(s2))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(post > 0, diff / (unscaled * np.sqrt(post)), 0.0)
    return t, 2.0 * stats.t.sf(np.abs(t), df), d0, s0


def differential_expression(preprocessor: Preprocessor, genes: Sequence[str],
                            x_source: np.ndarray, x_target: np.ndarray) -> pd.DataFrame:
    """Differential expression of target against source samples per gene, on log2(n + 1): the
    log2 fold change (target mean - source mean); Welch's t, its two-sided p and
    Benjamini-Hochberg q; and limma's moderated t (:func:`moderated_t`) with its p and q.

    The baseline a perturbation's core genes are read against: a gene the bridge moves that a
    t-test also finds, or one it does not. Constant genes in both groups get t = 0, p = 1.
    """
    from scipy import stats

    a = preprocessor.to_log2p1_scale(x_source)
    b = preprocessor.to_log2p1_scale(x_target)
    with np.errstate(divide="ignore", invalid="ignore"):
        t, p = stats.ttest_ind(b, a, axis=0, equal_var=False)
    t, p = np.nan_to_num(t, nan=0.0), np.nan_to_num(p, nan=1.0)
    bh = stats.false_discovery_control
    table = pd.DataFrame({"gene": list(genes), "de_log2fc": b.mean(axis=0) - a.mean(axis=0),
                          "de_t": t, "de_p": p, "de_q": bh(p) if len(p) else p})
    if len(a) + len(b) > 2 and len(genes):
        mt, mp, _, _ = moderated_t(a, b)
        table["de_mod_t"], table["de_mod_p"], table["de_mod_q"] = mt, mp, bh(mp)
    return table


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
