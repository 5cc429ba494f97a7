"""Augmentation and perturbation quality on the breast example, the perturbation levers, and
recovery of planted drivers on synthetic data.

    GEMDIFF_DATA_DIR=../shared/data python experiments/quality/run.py breast --ckpt last.ckpt
    GEMDIFF_DATA_DIR=../shared/data python experiments/quality/run.py breast --steps 40000
    python experiments/quality/run.py drivers --seeds 0 1 2

Everything goes through the Python API (``GEMDiff.fit``, ``sample``, ``score``, ``perturb``).
``breast`` scores a breast_16 checkpoint or saved model (or trains one with
``experiment=breast_16`` and the given steps): DDPM samples matched to the test split's class
counts, one draw per seed, with every metric of ``gemdiff.sample``; then the test tumours
carried to normal (Algorithm 1) over a grid of the bridge's end time, the number of DDIM steps
and classifier-free guidance, with every metric of ``gemdiff.perturb``, next to a per-class mean
shift. ``drivers`` trains the default model on the built-in synthetic data per seed, perturbs
the test tumours to normal and scores the core genes (z above 1 and 2) against the planted
drivers. Results go to ``breast_*.csv``, ``drivers.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from gemdiff import GEMDiff
from gemdiff.data import simulate_gem

HERE = Path(__file__).resolve().parent
# (t_end, ddim_steps, guidance): each lever varied around the default (990, 250, 1).
LEVERS = ([(t, 250, 1.0) for t in (500, 900, 990, 999)]
          + [(990, s, 1.0) for s in (20, 50, 100, 1000)]
          + [(990, 250, g) for g in (1.1, 1.2, 1.5, 2.0)])


def _train(data: str, overrides: list[str], seed: int, out: Path) -> tuple[GEMDiff, float]:
    t0 = time.perf_counter()
    model = GEMDiff.from_config(data).fit(overrides=["callbacks.progress_bar=null", "preset=paper",
                                                     *overrides],
                                          seed=seed, progress=False)
    train_s = time.perf_counter() - t0
    model.save(out, overwrite=True)
    return model, train_s


def breast(args) -> None:
    if args.ckpt:
        model, train_s = GEMDiff.load(args.ckpt), float("nan")
    else:
        model, train_s = _train("breast", ["experiment=breast_16",
                                           f"trainer.max_steps={args.steps}",
                                           f"trainer.val_check_interval={args.steps // 10}",
                                           *args.extra], 0,
                                Path(args.work) / f"breast_{args.steps}")
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        synth = model.sample(sampler="ddpm", seed=seed, metrics=False, umap=False)
        secs = time.perf_counter() - t0
        rows.append({"step": model.global_step, "seed": seed, "train_seconds": round(train_s, 1),
                     "sample_seconds": round(secs, 1), **model.score(synth, seed=seed)})
        print(rows[-1], flush=True)
    aug = pd.DataFrame(rows)
    aug.to_csv(HERE / "breast_augment.csv", index=False, float_format="%.6g")

    def moved(**options) -> dict:
        res = model.perturb(source="tumor", target="normal", umap=False, **options)
        return {k: v for k, v in res.uns["metrics"].items() if k not in ("source", "target")}

    rows = [{"method": "mean shift", **moved(map="mean_shift")}]
    for t_end, steps, guidance in LEVERS:
        t0 = time.perf_counter()
        m = moved(t_end=t_end, ddim_steps=steps, guidance=guidance)
        rows.append({**m, "method": "GEMDiff", "seconds": round(time.perf_counter() - t0, 1)})
        print(rows[-1], flush=True)
    pert = pd.DataFrame(rows)
    pert.insert(0, "step", model.global_step)
    pert.to_csv(HERE / "breast_perturb.csv", index=False, float_format="%.6g")
    print(aug.describe().T[["mean", "std"]])
    print(pert.drop(columns="step").to_string())


def drivers(args) -> None:
    rows = []
    for seed in args.seeds:
        model, train_s = _train("synthetic", args.extra, seed,
                                Path(args.work) / f"drivers_seed{seed}")
        source = dict(model.settings["data"]["source"])
        source.pop("format")
        planted = set(simulate_gem(**source).drivers)
        scores = model.perturb(source="tumor", target="normal", ddim_steps=250, t_end=990,
                               metrics=False, umap=False).var
        for k in (1.0, 2.0):
            core = set(scores.index[scores.z > k])
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
                        help="training overrides (default: a single token for breast, "
                             "gene tokens for drivers)")
    parser.add_argument("--work", default="outputs/experiments/quality")
    args = parser.parse_args()
    if args.extra is None:
        # drivers: gene tokens, the package default when its figures were recorded
        tokens = "single" if args.part == "breast" else "gene"
        args.extra = [f"model.denoiser.tokenization={tokens}"]
    os.environ.setdefault("WANDB_MODE", "disabled")
    {"breast": breast, "drivers": drivers}[args.part](args)


if __name__ == "__main__":
    main()
