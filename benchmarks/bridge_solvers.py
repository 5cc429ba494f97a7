"""The bridge's quality per network call: DDIM against DPM-Solver++(2M) at a few step counts.

    python benchmarks/bridge_solvers.py <run>/checkpoints/last.ckpt

Perturbs the model's test tumours to normal (``GEMDiff.perturb``, t_end 990, guidance 1, the
cycle check on 64 samples) with each solver and step count, and prints the cycle error, the
share an SVM calls normal (beside its share on real normals), the MMD ratio to real normals and
the wall time.
"""

import sys
import time

from gemdiff.api.model import GEMDiff
from gemdiff.tools.perturbation import BridgeMap

m = GEMDiff.load(sys.argv[1])
for solver, steps in [("ddim", 250), ("ddim", 50), ("dpm2", 50), ("ddim", 25), ("dpm2", 25)]:
    t0 = time.perf_counter()
    a = m.perturb(source="tumor", target="normal", split="test", umap=False,
                  map=BridgeMap(steps, 990, 1.0, 64, solver))
    dt = time.perf_counter() - t0
    mm = a.uns["metrics"]
    print(f"{solver} {steps:4d}: cycle {mm['cycle_error']:.4f} frac {mm['frac_to_target']:.3f} "
          f"(real {mm['frac_to_target_real']:.3f}) mmd_ratio {mm['mmd_to_target_ratio']:.2f} "
          f"{dt:.1f} s", flush=True)
