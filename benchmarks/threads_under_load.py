"""Training steps per second on a quiet machine and on one another job shares, per thread setting.

    python benchmarks/threads_under_load.py [--steps 300] [--repeats 3] [--tokenization gene]
    python benchmarks/threads_under_load.py --genes 16 --width 128 --depth 4 --batch 32

Each setting trains the default model (32 genes, width 64, depth 2, batch 64, the package's
default tokenisation; the options change each) for
``--steps`` optimizer steps in a fresh process and prints steps per second after a 30-step
warm-up: with PyTorch's default threads (all cores; OpenMP threads spin while they wait), with
``OMP_WAIT_POLICY=PASSIVE`` (they sleep instead), and with one thread. "loaded" runs the same
while another process multiplies matrices on as many threads as there are cores (another
training job). Settings and loads are interleaved; medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {"default threads": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "1 thread": {"OMP_NUM_THREADS": "1"}}


def worker(args) -> None:
    import torch

    from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
    from gemdiff.models.diffusion import GaussianDiffusion

    torch.manual_seed(0)
    tokens = {"tokenization": args.tokenization} if args.tokenization else {}
    net = TransformerDenoiser(DenoiserConfig(args.genes, 2, d_model=args.width, depth=args.depth,
                                             **tokens))
    diffusion = GaussianDiffusion()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x, y = torch.rand(512, args.genes) * 2 - 1, torch.randint(2, (512,))
    warm, t0, steps = 30, None, args.steps
    for i in range(steps + warm):
        if i == warm:
            t0 = time.perf_counter()
        idx = torch.randint(len(x), (args.batch,))
        loss = diffusion.loss(lambda xt, t, c: net(xt, t, c), x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    print(steps / (time.perf_counter() - t0))


def load() -> None:
    import torch

    a = torch.randn(512, 512)
    while True:
        a = torch.tanh(a @ a)


def run(setting: dict, loaded: bool, model: list[str]) -> float:
    env = {**os.environ, **setting}
    hog = None
    if loaded:
        hog = subprocess.Popen([sys.executable, __file__, "--load"],
                               env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())})
        time.sleep(3)
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", *model], env=env,
                             capture_output=True, text=True, check=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokenization", choices=["gene", "patch", "single"], default=None,
                    help="the network's tokenisation (default: the package's)")
    ap.add_argument("--genes", type=int, default=32)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.load:
        return load()
    model = [f"--{k}={getattr(args, k)}" for k in ("steps", "genes", "width", "depth", "batch")]
    if args.tokenization:
        model.append(f"--tokenization={args.tokenization}")
    rates: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for loaded in (False, True):
            for name, setting in SETTINGS.items():
                rates.setdefault((name, loaded), []).append(run(setting, loaded, model))
    print(f"{os.cpu_count()} cores; {' '.join(model)}; steps/s, median (min - max) of "
          f"{args.repeats}")
    print(f"{'setting':28s} {'quiet':>24s} {'loaded':>24s}")
    for name in SETTINGS:
        cells = []
        for loaded in (False, True):
            r = rates[(name, loaded)]
            cells.append(f"{statistics.median(r):7.1f} ({min(r):5.1f} - {max(r):5.1f})")
        print(f"{name:28s} {cells[0]:>24s} {cells[1]:>24s}")


if __name__ == "__main__":
    main()
