"""Sampling solvers side by side: network calls, seconds and sample quality.

    python benchmarks/sample_solvers.py <run>/checkpoints/last.ckpt [more checkpoints] \
        [--solvers ddpm:1000 ddim:100 dpm2:25 dpm2:50] [--seeds 0 1 2]

For each checkpoint (calibrated at the default budget first when it was trained without) and
each solver, synthetic samples of the test split's class counts are drawn once per seed on the
CPU, timed (the sampling alone), then scored against the real test split: classifier
two-sample AUC (C2ST, 0.5: not told apart), MMD ratio (MMD to real test over real train's) and
the median per-gene SD of a class's samples over its training SD. ``ddpm`` always runs all T
ancestral steps; ``ddim`` is the first-order deterministic solver on levels even in t,
``dpm2`` DPM-Solver++(2M) on levels even in log-SNR (the bridge's default).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from gemdiff.api.model import GEMDiff
from gemdiff.models.calibration import CalibrationOptions


def ensure_calibrated(model: GEMDiff) -> str:
    m = model._trained()
    if m.generator.diffusion.calibration is not None:
        return "its own calibration"
    data = m.data()
    t0 = time.perf_counter()
    m.generator.calibrate(data.x_train, data.y_train, len(data.classes),
                          CalibrationOptions(device="cpu"))
    return f"calibrated here, {time.perf_counter() - t0:.1f} s"


def mean_sd(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--solvers", nargs="+", default=["ddpm:1000", "ddim:100", "dpm2:25",
                                                     "dpm2:50"],
                    help="sampler:steps (ddpm's steps are always T)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    logging.getLogger("gemdiff").setLevel(logging.ERROR)  # the samples' warnings
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for path in args.ckpts:
        model = GEMDiff.load(path)
        net = model._trained().generator.denoiser.config
        how = ensure_calibrated(model)
        n = int(model._trained().data().y_test.size)
        print(f"\n{path}: {len(model.genes)} genes, {net.tokenization} tokens, width "
              f"{net.d_model}, depth {net.depth}, {model.global_step} steps ({how}); "
              f"{n} samples per draw")
        print(f"{'solver':>10} {'calls':>6} {'seconds':>8} {'C2ST':>14} {'MMD ratio':>14} "
              f"{'SD ratio':>14}")
        for spec in args.solvers:
            sampler, steps = spec.split(":")
            seconds, c2st, mmd, sd = [], [], [], []
            for seed in args.seeds:
                t0 = time.perf_counter()
                synth = model.sample(sampler=sampler, ddim_steps=int(steps), seed=seed,
                                     metrics=False, umap=False, device="cpu")
                seconds.append(time.perf_counter() - t0)
                scores = model.score(synth, seed=seed, device="cpu")
                c2st.append(scores["c2st_auc"])
                mmd.append(scores["mmd_ratio"])
                sd.append(scores["sd_ratio"])
            calls = model._trained().generator.diffusion.timesteps if sampler == "ddpm" \
                else len(model._trained().generator.diffusion.ddim_levels(
                    int(steps), spacing="logsnr" if sampler == "dpm2" else "uniform")) - 1
            print(f"{spec:>10} {calls:>6} {np.median(seconds):8.2f} {mean_sd(c2st):>14} "
                  f"{mean_sd(mmd):>14} {mean_sd(sd):>14}", flush=True)


if __name__ == "__main__":
    main()
