"""Cluster potential of a gene subset: how well its expression separates the phenotypes.

The score is the paper's: the silhouette by class of a 2-D UMAP of the samples (n_neighbors=90,
min_dist=0.3). Also computed: the silhouette on a class-balanced draw of the samples and the
silhouette in gene space (no UMAP). Scoring many subsets runs in parallel, with each result
appended to a cache file as it arrives so that an interrupted screen resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
import logging
from typing import Annotated, Callable, Iterable, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import stats

from gemdiff.common.choices import check_choice
from gemdiff.evaluation.embedding import UmapParams, umap_2d
from gemdiff.evaluation.metrics import silhouette

log = logging.getLogger("gemdiff.screen")

Balanced = Literal["embedding", "refit", "none"]
Score = Literal["umap", "gene"]


def balanced_rows(y: np.ndarray, seed: int) -> np.ndarray:
    """Sorted row indices of a draw with the smallest class's count from every class."""
    rng = np.random.default_rng(seed)
    n = np.bincount(y)[np.unique(y)].min()
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False)
                                   for c in np.unique(y)]))


def score_subset(x: np.ndarray, y: np.ndarray, balanced: np.ndarray | None,
                 umap: UmapParams, score: str = "umap", balanced_mode: str = "embedding"
                 ) -> dict[str, float]:
    """Scores of one subset: ``x`` holds the subset's genes for every sample.

    ``silhouette`` is the primary score (on the UMAP embedding, or in gene space when ``score``
    is ``gene``), ``silhouette_balanced`` the same on the class-balanced rows (``embedding``:
    those rows of the embedding of all samples; ``refit``: their own UMAP) and
    ``silhouette_gene`` the silhouette in gene space.
    """
    gene = silhouette(x, y)
    if score == "gene":
        out = {"silhouette": gene}
        if balanced is not None:
            out["silhouette_balanced"] = silhouette(x[balanced], y[balanced])
        return out | {"silhouette_gene": gene}
    emb = umap_2d(x, umap)
    out = {"silhouette": silhouette(emb, y)}
    if balanced is not None:
        emb_b = umap_2d(x[balanced], umap) if balanced_mode == "refit" else emb[balanced]
        out["silhouette_balanced"] = silhouette(emb_b, y[balanced])
    return out | {"silhouette_gene": gene}


@dataclass(frozen=True)
class ScoreSettings:
    """Everything besides the genes that a subset's scores depend on."""

    umap: UmapParams
    score: str = "umap"
    balanced: str = "embedding"

    def __post_init__(self):
        check_choice("score", self.score, Score)
        check_choice("balanced", self.balanced, Balanced)


class _CacheLine(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    key: Annotated[str, Field(min_length=1)]
    scores: dict[str, Optional[float]]

    @field_validator("scores")
    @classmethod
    def _has_silhouette(cls, v):
        if "silhouette" not in v:
            raise ValueError("no silhouette")
        return v


def _score_chunk(chunk: list[tuple[str, np.ndarray]], y: np.ndarray, balanced: np.ndarray | None,
                 settings: ScoreSettings) -> list[tuple[str, dict[str, float]]]:
    return [(key, score_subset(x, y, balanced, settings.umap, settings.score, settings.balanced))
            for key, x in chunk]


class ScoreCache:
    """Scores by key, one JSON line per subset appended as results arrive.

    Every line read back is checked (a key, and finite-or-null numbers for every score, the
    silhouette among them): a line cut short by a kill, left as NUL bytes by a crash while
    appending, or edited into other types is dropped, its subset scored again, and the number
    dropped is logged. Appending starts on a new line, after whatever such a line left.
    """

    def __init__(self, path: str | Path):
        from pydantic import ValidationError

        self.path = Path(path)
        self.scores: dict[str, dict[str, float]] = {}
        self.dropped = 0
        if self.path.is_file():
            # Read line by line, not as a text file checked whole: the package wrote it, and a
            # bad line costs that line only.
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        row = _CacheLine.model_validate_json(line)
                    except ValidationError:
                        self.dropped += 1
                        continue
                    self.scores[row.key] = row.scores
        if self.dropped:
            log.warning("%s: %d line(s) unreadable or of the wrong types were dropped; their "
                        "subsets are scored again", self.path, self.dropped)

    def __contains__(self, key: str) -> bool:
        return key in self.scores

    def add_all(self, rows: Iterable[tuple[str, dict[str, float]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as f:
            f.seek(0, 2)
            if f.tell() and (f.seek(-1, 2), f.read(1))[1] != b"\n":
                f.write(b"\n")  # the last line was cut: the next one starts on its own line
        with self.path.open("a") as f:
            for key, scores in rows:
                self.scores[key] = scores
                f.write(json.dumps({"key": key, "scores": scores}) + "\n")
            f.flush()


def subset_keys(x: np.ndarray, y: np.ndarray, balanced: np.ndarray | None,
                settings: ScoreSettings, columns: Sequence[Sequence[int]]) -> list[str]:
    """A cache key per subset: a hash of its values, the labels, the draw and the settings."""
    base = hashlib.sha1(json.dumps(asdict(settings), sort_keys=True).encode())
    base.update(np.ascontiguousarray(y).tobytes())
    base.update(b"none" if balanced is None else np.ascontiguousarray(balanced).tobytes())
    keys = []
    for cols in columns:
        h = base.copy()
        h.update(np.ascontiguousarray(x[:, list(cols)]).tobytes())
        keys.append(h.hexdigest())
    return keys


def score_many(x: np.ndarray, y: np.ndarray, columns: Sequence[Sequence[int]],
               settings: ScoreSettings, cache: ScoreCache, balanced: np.ndarray | None = None,
               n_jobs: int = 1, chunk_size: int = 4,
               progress: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """Score every column subset of ``x`` (samples x genes) in parallel, through ``cache``.

    Subsets already in the cache are not recomputed; new results are appended to it chunk by
    chunk, so stopping at any point loses at most the chunks in flight. ``progress`` is called
    with the number of subsets finished by each chunk (cached ones first).
    """
    keys = subset_keys(x, y, balanced, settings, columns)
    todo, seen = [], set()
    for key, cols in zip(keys, columns, strict=True):
        if key not in cache and key not in seen:
            seen.add(key)
            todo.append((key, np.ascontiguousarray(x[:, list(cols)])))
    if progress:
        progress(len(keys) - len(todo))
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    if n_jobs == 1 or len(chunks) <= 1:
        results = (_score_chunk(c, y, balanced, settings) for c in chunks)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_score_chunk)(c, y, balanced, settings) for c in chunks)
    for rows in results:
        cache.add_all(rows)
        if progress:
            progress(len(rows))
    return [cache.scores[k] for k in keys]


def empirical_p(scores: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p-value of each score against a null sample: (1 + #null >= s) / (1 + n)."""
    null = np.sort(null[np.isfinite(null)])
    above = len(null) - np.searchsorted(null, scores, side="left")
    p = (1.0 + above) / (1.0 + len(null))
    return np.where(np.isfinite(scores), p, np.nan)


@dataclass
class ScreenStats:
    """Subset scores against the random control sets."""

    subset_mean: float
    subset_sd: float
    control_mean: float
    control_sd: float
    t: float
    p_student: float  # Student's t-test (equal variances), as in the paper
    p_welch: float
    high_threshold: float
    low_threshold: float


def compare_to_control(subsets: np.ndarray, control: np.ndarray, flag_sd: float = 1.0,
                       reference: str = "subsets") -> ScreenStats:
    """t-tests of the subset scores against the control and the high/low thresholds:
    mean +- ``flag_sd`` SD of the subsets' scores (``reference="subsets"``) or the control's."""
    s, c = subsets[np.isfinite(subsets)], control[np.isfinite(control)]
    if len(c) >= 2 and len(s) >= 2:
        t, p = stats.ttest_ind(s, c, equal_var=True)
        p_welch = stats.ttest_ind(s, c, equal_var=False).pvalue
    else:
        t = p = p_welch = float("nan")
    ref = s if reference == "subsets" else c
    mean, sd = float(np.mean(ref)), float(np.std(ref, ddof=1)) if len(ref) > 1 else 0.0
    return ScreenStats(float(np.mean(s)), float(np.std(s, ddof=1)) if len(s) > 1 else 0.0,
                       float(np.mean(c)) if len(c) else float("nan"),
                       float(np.std(c, ddof=1)) if len(c) > 1 else float("nan"),
                       float(t), float(p), float(p_welch),
                       mean + flag_sd * sd, mean - flag_sd * sd)


def flags(scores: np.ndarray, st: ScreenStats) -> np.ndarray:
    """``high`` above the high threshold, ``low`` below the low one, else empty."""
    return np.where(scores > st.high_threshold, "high",
                    np.where(scores < st.low_threshold, "low", ""))
