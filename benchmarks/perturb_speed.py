"""Seconds to perturb samples through a full DDIM bridge (Algorithm 1), batched.

    python benchmarks/perturb_speed.py [--samples 663] [--steps 1000] [--ckpt last.ckpt]

Encodes ``--samples`` samples of 16 genes with the source label through ``--steps`` DDIM steps
and decodes them with the target label through as many, as ``gemdiff.perturb`` does (all
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

from gemdiff.checkpoint import TrainedModel, load_checkpoint
from gemdiff.data.preprocess import Preprocessor
from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
from gemdiff.models.gaussian import GaussianDiffusion
from gemdiff.perturb import perturb


def untrained(tokenization: str) -> TrainedModel:
    torch.manual_seed(0)
    net = TransformerDenoiser(DenoiserConfig(16, 2, d_model=128, depth=4,
                                             tokenization=tokenization)).eval()
    pre = Preprocessor().fit(np.random.default_rng(0).uniform(0, 10, (100, 16)))
    return TrainedModel(net, GaussianDiffusion(), pre, [f"g{i}" for i in range(16)],
                        ["normal", "tumor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=663)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ckpt", default=None, help="a trained checkpoint (optional)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} "
          f"samples x 16 genes, {args.steps} encode + {args.steps} decode steps, t_end 999")
    models = ({"checkpoint": load_checkpoint(args.ckpt)} if args.ckpt else
              {"single token": untrained("single"), "gene tokens": untrained("gene")})
    for name, model in models.items():
        x = np.random.default_rng(1).uniform(-1, 1, (args.samples, len(model.genes)))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            perturb(model, x, 1, 0, steps=args.steps, t_end=999, cycle=False)
            times.append(time.perf_counter() - t0)
        print(f"{name:14s} median {statistics.median(times):6.2f} s, best {min(times):6.2f} s "
              f"({2 * args.steps / min(times):.0f} network calls/s)", flush=True)


if __name__ == "__main__":
    main()
