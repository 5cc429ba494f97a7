"""Seconds to perturb samples through a full DDIM bridge (Algorithm 1), batched.

    python benchmarks/perturb_speed.py [--samples 663] [--steps 1000] [--solver ddim] \
        [--ckpt last.ckpt] [--bf16]

Encodes ``--samples`` samples of 16 genes with the source label through ``--steps`` steps of
``--solver`` (``ddim``, the paper's, on levels even in t; ``dpm2``, the package's default, on
levels even in log-SNR) and decodes them with the target label through as many, as
``gemdiff.perturb`` does (all
samples in one batch, inference mode, no host synchronisation inside the loop). Without
``--ckpt`` the network is an untrained breast_16-sized denoiser (width 128, depth 4): the time
does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gemdiff.data.preprocess import Preprocessor
from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
from gemdiff.models.diffusion import GaussianDiffusion
from gemdiff.models.generators import BridgeOptions, DiffusionGenerator
from gemdiff.training.checkpoint import TrainedModel, load_checkpoint


def untrained(tokenization: str) -> TrainedModel:
    torch.manual_seed(0)
    net = TransformerDenoiser(DenoiserConfig(16, 2, d_model=128, depth=4,
                                             tokenization=tokenization)).eval()
    pre = Preprocessor().fit(np.random.default_rng(0).uniform(0, 10, (100, 16)))
    return TrainedModel(DiffusionGenerator(net, GaussianDiffusion()), pre,
                        [f"g{i}" for i in range(16)], ["normal", "tumor"])


def solver_options(args) -> dict:
    return {"solver": args.solver, "spacing": "logsnr" if args.solver == "dpm2" else "uniform"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=663)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--t_end", type=int, default=999)
    parser.add_argument("--solver", choices=["ddim", "dpm2"], default="ddim",
                        help="ddim on levels even in t, or dpm2 on levels even in log-SNR")
    parser.add_argument("--ckpt", default=None, help="a trained checkpoint (optional)")
    parser.add_argument("--tokenization", nargs="+", choices=["single", "gene"],
                        default=["single", "gene"], help="the untrained networks timed")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bfloat16 autocast and report its cycle error")
    parser.add_argument("--cycle", action="store_true",
                        help="instead: the bridge with its cycle check on every sample against "
                             "on 64 of them (the default), interleaved")
    args = parser.parse_args()
    if args.cycle:
        return cycle_check(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} "
          f"samples x 16 genes, {args.steps} encode + {args.steps} decode steps of "
          f"{args.solver}, t_end {args.t_end}")
    how = solver_options(args)
    names = {"single": "single token", "gene": "gene tokens"}
    models = ({"checkpoint": load_checkpoint(args.ckpt)} if args.ckpt else
              {names[t]: untrained(t) for t in args.tokenization})
    for name, model in models.items():
        x = np.random.default_rng(1).uniform(-1, 1, (args.samples, len(model.genes)))
        if args.ckpt:  # real samples of the source class, so the cycle error means something
            data = model.data()
            x = data.x_train[data.y_train == 1][: args.samples]
        for dtype in [torch.float32] + [torch.bfloat16] * args.bf16:
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16,
                                    enabled=dtype == torch.bfloat16):
                    model.generator.bridge(x, 1, 0, BridgeOptions(args.steps, args.t_end,
                                                                  cycle=False, **how))
                times.append(time.perf_counter() - t0)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                res = model.generator.bridge(x[:200], 1, 0,
                                             BridgeOptions(args.steps, args.t_end,
                                                           cycle_samples=None, **how))
            err = float(np.abs(res.x_cycle - res.x_source).mean())
            print(f"{name:14s} {str(dtype)[6:]:8s} median {statistics.median(times):6.2f} s, "
                  f"best {min(times):6.2f} s ({2 * args.steps / min(times):.0f} network "
                  f"calls/s), cycle error {err:.2g}", flush=True)


def cycle_check(args) -> None:
    """Bridge + cycle decode on all samples against on the default 64: median wall time of
    interleaved repeats and the cycle error each reports."""
    model = load_checkpoint(args.ckpt) if args.ckpt else untrained("single")
    data = model.data() if args.ckpt else None
    x = (data.x_train[data.y_train == 1][: args.samples] if data is not None else
         np.random.default_rng(1).uniform(-1, 1, (args.samples, len(model.genes))))
    times: dict[str, list[float]] = {"all": [], "64": []}
    how = solver_options(args)
    errors = {}
    for _ in range(args.repeats):
        for name, limit in (("all", None), ("64", 64)):
            t0 = time.perf_counter()
            res = model.generator.bridge(x, 1, 0, BridgeOptions(args.steps, args.t_end,
                                                                cycle_samples=limit, **how))
            times[name].append(time.perf_counter() - t0)
            rows = np.arange(len(x)) if res.cycle_index is None else res.cycle_index
            errors[name] = float(np.abs(res.x_cycle - res.x_source[rows]).mean())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(x)} samples, {args.steps} + {args.steps} steps, t_end {args.t_end}: cycle on all "
          f"{med['all']:.2f} s (error {errors['all']:.4f}), on 64 {med['64']:.2f} s (error "
          f"{errors['64']:.4f}); {med['all'] / med['64']:.2f}x")


if __name__ == "__main__":
    main()
