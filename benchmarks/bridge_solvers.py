"""The bridge's quality per network call: solvers and level spacings at a few step counts.

    python benchmarks/bridge_solvers.py <run>/checkpoints/last.ckpt [--source tumor --target normal]

Perturbs the model's test samples of ``--source`` to ``--target`` (``GEMDiff.perturb``, t_end 990,
guidance 1, the cycle check on 64 samples) with each solver, spacing and step count, and prints
the cycle error, the share an SVM calls target (beside its share on real target samples), the
MMD ratio to real target samples and the wall time.
"""

from __future__ import annotations

import argparse
import time

from gemdiff.api.model import GEMDiff
from gemdiff.tools.perturbation import BridgeMap

RUNS = [("ddim", "uniform", 250), ("ddim", "uniform", 50), ("dpm2", "uniform", 50),
        ("ddim", "logsnr", 50), ("dpm2", "logsnr", 50), ("dpm2", "logsnr", 25),
        ("dpm2", "logsnr", 15)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--source", default="tumor")
    ap.add_argument("--target", default="normal")
    args = ap.parse_args()
    model = GEMDiff.load(args.ckpt)
    for solver, spacing, steps in RUNS:
        t0 = time.perf_counter()
        res = model.perturb(source=args.source, target=args.target, split="test", umap=False,
                            map=BridgeMap(steps, 990, 1.0, 64, solver, spacing))
        m = res.uns["metrics"]
        print(f"{solver:5s} {spacing:8s} {steps:4d} steps: cycle error {m['cycle_error']:.4f}, "
              f"called target {m['frac_to_target']:.3f} (real {m['frac_to_target_real']:.3f}), "
              f"MMD ratio {m['mmd_to_target_ratio']:.2f}, {time.perf_counter() - t0:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
