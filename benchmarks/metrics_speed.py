"""Seconds per augmentation metric, on a quiet machine and while another job shares the cores.

    python benchmarks/metrics_speed.py [--repeats 3]

The breast example's sizes: 788 training, 393 test and 393 synthetic samples of 16 genes
(random, two classes). Times each part of ``augmentation_metrics`` and the whole, and the
classifier two-sample test as it ran before it was held to one OpenMP thread ("c2st, all
threads"). "loaded": another process multiplies matrices on every core meanwhile
(``threads_under_load.py``'s load). Medians over ``--repeats``; the first UMAP of a process
includes numba's compilation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def parts():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from gemdiff.evaluation.embedding import UmapParams, umap_2d
    from gemdiff.evaluation.metrics import augmentation_metrics, c2st_auc

    rng = np.random.default_rng(0)

    def data(n):
        y = rng.integers(0, 2, n)
        return np.tanh(rng.normal(size=(n, 16)) + 0.5 * y[:, None]).astype(np.float32), y

    (xtr, ytr), (xte, yte), (xs, ys) = data(788), data(393), data(393)

    def c2st_all_threads():
        x, y = np.concatenate([xte, xs]), np.r_[np.zeros(len(xte)), np.ones(len(xs))]
        clf = HistGradientBoostingClassifier(max_iter=100, min_samples_leaf=20, random_state=0)
        cross_val_predict(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                          method="predict_proba")

    return {
        "first UMAP of the process": lambda: umap_2d(np.concatenate([xte, xs]), UmapParams()),
        "UMAP": lambda: umap_2d(np.concatenate([xte, xs]), UmapParams()),
        "c2st, one thread (now)": lambda: c2st_auc(xte, xs),
        "c2st, all threads (before)": c2st_all_threads,
        "augmentation_metrics, no UMAP": lambda: augmentation_metrics(xtr, ytr, xte, yte, xs, ys),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loaded", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        for name, f in parts().items():
            t0 = time.perf_counter()
            f()
            print(f"{name}\t{time.perf_counter() - t0}", flush=True)
        return
    load = Path(__file__).with_name("threads_under_load.py")
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for loaded in (False, True):
            hog = subprocess.Popen([sys.executable, str(load), "--load"],
                                   env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())}
                                   ) if loaded else None
            if hog:
                time.sleep(3)
            try:
                out = subprocess.run([sys.executable, __file__, "--once"], capture_output=True,
                                     text=True, check=True).stdout
            finally:
                if hog:
                    hog.kill()
                    hog.wait()
            for line in out.strip().splitlines():
                name, sec = line.split("\t")
                times.setdefault((name, loaded), []).append(float(sec))
    print(f"{os.cpu_count()} cores; seconds, median of {args.repeats}")
    print(f"{'part':34s} {'quiet':>8s} {'loaded':>8s}")
    for name in dict.fromkeys(n for n, _ in times):
        print(f"{name:34s} {statistics.median(times[(name, False)]):8.2f} "
              f"{statistics.median(times[(name, True)]):8.2f}")


if __name__ == "__main__":
    main()
