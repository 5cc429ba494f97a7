"""Optimizer steps per second: the Lightning training app against a bare PyTorch loop.

    python benchmarks/train_throughput.py [--steps 1000] [--repeats 3] [--only breast_16]
                                          [--threads 1] [--compile]

Both train the same denoiser on 16 random genes of the synthetic data, batch 32, and report
optimizer steps per second after a 50-step warm-up. The gap between them is what the training
app adds per step (Lightning's loop, EMA, gradient clipping, logging); a third column runs the
bare loop with the app's recipe (label dropout, warm-up, clipping, EMA), so that the gap between
it and the app is the framework's alone. The three run interleaved, each repeat in turn.
``--compile`` trains all through ``torch.compile`` of the denoiser (``model.compile=true``); the
compilation falls in the warm-up and is printed separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import lightning as L
import torch

from gemdiff.common.config import compose_config
from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
from gemdiff.models.diffusion import GaussianDiffusion
from gemdiff.runtime.commands import train_run as train
from gemdiff.training.ema import ema_decay
from gemdiff.training.module import lr_factor

SIZES = {"breast_16 (width 128, depth 4)": (128, 4), "default (width 64, depth 2)": (64, 2)}


class StepTimer(L.Callback):
    """Times optimizer steps after a warm-up, inside the training loop (start-up excluded)."""

    rate: float = float("nan")

    def __init__(self, warmup: int = 50):
        self.warmup, self.t0 = warmup, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.t0 = time.perf_counter()
        elif trainer.global_step == trainer.max_steps and self.t0 is not None:
            type(self).rate = (trainer.max_steps - self.warmup) / (time.perf_counter() - self.t0)


def bare_loop(d_model: int, depth: int, tokenization: str, steps: int,
              compile: bool = False, recipe: str = "minimal") -> float:
    """The same model, loss and optimizer in a plain loop: the floor for the app's step time.

    ``recipe="full"`` adds what ``gemdiff.train`` does besides (label dropout, the learning-rate
    warm-up, gradient clipping at norm 1, the EMA with its warm-up), written as one would in a
    plain loop (PyTorch's foreach clipping, one foreach lerp for the EMA), so that the gap
    left is the framework's."""
    torch.manual_seed(0)
    net = TransformerDenoiser(DenoiserConfig(16, 2, d_model=d_model, depth=depth,
                                             tokenization=tokenization))
    eps = torch.compile(net, dynamic=False) if compile else net
    diffusion = GaussianDiffusion()
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
    full = recipe == "full"
    if full:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, 200, None, "none"))
        ema = [p.detach().clone() for p in params]
    x, y = torch.rand(788, 16) * 2 - 1, torch.randint(2, (788,))
    warm = 50
    t_start = time.perf_counter()
    for i in range(steps + warm):
        if i == 1 and not hasattr(bare_loop, "first_step_s"):
            bare_loop.first_step_s = time.perf_counter() - t_start
        if i == warm:
            t0 = time.perf_counter()
        idx = torch.randint(788, (32,))
        labels = y[idx]
        if full:  # label dropout to the "no class" token
            labels = torch.where(torch.rand(32) < 0.1, net.null_class, labels)
        loss = diffusion.loss(eps, x[idx], labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if full:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if full:
            sched.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, 1.0 - ema_decay(0.9999, True, i))
    return steps / (time.perf_counter() - t0)


def lightning_app(d_model: int, depth: int, tokenization: str, steps: int,
                  compile: bool = False, threads: int | None = None) -> float:
    """``gemdiff.train`` as users run it (EMA, clipping, logging, checkpoint), no progress bar;
    ``threads`` keeps the process's thread count (else the app picks one for a small network)."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["logger=none", "trainer.accelerator=cpu", "data.n_genes=16",
                     "data.batch_size=32", f"model.denoiser.d_model={d_model}",
                     f"model.denoiser.depth={depth}", f"model.denoiser.tokenization={tokenization}",
                     "trainer.enable_model_summary=false", "callbacks.progress_bar=null",
                     "trainer.enable_progress_bar=false", f"trainer.max_steps={50 + steps}",
                     f"trainer.val_check_interval={10**9}",
                     f"model.compile={compile}",
                     *([f"threads={threads}"] if threads else []),
                     "+callbacks.timer._target_=train_throughput.StepTimer"]
        train(compose_config(overrides, tmp))
        from train_throughput import StepTimer as timer  # the class Hydra instantiated

        return timer.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per cell; the median and the best are printed")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", choices=[*SIZES, "breast_16"], default=None,
                        help="one model size (breast_16 = its single-token variant only)")
    parser.add_argument("--compile", action="store_true",
                        help="train through torch.compile of the denoiser")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} timed steps, "
          f"batch 32, {args.repeats} repeats (median / best)"
          + (", torch.compile" if args.compile else ""))
    print(f"{'model':34s} {'tokens':7s} {'bare torch':>16s} {'bare + recipe':>16s} "
          f"{'gemdiff.train':>16s}  app/bare  app/recipe")
    cells = [(label, tok) for label in SIZES for tok in ("gene", "single")]
    if args.only == "breast_16":
        cells = [(next(iter(SIZES)), "single")]
    elif args.only:
        cells = [c for c in cells if c[0] == args.only]
    for label, tok in cells:
        d, depth = SIZES[label]
        bare, full, app = [], [], []
        for _ in range(args.repeats):  # interleaved, so that drift hits all three alike
            bare.append(bare_loop(d, depth, tok, args.steps, args.compile))
            full.append(bare_loop(d, depth, tok, args.steps, args.compile, recipe="full"))
            app.append(lightning_app(d, depth, tok, args.steps, args.compile, args.threads))
        fmt = lambda r: f"{statistics.median(r):6.1f} / {max(r):6.1f}"  # noqa: E731
        med = statistics.median
        print(f"{label:34s} {tok:7s} {fmt(bare):>16s} {fmt(full):>16s} {fmt(app):>16s}  "
              f"{med(app) / med(bare):7.2f}x  {med(app) / med(full):9.2f}x", flush=True)
        if args.compile:
            print(f"  first step of the first bare run (compilation): "
                  f"{bare_loop.first_step_s:.1f} s")


if __name__ == "__main__":
    main()
