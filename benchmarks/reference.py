"""gemdiff against the reference implementation's network, side by side in one process.

    python benchmarks/reference.py --reference PATH [--repeats 5] [--threads 2]

PATH is a checkout of the reference implementation (github.com/xai990/GEMDiff); its transformer,
``GPT`` in ``diffusion/mlp.py`` (which needs ``einops``), is imported from there. Both networks
have the breast example's size as the reference runs it: 16 genes in one token, width 128,
depth 4, two classes (the reference's ``learn_sigma`` output, 32 values, included). Three
figures, each repeat running both sides one after the other, medians printed:

- one network call on 663 samples (the breast example's tumours, the bridge's batch), inference;
- one training step at batch 32, as a bare loop: the noise-prediction MSE, backward and the
  optimizer. The reference's step adds its TrainLoop's recipe (per-tensor AdamW with PyTorch's
  defaults, its ``update_ema`` at 0.9999) to gemdiff's noising of the batch, and leaves out its
  variance (vb) term and its per-step logging (per-sample loss quartiles and the gradient norm
  read back to the host): a lower bound on its step. gemdiff's bare step is the loop of
  ``train_throughput.py`` (no EMA); ``--app`` also times ``gemdiff.train`` (Lightning, EMA,
  clipping, label dropout, learning-rate warm-up) at the same size;
- the bridge of 663 samples: gemdiff's default (25 + 25 second-order steps, the cycle check on
  64 samples) in full, against the network calls alone of the reference's 1000 + 1000 DDIM
  steps (2000 times the call above; its per-step arithmetic comes on top).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gemdiff.models.diffusion import GaussianDiffusion
from gemdiff.models.generators import BridgeOptions, Generator

GENES, WIDTH, DEPTH, BRIDGE_N, BATCH = 16, 128, 4, 663, 32


def load_reference(path: Path) -> tuple[torch.nn.Module, Callable]:
    """The reference's network at this size and its EMA update, from its checkout at ``path``."""
    if not (path / "diffusion" / "mlp.py").is_file():
        sys.exit(f"--reference {path}: no diffusion/mlp.py there (a checkout of "
                 f"github.com/xai990/GEMDiff is expected)")
    sys.path.insert(0, str(path))
    from diffusion.mlp import GPT  # the reference's transformer
    from diffusion.nn import update_ema

    # configs/mrna_16.yaml: one patch of 16 genes, 2 heads, 4 layers, class-conditional
    net = GPT(gene_feature=GENES, patch_size=GENES, n_head=2, dropout=0.0, n_embd=WIDTH,
              n_layer=DEPTH, num_classes=2)
    return net, update_ema


def sibling(name: str):
    """Another script of this folder, as a module."""
    sys.path.insert(0, str(Path(__file__).parent))
    return importlib.import_module(name)


def call_ms(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, calls: int = 50) -> float:
    """Milliseconds per inference call on the batch ``x``."""
    t = torch.full((len(x),), 500)
    with torch.inference_mode():
        for _ in range(5):
            net(x, t, y)
        t0 = time.perf_counter()
        for _ in range(calls):
            net(x, t, y)
    return (time.perf_counter() - t0) / calls * 1e3


def reference_step_ms(net: torch.nn.Module, update_ema: Callable, steps: int = 300) -> float:
    """Milliseconds per bare training step of the reference's network at batch 32, after a
    warm-up of 50: its TrainLoop's optimizer and EMA, gemdiff's noising of the batch."""
    diffusion = GaussianDiffusion()
    x, y = torch.rand(788, GENES) * 2 - 1, torch.randint(2, (788,))
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=3e-5)  # PyTorch's defaults otherwise, as TrainLoop
    ema = copy.deepcopy(params)
    for i in range(steps + 50):
        if i == 50:
            t0 = time.perf_counter()
        idx = torch.randint(len(x), (BATCH,))
        x0, y0 = x[idx], y[idx]
        opt.zero_grad(set_to_none=False)
        t = torch.randint(diffusion.timesteps, (BATCH,))
        noise = torch.randn_like(x0)
        eps = net(diffusion.q_sample(x0, t, noise), t, y0)[:, :GENES]  # the mean half
        ((noise - eps) ** 2).mean().backward()
        opt.step()
        update_ema(ema, params, rate=0.9999)
    return (time.perf_counter() - t0) / steps * 1e3


def bridge_s(generator: Generator, x: np.ndarray) -> float:
    """Seconds for gemdiff's default bridge (with its cycle check) of ``x``."""
    t0 = time.perf_counter()
    generator.bridge(x, 1, 0, BridgeOptions(device="cpu"))
    return time.perf_counter() - t0


def gemdiff_step_ms(app: bool, threads: int) -> float:
    """Milliseconds per step of gemdiff's bare loop, or of ``gemdiff.train`` (1000 steps), at
    this size (train_throughput.py)."""
    throughput = sibling("train_throughput")
    if app:
        return 1e3 / throughput.lightning_app(WIDTH, DEPTH, "single", 1000, threads=threads)
    return 1e3 / throughput.bare_loop(WIDTH, DEPTH, "single", 300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True,
                        help="a checkout of the reference implementation")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--app", action="store_true",
                        help="also time gemdiff.train's steps (1000 per repeat)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref, update_ema = load_reference(args.reference)
    generator = sibling("perturb_speed").untrained("single").generator  # this size, seeded
    ours = generator.denoiser
    n_ref, n_ours = (sum(p.numel() for p in m.parameters()) for m in (ref, ours))
    x = torch.rand(BRIDGE_N, GENES) * 2 - 1
    y = torch.ones(BRIDGE_N, dtype=torch.long)
    rows: dict[str, list[float]] = {k: [] for k in (
        "call_ref", "call_ours", "step_ref", "step_ours", "app", "bridge_ours")}
    for _ in range(args.repeats):
        rows["call_ref"].append(call_ms(ref.eval(), x, y))
        rows["call_ours"].append(call_ms(ours.eval(), x, y))
        rows["step_ref"].append(reference_step_ms(ref.train(), update_ema))
        rows["step_ours"].append(gemdiff_step_ms(False, args.threads))
        if args.app:
            rows["app"].append(gemdiff_step_ms(True, args.threads))
        rows["bridge_ours"].append(bridge_s(generator, x.numpy()))
    med = {k: statistics.median(v) if v else float("nan") for k, v in rows.items()}
    bridge_ref = 2000 * med["call_ref"] / 1e3
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} repeats "
          f"(medians); weights: reference {n_ref:,}, gemdiff {n_ours:,}")
    print(f"{'figure':46s} {'reference':>12s} {'gemdiff':>12s} {'ratio':>7s}")
    lines = [
        ("network call, 663 samples (ms)", med["call_ref"], med["call_ours"]),
        ("training step, batch 32, bare loop (ms)", med["step_ref"], med["step_ours"]),
        ("training step, batch 32, gemdiff.train (ms)", med["step_ref"], med["app"]),
        ("bridge of 663 samples (s)", bridge_ref, med["bridge_ours"]),
    ]
    for label, a, b in lines:
        if b == b:  # not NaN
            print(f"{label:46s} {a:12.2f} {b:12.2f} {a / b:6.1f}x")
    print("reference bridge: 1000 + 1000 DDIM steps, network calls only; gemdiff: 25 + 25 "
          "dpm2 steps and the cycle check on 64 samples, in full")


if __name__ == "__main__":
    main()
