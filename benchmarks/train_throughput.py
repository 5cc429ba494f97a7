"""Optimizer steps per second: the Lightning training app against a bare PyTorch loop.

    python benchmarks/train_throughput.py [--steps 600] [--threads 2]

Both train the same denoiser on 16 random genes of the synthetic data, batch 32, and report
steps per second after a warm-up. The gap between them is Lightning's per-step overhead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from gemdiff.cli import compose_config
from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
from gemdiff.models.gaussian import GaussianDiffusion
from gemdiff.train import train

SIZES = {"breast_16 (width 128, depth 4)": (128, 4), "default (width 64, depth 2)": (64, 2)}


def bare_loop(d_model: int, depth: int, tokenization: str, steps: int) -> float:
    torch.manual_seed(0)
    net = TransformerDenoiser(DenoiserConfig(16, 2, d_model=d_model, depth=depth,
                                             tokenization=tokenization))
    diffusion = GaussianDiffusion()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x, y = torch.rand(788, 16) * 2 - 1, torch.randint(2, (788,))
    warm = 50
    for i in range(steps + warm):
        if i == warm:
            t0 = time.perf_counter()
        idx = torch.randint(788, (32,))
        loss = diffusion.loss(net, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def lightning_app(d_model: int, depth: int, tokenization: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["logger=none", "trainer.accelerator=cpu", "data.n_genes=16",
                     "data.batch_size=32", f"model.denoiser.d_model={d_model}",
                     f"model.denoiser.depth={depth}", f"model.denoiser.tokenization={tokenization}",
                     "trainer.enable_model_summary=false", "callbacks.progress_bar=null",
                     "+trainer.enable_progress_bar=false",
                     f"trainer.val_check_interval={10**9}"]
        short = compose_config(overrides + ["trainer.max_steps=50"], tmp)
        t0 = time.perf_counter()
        train(short)
        t_short = time.perf_counter() - t0
        full = compose_config(overrides + [f"trainer.max_steps={50 + steps}"], tmp + "/b")
        t0 = time.perf_counter()
        train(full)
        # Subtracting the 50-step run removes start-up (data, model, first compile) costs.
        return steps / (time.perf_counter() - t0 - t_short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} timed steps, batch 32")
    print(f"{'model':34s} {'tokens':7s} {'bare torch':>11s} {'gemdiff.train':>14s}")
    for label, (d, depth) in SIZES.items():
        for tok in ("gene", "single"):
            bare = bare_loop(d, depth, tok, args.steps)
            app = lightning_app(d, depth, tok, args.steps)
            print(f"{label:34s} {tok:7s} {bare:8.1f}/s {app:11.1f}/s", flush=True)


if __name__ == "__main__":
    main()
