"""The default path a user runs, timed side by side with another checkout of gemdiff.

    git worktree add ../gemdiff-old <commit>
    python benchmarks/default_path.py ../gemdiff-old [--repeats 2] [--experiment breast_16]

For each checkout (this one and the one named), in a fresh process each, interleaved so that a
busy minute hits both alike: ``python -m gemdiff.train`` (defaults, or ``experiment=...``),
then ``gemdiff.sample`` and ``gemdiff.perturb source=tumor target=normal`` on its checkpoint,
each with its own defaults. Prints wall seconds per command (median over ``--repeats``), the
ratio old / new, and the quality figures the commands report (MMD ratio, classifier two-sample
AUC; share of moved samples called target, cycle error). Each checkout runs its own code
(``PYTHONPATH=<checkout>/src``) and its own configs; W&B is off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
QUIET = ["callbacks.progress_bar=null"]
SAMPLE_KEYS = ("mmd_ratio", "c2st_auc")
PERTURB_KEYS = ("frac_to_target", "frac_to_target_real", "mmd_to_target_ratio", "cycle_error")


def _run(checkout: Path, app: str, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "WANDB_MODE": "disabled"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", f"gemdiff.{app}", *args], cwd=checkout,
                         env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{checkout}: gemdiff.{app} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t0


def _metrics(folder: Path, keys: tuple[str, ...]) -> dict:
    path = folder / "metrics.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    flat = {**found, **found.get("metrics", {})} if isinstance(found.get("metrics"), dict) \
        else found
    return {k: flat[k] for k in keys if isinstance(flat.get(k), (int, float))}


def one_path(checkout: Path, work: Path, experiment: str | None) -> dict:
    train = work / "train"
    args = [f"hydra.run.dir={train}", "overwrite=true", *QUIET]
    if experiment:
        args.insert(0, f"experiment={experiment}")
    seconds = {"train": _run(checkout, "train", args)}
    ckpt = train / "checkpoints" / "last.ckpt"
    sample, perturb = work / "sample", work / "perturb"
    seconds["sample"] = _run(checkout, "sample", [f"ckpt_path={ckpt}",
                                                  f"hydra.run.dir={sample}", "overwrite=true"])
    seconds["perturb"] = _run(checkout, "perturb", [f"ckpt_path={ckpt}", "source=tumor",
                                                    "target=normal", f"hydra.run.dir={perturb}",
                                                    "overwrite=true", "progress=false"])
    seconds["all"] = sum(seconds.values())
    return {"seconds": seconds, "sample": _metrics(sample, SAMPLE_KEYS),
            "perturb": _metrics(perturb, PERTURB_KEYS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", type=Path, help="the other checkout (a git worktree)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--experiment", default=None, help="e.g. breast_16 (needs GEMDIFF_DATA_DIR)")
    args = ap.parse_args()
    checkouts = {"this": HERE, "other": args.other.resolve()}
    runs: dict[str, list[dict]] = {k: [] for k in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, checkout in checkouts.items():
                runs[name].append(one_path(checkout, Path(tmp) / f"{name}{r}", args.experiment))
                print(f"repeat {r} {name}: {runs[name][-1]}", flush=True)
    print(f"\n{os.cpu_count()} cores, {args.repeats} repeats, "
          f"{'experiment=' + args.experiment if args.experiment else 'defaults'}; "
          f"this: {HERE}, other: {checkouts['other']}")
    print(f"{'command':10s} {'this s':>8s} {'other s':>8s} {'other/this':>10s}")
    for cmd in ("train", "sample", "perturb", "all"):
        mine = statistics.median(r["seconds"][cmd] for r in runs["this"])
        theirs = statistics.median(r["seconds"][cmd] for r in runs["other"])
        print(f"{cmd:10s} {mine:8.1f} {theirs:8.1f} {theirs / mine:10.2f}")
    for part in ("sample", "perturb"):
        for name in checkouts:
            values = {k: [r[part][k] for r in runs[name] if k in r[part]]
                      for k in (SAMPLE_KEYS if part == "sample" else PERTURB_KEYS)}
            print(f"{part} {name}: " + ", ".join(f"{k} {statistics.median(v):.4g}"
                                                 for k, v in values.items() if v))


if __name__ == "__main__":
    main()
