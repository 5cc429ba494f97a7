"""Carrying samples of one phenotype to another: GEMDiff's bridge and the baseline maps.

Every map is chosen by the config group ``map`` (its ``_target_``) or by name in the Python
API (:data:`MAPS`), and carries samples of the model's scaled units:

- :class:`BridgeMap` (``map=bridge``, Algorithm 1): DDIM-encode with the source label to
  ``t_end``, decode with the target label; needs a diffusion model.
- :class:`MeanShiftMap` (``map=mean_shift``): add the difference of the class means of the
  training split.
- :class:`OTMap` (``map=ot``): the exact optimal-transport plan (squared Euclidean cost, POT)
  between the samples to move and the target class's training samples, applied as its
  barycentric projection: each sample goes to the plan-weighted mean of the targets it is
  sent to. It is solved on the very samples it moves, so it is a ceiling no map fitted
  beforehand can reach on new samples.
- :class:`EntropicOTMap` (``map=entropic_ot``): the entropic OT map (Pooladian & Niles-Weed
  2021) fitted between the source and target classes' training samples, then applied to the
  samples to move, which it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from gemdiff.common.choices import check_choice
from gemdiff.common.devices import check_precision
from gemdiff.data.dataset import PreparedData
from gemdiff.models.generators import BridgeOptions, Perturbation
from gemdiff.training.checkpoint import TrainedModel

Split = Literal["test", "train", "all"]


@dataclass(frozen=True)
class BridgeMap:
    """GEMDiff's bridge: ``ddim_steps`` each way, the last level ``t_end`` and classifier-free
    ``guidance`` on the decode, on ``device`` in ``precision`` (:class:`BridgeOptions`). Moved
    values below a gene's detection floor read as unexpressed."""

    ddim_steps: int = 25
    t_end: int = 990
    guidance: float = 1.0
    cycle_samples: int | None = 64  # the cycle check (cycle_error) on this many samples
    solver: str = "dpm2"  # dpm2 (second order), or ddim (the paper's, with 250 uniform steps)
    spacing: str = "logsnr"  # levels evenly in log-SNR, or in t (uniform)
    device: str = "auto"  # auto (a CUDA GPU where there is one), cpu, cuda, cuda:N
    precision: str = "32"  # 32, or bf16 autocast of the network
    name: ClassVar[str] = "bridge"

    def __post_init__(self):
        object.__setattr__(self, "precision", check_precision(self.precision))

    def apply(self, model: TrainedModel, x: np.ndarray, source: int, target: int,
              record: int = 0, progress: bool = False) -> Perturbation:
        options = BridgeOptions(self.ddim_steps, self.t_end, self.guidance, record, True,
                                progress, self.cycle_samples, self.solver, self.spacing,
                                self.device, self.precision)
        res = model.generator.bridge(x, source, target, options)
        res.x_moved = model.preprocessor.snap_unexpressed(res.x_moved)
        return res


@dataclass(frozen=True)
class MeanShiftMap:
    """Move each sample by the difference of the target and source training means."""

    name: ClassVar[str] = "mean_shift"

    def apply(self, model: TrainedModel, x: np.ndarray, source: int, target: int,
              record: int = 0, progress: bool = False) -> Perturbation:
        data = model.data()
        return Perturbation(x, mean_shift(x, data.x_train, data.y_train, source, target))


@dataclass(frozen=True)
class OTMap:
    """Barycentric projection of the exact OT plan from the samples to the target class's
    training samples (uniform weights, squared Euclidean cost)."""

    name: ClassVar[str] = "ot"

    def apply(self, model: TrainedModel, x: np.ndarray, source: int, target: int,
              record: int = 0, progress: bool = False) -> Perturbation:
        data = model.data()
        return Perturbation(x, ot_map(x, data.x_train[data.y_train == target]))


@dataclass(frozen=True)
class EntropicOTMap:
    """The entropic OT map from the source class's training samples to the target class's,
    applied out of sample; ``epsilon``: the entropic regularisation as a share of the mean
    squared distance between the two classes (smaller: nearer the exact plan, each sample sent
    to fewer targets)."""

    epsilon: float = 0.05
    name: ClassVar[str] = "entropic_ot"

    def apply(self, model: TrainedModel, x: np.ndarray, source: int, target: int,
              record: int = 0, progress: bool = False) -> Perturbation:
        data = model.data()
        fitted = entropic_map(data.x_train[data.y_train == source],
                              data.x_train[data.y_train == target], self.epsilon)
        return Perturbation(x, fitted(x))


PerturbationMap = BridgeMap | MeanShiftMap | OTMap | EntropicOTMap
MAPS: dict[str, type] = {m.name: m for m in (BridgeMap, MeanShiftMap, OTMap, EntropicOTMap)}


def mean_shift(x: np.ndarray, x_train: np.ndarray, y_train: np.ndarray, source: int,
               target: int) -> np.ndarray:
    """``x`` moved by the difference of the target and source means of the training data,
    within the data's range."""
    shift = x_train[y_train == target].mean(axis=0) - x_train[y_train == source].mean(axis=0)
    return np.clip(x + shift, -1.0, 1.0).astype(np.float32)


def ot_map(x: np.ndarray, x_target: np.ndarray) -> np.ndarray:
    """Barycentric projection of the exact OT plan from ``x`` to ``x_target``."""
    import ot

    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(x_target), 1.0 / len(x_target))
    plan = ot.emd(a, b, ot.dist(x.astype(np.float64), x_target.astype(np.float64)))
    return (plan @ x_target / a[:, None]).astype(np.float32)


def entropic_map(x_source: np.ndarray, x_target: np.ndarray, epsilon: float = 0.05):
    """The entropic OT map fitted on ``x_source`` -> ``x_target`` (squared Euclidean cost),
    as a function of new samples.

    Sinkhorn (POT, log domain) gives the target-side dual potential g at regularisation
    eps = ``epsilon`` times the mean cost; the map is then defined everywhere:

        T(x) = sum_j y_j exp((g_j - |x - y_j|^2) / eps) / sum_j exp((g_j - |x - y_j|^2) / eps)

    On the fitted source samples it is the barycentric projection of the entropic plan.
    """
    import ot
    from scipy.special import softmax

    xs, xt = x_source.astype(np.float64), x_target.astype(np.float64)
    cost = ot.dist(xs, xt)
    eps = epsilon * float(cost.mean())
    a, b = np.full(len(xs), 1.0 / len(xs)), np.full(len(xt), 1.0 / len(xt))
    log = ot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", numItermax=5000, log=True)[1]
    g = eps * log["log_v"]

    def apply(x: np.ndarray) -> np.ndarray:
        logits = (g[None, :] - ot.dist(x.astype(np.float64), xt)) / eps  # (n, n_target)
        return (softmax(logits, axis=1) @ xt).astype(np.float32)

    return apply


def split_samples(data: PreparedData, split: str):
    """(x, y, ids) of a split (test, train or all), then (x, y) of the other split.

    The other split gives baselines between two real samples; for ``all`` it is the test split.
    """
    check_choice("split", split, Split)
    if split == "all":
        return (np.concatenate([data.x_train, data.x_test]),
                np.concatenate([data.y_train, data.y_test]),
                data.train_ids + data.test_ids, data.x_test, data.y_test)
    if split == "train":
        return data.x_train, data.y_train, data.train_ids, data.x_test, data.y_test
    return data.x_test, data.y_test, data.test_ids, data.x_train, data.y_train
