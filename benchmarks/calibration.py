"""What the sampler's calibration costs and what a smaller one loses.

    python benchmarks/calibration.py <run>/checkpoints/last.ckpt [more checkpoints] \
        [--budgets 41x640 21x640 21x320 11x320] [--seeds 0 1 2] [--steps 100] [--reference 81x2560]

For each checkpoint and each budget (levels x rows per class and level) the calibration is
measured on the model's training data with its EMA weights (the checkpoint's own table is
ignored) and timed; its table is compared with a reference table of 4 times the default's rows
at 81 levels (RMS over timesteps 0..T-1, classes and genes of the interpolated offsets, in noise
units); then synthetic samples of the test split's class counts (DDIM, ``--steps`` steps, one
draw per seed) are scored against the real test split: classifier two-sample AUC (0.5: not told
apart) and MMD ratio (MMD to real test over real train's). ``0x0`` is the uncalibrated network.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from gemdiff.api.model import GEMDiff
from gemdiff.models.calibration import CalibrationOptions, calibrate


def offsets(diffusion, n_rows: int) -> torch.Tensor:
    """The calibration's offsets at every timestep and label row, (T, rows, genes)."""
    t = torch.arange(diffusion.timesteps)
    return torch.stack([diffusion.output_offset(t, torch.full_like(t, r))
                        for r in range(n_rows)], 1)


def measure(model: GEMDiff, levels: int, rows: int) -> tuple[float, torch.Tensor | None]:
    """Calibrate the model's network at a budget; (seconds, offsets) or (0, None) for none."""
    m = model._trained()
    d, net = m.generator.diffusion, m.generator.denoiser
    d.calibration = d.calibration_levels = None
    if rows == 0:
        return 0.0, None
    data = m.data()
    null = net.null_class if net.class_emb is not None else None
    t0 = time.perf_counter()
    calibrate(d, net, data.x_train, data.y_train, len(data.classes), null,
              CalibrationOptions(rows=rows, levels=levels, device="cpu"))
    return time.perf_counter() - t0, offsets(d, len(data.classes) + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--budgets", nargs="+", default=["41x640", "21x640", "21x320", "11x320",
                                                     "0x0"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=100, help="DDIM steps of the scored samples")
    ap.add_argument("--reference", default="81x2560",
                    help="the budget RMS is measured against; 0x0: none (saves its time)")
    args = ap.parse_args()
    budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets]
    logging.getLogger("gemdiff").setLevel(logging.ERROR)  # the samples' warnings
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for path in args.ckpts:
        model = GEMDiff.load(path)
        net = model._trained().generator.denoiser.config
        print(f"\n{path}: {len(model.genes)} genes, {net.tokenization} tokens, width "
              f"{net.d_model}, depth {net.depth}, {model.global_step} steps")
        _, reference = measure(model, *(int(v) for v in args.reference.split("x")))
        print(f"{'budget':>8} {'seconds':>8} {'RMS vs ref':>10} {'C2ST':>14} {'MMD ratio':>14}")
        for levels, rows in budgets:
            seconds, table = measure(model, levels, rows)
            rms = float("nan") if table is None or reference is None else float(
                (table - reference).pow(2).mean().sqrt())
            scores = [model.sample(sampler="ddim", ddim_steps=args.steps, seed=s, umap=False,
                                   device="cpu").uns["metrics"] for s in args.seeds]
            c2st = np.array([s["c2st_auc"] for s in scores])
            mmd = np.array([s["mmd_ratio"] for s in scores])
            print(f"{levels:>3}x{rows:<4} {seconds:8.1f} {rms:10.4f} "
                  f"{c2st.mean():.3f} ± {c2st.std(ddof=1) if len(c2st) > 1 else 0:.3f} "
                  f"{mmd.mean():7.2f} ± {mmd.std(ddof=1) if len(mmd) > 1 else 0:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
