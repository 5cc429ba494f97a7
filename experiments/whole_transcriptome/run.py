"""A model of every kidney gene: does the default model of a whole transcriptome sample and
bridge without overshoot?

    GEMDIFF_DATA_DIR=../shared/data python experiments/whole_transcriptome/run.py [--seeds 0 1 2]

RNAseqDB kidney (tumour against normal), every gene that varies (``n_genes=None``,
``constant_genes=drop``), the package defaults otherwise: with more than 2,048 genes the model
learns the training split's top 50 principal components (``latent.space=auto``,
docs/model.md). Per seed, through the Python API:

- fit: seconds and the process's peak memory (it only grows, so the figure covers reading
  the data too);
- sample (the test split's class counts): C2ST AUC on the real samples' top 50 principal
  components, MMD ratio, SD ratio, correlation slope, and the share of values held at the
  plausible bound;
- perturb the held-out tumours to normal with the bridge, and with the entropic OT map: MMD to
  the real normal test samples over the real baseline, the share of moved values held at the
  bound, the number of core genes, and the Pearson r of each gene's mean change (log2 units)
  with the real log2 fold change the perturbation reports beside it (``de_log2fc``: the real
  target samples' mean minus the source samples', log2(n + 1)); UMOD's change beside its real
  fold change.

Writes ``results.csv`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gemdiff import GEMDiff

HERE = Path(__file__).resolve().parent
# The targets for a model of every gene.
TARGETS = {"fit_s": "<= 900", "peak_gib": "<= 4", "sample_c2st_auc": "<= 0.7",
           "sample_clipped_share": "< 0.01", "bridge_clipped_share": "< 0.01",
           "bridge_mmd_to_target_ratio": "<= 1.3", "bridge_r_mean_change": ">= 0.9"}
QUIET = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false", "sample_plot=false"]


def one_seed(seed: int, steps: int | None) -> dict:
    t0 = time.perf_counter()
    model = GEMDiff.from_config("kidney", n_genes=None, constant_genes="drop")
    model.fit(steps, overrides=QUIET, seed=seed, progress=False)
    row = {"seed": seed, "n_genes": len(model.genes), "fit_s": time.perf_counter() - t0,
           "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
    s = model.sample(seed=seed, umap=False).uns["metrics"]
    row |= {f"sample_{k}": s[k] for k in ("c2st_auc", "mmd_ratio", "sd_ratio", "corr_slope",
                                          "corr_slope_real", "clipped_share", "latent_dims")}
    for name in ("bridge", "entropic_ot"):
        p = model.perturb(source="tumor", target="normal", map=name, seed=seed, umap=False,
                          beside=None)
        m, change, real = p.uns["metrics"], p.var["mean_change_log2"], p.var["de_log2fc"]
        row |= {f"{name}_mmd_to_target_ratio": m["mmd_to_target_ratio"],
                f"{name}_clipped_share": m["clipped_share"],
                f"{name}_n_core": m["n_core_genes"],
                f"{name}_r_mean_change": float(np.corrcoef(change, real)[0, 1]),
                f"{name}_umod_change": float(change.get("UMOD", np.nan))}
    row["umod_real"] = float(real.get("UMOD", np.nan))
    return row


def write_md(df: pd.DataFrame, how: str) -> None:
    from scipy import stats

    lines = ["# A model of every kidney gene", "", how, "",
             "Mean ± SD over seeds, and the targets set for such a model:", "",
             "| figure | mean | SD | target |", "| --- | ---: | ---: | --- |"]
    for col in df.columns:
        if col == "seed":
            continue
        lines.append(f"| {col} | {df[col].mean():.4g} | {df[col].std():.2g} | "
                     f"{TARGETS.get(col, '')} |")
    if len(df) > 1:
        d = df.bridge_mmd_to_target_ratio - df.entropic_ot_mmd_to_target_ratio
        p = stats.ttest_rel(df.bridge_mmd_to_target_ratio,
                            df.entropic_ot_mmd_to_target_ratio).pvalue
        lines += ["", f"Bridge minus entropic OT, MMD to target ratio, paired by seed: "
                      f"{d.mean():+.3f} (SD {d.std():.3f}, paired t p = {p:.3g})."]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the "
                                                            "package's)")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    path = HERE / "results.csv"
    done = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    rows = [r for _, r in done.iterrows()]
    for seed in args.seeds:
        if len(done) and seed in set(done.seed):
            continue
        rows.append(pd.Series(one_seed(seed, args.steps)))
        pd.DataFrame(rows).to_csv(path, index=False, float_format="%.5g")
        print(rows[-1].to_dict(), flush=True)
    how = (f"`python experiments/whole_transcriptome/run.py`: seeds {args.seeds}, "
           f"{os.cpu_count()} CPU cores; one process per seed run, its peak memory reported.")
    write_md(pd.DataFrame(rows), how)


if __name__ == "__main__":
    main()
