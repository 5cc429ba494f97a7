"""Augmentation and perturbation quality on the breast example, the perturbation levers, and
recovery of planted drivers on synthetic data.

    GEMDIFF_DATA_DIR=../shared/data python experiments/quality/run.py breast --ckpt last.ckpt
    GEMDIFF_DATA_DIR=../shared/data python experiments/quality/run.py breast --steps 40000
    python experiments/quality/run.py drivers --seeds 0 1 2

``breast`` scores a breast_16 checkpoint (or trains one with ``experiment=breast_16`` and the
given steps): DDPM samples matched to the test split's class counts, one draw per seed, with
every metric of ``gemdiff.sample``; then the test tumours carried to normal (Algorithm 1) over
a grid of the bridge's end time, the number of DDIM steps and classifier-free guidance, with
every metric of ``gemdiff.perturb``, next to a per-class mean shift. ``drivers`` trains the
default model on the built-in synthetic data per seed, perturbs the test tumours to normal and
scores the core genes (z above 1 and 2) against the planted drivers. Results go to
``breast_*.csv``, ``drivers.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gemdiff.checkpoint import load_checkpoint
from gemdiff.cli import compose_config
from gemdiff.metrics import augmentation_metrics, fit_svm, perturbation_metrics
from gemdiff.perturb import gene_scores, perturb
from gemdiff.sample import generate
from gemdiff.train import train

HERE = Path(__file__).resolve().parent
# (t_end, ddim_steps, guidance): each lever varied around the default (990, 250, 1).
LEVERS = ([(t, 250, 1.0) for t in (500, 900, 990, 999)]
          + [(990, s, 1.0) for s in (20, 50, 100, 1000)]
          + [(990, 250, g) for g in (1.1, 1.2, 1.5, 2.0)])


def _train(overrides: list[str], out: Path) -> tuple[Path, float]:
    cfg = compose_config(["logger=none", "callbacks.progress_bar=null", *overrides], out)
    t0 = time.perf_counter()
    summary = train(cfg)
    return Path(summary["checkpoint"]), time.perf_counter() - t0


def breast(args) -> None:
    if args.ckpt:
        ckpt, train_s = Path(args.ckpt), float("nan")
    else:
        ckpt, train_s = _train(["experiment=breast_16", f"trainer.max_steps={args.steps}",
                                f"trainer.val_check_interval={args.steps // 10}",
                                *args.extra], Path(args.work) / f"breast_{args.steps}")
    model = load_checkpoint(ckpt)
    data = model.data()
    step = torch.load(ckpt, weights_only=True, map_location="cpu").get("global_step")
    rows = []
    for seed in args.seeds:
        labels = np.sort(data.y_test)
        t0 = time.perf_counter()
        synth = model.preprocessor.snap_unexpressed(generate(model, labels, "ddpm", seed=seed),
                                                    labels)
        m = augmentation_metrics(data.x_train, data.y_train, data.x_test, data.y_test, synth,
                                 labels, seed=seed).to_dict()
        rows.append({"step": step, "seed": seed, "train_seconds": round(train_s, 1),
                     "sample_seconds": round(time.perf_counter() - t0, 1), **m})
        print(rows[-1], flush=True)
    aug = pd.DataFrame(rows)
    aug.to_csv(HERE / "breast_augment.csv", index=False, float_format="%.6g")

    src, tgt = model.classes.index("tumor"), model.classes.index("normal")
    x_src = data.x_test[data.y_test == src]
    x_eval, x_ref = data.x_test[data.y_test == tgt], data.x_train[data.y_train == tgt]
    svm = fit_svm(data.x_train, data.y_train)
    shift = x_src + (data.x_train[data.y_train == tgt].mean(0)
                     - data.x_train[data.y_train == src].mean(0))
    rows = [{"method": "mean shift", **perturbation_metrics(x_src, shift, None, x_eval, x_ref,
                                                            svm, tgt).to_dict()}]
    for t_end, steps, guidance in LEVERS:
        t0 = time.perf_counter()
        res = perturb(model, x_src, src, tgt, steps, t_end, guidance)
        secs = time.perf_counter() - t0
        m = perturbation_metrics(x_src, res.x_moved, res.x_cycle, x_eval, x_ref, svm, tgt)
        rows.append({"method": "GEMDiff", "t_end": t_end, "ddim_steps": steps,
                     "guidance": guidance, "seconds": round(secs, 1), **m.to_dict()})
        print(rows[-1], flush=True)
    pert = pd.DataFrame(rows)
    pert.insert(0, "step", step)
    pert.to_csv(HERE / "breast_perturb.csv", index=False, float_format="%.6g")
    print(aug.describe().T[["mean", "std"]])
    print(pert.drop(columns="step").to_string())


def drivers(args) -> None:
    rows = []
    for seed in args.seeds:
        ckpt, train_s = _train([f"seed={seed}", *args.extra],
                               Path(args.work) / f"drivers_seed{seed}")
        model = load_checkpoint(ckpt)
        data = model.data()
        from gemdiff.data.synthetic import simulate_gem

        source = dict(model.config["data"]["source"])
        source.pop("format")
        planted = set(simulate_gem(**source).drivers)
        src, tgt = model.classes.index("tumor"), model.classes.index("normal")
        res = perturb(model, data.x_test[data.y_test == src], src, tgt, 250, 990)
        scores = gene_scores(model, res.x_source, res.x_moved)
        for k in (1.0, 2.0):
            core = set(scores.gene[scores.z > k])
            hit = len(core & planted)
            rows.append({"seed": seed, "k": k, "n_genes": len(model.genes),
                         "n_planted": len(planted), "n_core": len(core),
                         "precision": hit / len(core) if core else float("nan"),
                         "recall": hit / len(planted), "train_seconds": round(train_s, 1)})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(HERE / "drivers.csv", index=False, float_format="%.6g")
    print(df.groupby("k")[["precision", "recall"]].agg(["mean", "min"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["breast", "drivers"])
    parser.add_argument("--ckpt", help="breast: score this checkpoint instead of training")
    parser.add_argument("--steps", type=int, default=40000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", nargs="*", default=None,
                        help="training overrides (breast default: a single token)")
    parser.add_argument("--work", default="outputs/experiments/quality")
    args = parser.parse_args()
    if args.extra is None:
        args.extra = ["model.denoiser.tokenization=single"] if args.part == "breast" else []
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.manual_seed(0)
    {"breast": breast, "drivers": drivers}[args.part](args)


if __name__ == "__main__":
    main()
