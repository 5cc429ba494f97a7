"""Seconds to score 1,000 synthetic cells against the data of a large model.

    python benchmarks/metrics_scale.py [--genes 2000] [--cells 10000 100000]

Random data of two classes (a class shift of 0.5 SD on every gene, values through tanh as on
the model's scale): the model's data are ``cells`` samples (two thirds train, one third test)
of ``genes`` genes, the synthetic set 1,000 samples. Times ``augmentation_metrics`` as
``GEMDiff.sample`` runs it (every set read through a seeded draw of at most ``METRIC_ROWS``
samples, the classifier two-sample test on 50 principal components) and, at the smallest size
only, with every sample and every gene (``max_rows=None``, ``dims=None``), what it cost before.
No UMAP (``umap=False``). One run per size: the sizes differ by far more than the noise.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from unittest import mock

import numpy as np


def data(n: int, genes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    x = np.tanh(0.3 * rng.normal(size=(n, genes)).astype(np.float32) + 0.15 * y[:, None])
    return x.astype(np.float32), y


def main() -> None:
    from gemdiff.evaluation import metrics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| cells | genes | bounded (s) | every sample and gene (s) |")
    print("| ---: | ---: | ---: | ---: |")
    for i, n in enumerate(args.cells):
        x, y = data(n, args.genes, rng)
        cut = 2 * n // 3
        xs, ys = data(1000, args.genes, rng)
        t0 = time.perf_counter()
        metrics.augmentation_metrics(x[:cut], y[:cut], x[cut:], y[cut:], xs, ys)
        bounded = time.perf_counter() - t0
        whole = "not run"
        if i == 0:
            every_gene = partial(metrics.c2st_auc, dims=None)
            with mock.patch.object(metrics, "c2st_auc", every_gene):
                t0 = time.perf_counter()
                metrics.augmentation_metrics(x[:cut], y[:cut], x[cut:], y[cut:], xs, ys,
                                             max_rows=None)
                whole = f"{time.perf_counter() - t0:.1f}"
        print(f"| {n:,} | {args.genes:,} | {bounded:.1f} | {whole} |", flush=True)


if __name__ == "__main__":
    main()
