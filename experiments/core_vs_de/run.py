"""Do core genes find more than a t-test? Rankings of genes against planted truth and on kidney.

    python experiments/core_vs_de/run.py                      # the study (simulation + kidney)
    python experiments/core_vs_de/run.py --quick              # a smoke run of a few minutes
    python experiments/core_vs_de/run.py transcriptome        # one model, all genes
    python experiments/core_vs_de/run.py kidney               # the kidney part again, with it

``study`` (the default). Simulation: the built-in simulator (``gemdiff.data.simulate_gem``) with
64 genes in 4 modules and three kinds of planted driver, 6 of each: a mean shift, a change of
spread with the same mean, and rewiring (the gene leaves its module in tumours; same mean and
SD). Per seed (0, 1, 2), without and with a batch confounder (batch 1 shifts each gene by
N(0, 1) log2 units and holds 20% of normals, 80% of tumours). Each gene is ranked by

- ``bridge_all``: the default GEMDiff model on all 64 genes, every tumour carried to normal
  (the default bridge), the gene's perturbation score (mean |x - x'|, log2(n + 1) units);
- ``bridge_subsets``: the same with a model per 16-gene subset (a seeded random partition of
  the 64 genes, so that every gene is scored), as ``gemdiff.core``'s sweep does;
- ``ot`` and ``mean_shift``: the same score of the two baseline maps;
- ``welch`` and ``moderated``: |t| of Welch's test and of limma's moderated t, tumours against
  normals, all samples.

Per driver kind: the area under the precision-recall curve (average precision; positives the
drivers of that kind, negatives the genes that drive nothing) and the precision among the top
6 genes, with the share of positives (what a random ranking scores) beside them.

Kidney (``$GEMDIFF_DATA_DIR/rnaseqdb``, 60 tumours against 57 normals): the core genes of the
Hallmark sweep recorded by ``experiments/hallmark_kidney`` (32 subsets, 3 seeds; that sweep took
35 minutes, so it is read, not re-run) against Welch's and the moderated t on all samples:
overlap with DE at q < 0.05, rank correlation over the screened genes, and a GSEA prerank
(gseapy; sets of 15 to 500 of the ranked genes, 1000 permutations) of each ranking against
Hallmark, GO Biological Process and KEGG, each ranking's own genes the background; as a
control that uses no labels, each gene's SD over all samples is ranked and tested too. With
``transcriptome`` results present, that model's ranking joins and is set against the sweep's.

``transcriptome``: one default model of every kidney gene that varies (above 2,048 genes the
model learns the top 50 principal components, ``latent.space=auto``), trained for ``--steps``;
its time, peak memory and ranking (``transcriptome.tsv.gz``), which the kidney part then
compares.

Needs ``pip install -e ".[study]"`` (gseapy). Writes ``results.csv``, ``results.md``,
``kidney.csv`` and ``kidney_gsea.csv`` (the sets at FDR < 0.25) next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gemdiff import GEMDiff
from gemdiff.data import simulate_gem

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIM = {"n_samples": 600, "n_genes": 64, "n_modules": 4, "n_drivers": 6, "n_spread": 6,
       "n_rewired": 6, "spread_factor": 2.0}
BATCH = {"batch_effect": 1.0, "batch_share": [0.2, 0.8]}
METHODS = ("bridge_all", "bridge_subsets", "ot", "mean_shift", "welch", "moderated")
KINDS = ("mean", "spread", "rewired", "any")
QUIET = ["callbacks.progress_bar=null", "sample_plot=false",
         "callbacks.checkpoint.every_n_train_steps=1000000", "trainer.val_check_interval=1000",
         "preset=paper", "model.denoiser.tokenization=gene"]  # the default when recorded


def _perturb(model: GEMDiff, **options) -> pd.DataFrame:
    return model.perturb(source="tumor", target="normal", split="all", umap=False,
                         **options).var


def rankings(source: dict, seed: int, steps: int) -> tuple[pd.DataFrame, dict]:
    """Every method's score per gene of one simulated matrix (higher: more driver-like)."""
    overrides = [f"data.source.{k}={json.dumps(v)}" for k, v in source.items()] + QUIET
    seconds = {}
    t0 = time.perf_counter()
    model = GEMDiff.from_config("synthetic").fit(steps, overrides=overrides, seed=seed,
                                                 progress=False)
    full = _perturb(model)
    seconds["bridge_all"] = time.perf_counter() - t0
    table = pd.DataFrame({"bridge_all": full.score_log2,
                          "welch": full.de_t.abs(), "moderated": full.de_mod_t.abs()})
    for name in ("ot", "mean_shift"):
        table[name] = _perturb(model, map=name).score_log2
    t0 = time.perf_counter()
    genes = np.random.default_rng(seed).permutation(np.asarray(full.index))
    parts = []
    for subset in np.array_split(genes, len(genes) // 16):
        sub = GEMDiff.from_config("synthetic", genes=list(subset))
        parts.append(_perturb(sub.fit(steps, overrides=overrides, seed=seed, progress=False))
                     .score_log2)
    table["bridge_subsets"] = pd.concat(parts)
    seconds["bridge_subsets"] = time.perf_counter() - t0
    return table, seconds


def score(table: pd.DataFrame, kinds: dict[str, str], top: int) -> list[dict]:
    """Average precision and precision among the top genes per method and driver kind."""
    from sklearn.metrics import average_precision_score

    rows = []
    truth = pd.Series(kinds).reindex(table.index).fillna("none")
    for kind in KINDS:
        positive = truth != "none" if kind == "any" else truth == kind
        keep = positive | (truth == "none")
        for method in METHODS:
            s = table.loc[keep, method]
            best = s.sort_values(ascending=False, kind="stable").index[:top]
            rows.append({"method": method, "kind": kind, "n_positive": int(positive.sum()),
                         "auprc": average_precision_score(positive[keep], s),
                         "precision_at_k": float(positive[best].mean()),
                         "random_auprc": float(positive[keep].mean())})
    return rows


def simulation(seeds: list[int], steps: int, quick: bool) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for batch in (False, True):
            source = dict(SIM, seed=seed, **(BATCH if batch else {}))
            if quick:
                source |= {"n_genes": 32, "n_samples": 200, "n_drivers": 3, "n_spread": 3,
                           "n_rewired": 3}
            truth = simulate_gem(**source)
            t0 = time.perf_counter()
            table, seconds = rankings(source, seed, steps)
            for row in score(table, truth.kinds, top=source["n_drivers"]):
                rows.append({"seed": seed, "batch": batch, **row,
                             "model_seconds": round(seconds.get(row["method"], 0.0), 1)})
            print(f"seed {seed} batch {batch}: {time.perf_counter() - t0:.0f} s", flush=True)
            print(pd.DataFrame(rows[-len(KINDS) * len(METHODS):])
                  .pivot(index="method", columns="kind", values="auprc").round(3), flush=True)
    return pd.DataFrame(rows)


# ---- kidney ------------------------------------------------------------------------------

def _kidney_log2():
    """Every kidney gene expressed in some sample, log2(FPKM + 1), with the labels."""
    from gemdiff.data import read_rnaseqdb

    root = Path(os.environ.get("GEMDIFF_DATA_DIR", "../shared/data")) / "rnaseqdb"
    gem = read_rnaseqdb({"tumor": [root / "kich-rsem-fpkm-tcga-t.txt.gz"],
                         "normal": [root / "kich-rsem-fpkm-tcga.txt.gz",
                                    root / "kidney-rsem-fpkm-gtex.txt.gz"]})
    x = np.log2(np.nan_to_num(gem.values, nan=0.0).clip(0) + 1.0)
    keep = x.max(axis=0) > 0
    frame = pd.DataFrame(x[:, keep], index=gem.samples,
                         columns=np.asarray(gem.genes)[keep])
    return frame.loc[:, ~frame.columns.duplicated()], np.asarray(gem.labels)


def kidney_de(x: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    from scipy import stats

    from gemdiff.tools.gene_scores import moderated_t

    a, b = x.values[labels == "normal"], x.values[labels == "tumor"]
    t, p = stats.ttest_ind(b, a, equal_var=False)
    t, p = np.nan_to_num(t), np.nan_to_num(p, nan=1.0)
    mt, mp, _, _ = moderated_t(a, b)
    bh = stats.false_discovery_control
    return pd.DataFrame({"welch": np.abs(t), "welch_q": bh(p), "moderated": np.abs(mt),
                         "moderated_q": bh(mp)}, index=x.columns)


def prerank(ranking: pd.Series, libraries: dict[str, dict], seed: int = 0) -> pd.DataFrame:
    import gseapy

    rows = []
    for lib, sets in libraries.items():
        res = gseapy.prerank(rnk=ranking.sort_values(ascending=False), gene_sets=sets,
                             permutation_num=1000, min_size=15, max_size=500, seed=seed,
                             outdir=None, threads=2, verbose=False, no_plot=True)
        df = res.res2d[["Term", "NES", "NOM p-val", "FDR q-val"]].copy()
        df.insert(0, "library", lib)
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def _whole_against_sweep(whole: pd.Series, sweep: pd.Series, is_core: pd.Series) -> list[dict]:
    """How the transcriptome model's ranking meets the subset sweep's core genes."""
    from scipy import stats

    k = int(is_core.sum())
    core = set(is_core.index[is_core])
    order = whole.sort_values(ascending=False).index
    rows = [{"ranking": "transcriptome model (all)", "test": f"sweep core genes in its top {n}",
             "n_genes": len(whole), "n_top": n, "n_shared": len(core & set(order[:n]))}
            for n in (k, 100, 500)]
    within = whole.reindex(sweep.index).dropna()
    top = set(within.sort_values(ascending=False).index[:k])
    rows.append({"ranking": "transcriptome model (512 screened)",
                 "test": f"sweep core genes in its top {k}", "n_genes": len(within), "n_top": k,
                 "n_shared": len(core & top),
                 "spearman_vs_test": stats.spearmanr(within, sweep.loc[within.index]).statistic})
    return rows


def kidney() -> tuple[pd.DataFrame, pd.DataFrame]:
    from gemdiff.data import read_gmt

    x, labels = _kidney_log2()
    de = kidney_de(x, labels)
    core = pd.read_csv(HERE.parent / "hallmark_kidney/results/core_core_genes.tsv", sep="\t",
                       index_col="gene")
    screened = core.index.intersection(de.index)
    ranks = {"core_score (512 screened)": core.score.loc[screened],
             "welch (512 screened)": de.welch.loc[screened],
             "moderated (512 screened)": de.moderated.loc[screened],
             f"welch (all {len(de)})": de.welch, f"moderated (all {len(de)})": de.moderated}
    sd = x.std(axis=0)
    ranks[f"sd, no labels (all {len(de)})"] = sd  # a control: how variable a gene is
    extra = HERE / "transcriptome.tsv.gz"
    if extra.is_file():
        whole = pd.read_csv(extra, sep="\t", index_col="gene").score_log2
        ranks[f"transcriptome model (all {len(whole)})"] = whole
        ranks["transcriptome model (512 screened)"] = whole.reindex(screened).dropna()
    from scipy import stats

    rows = []
    is_core = core.core.loc[screened]
    for name, r in ranks.items():
        rows.append({"ranking": name, "test": "sd over all samples", "n_genes": len(r),
                     "spearman_vs_test": stats.spearmanr(r, sd.loc[r.index]).statistic})
        if name.split()[0] in ("welch", "moderated", "sd,"):
            continue
        for test in ("welch", "moderated"):
            genes = r.index
            de_call = de.loc[genes, f"{test}_q"] < 0.05
            top = r.sort_values(ascending=False).index[:int(is_core.sum())]
            rows.append({"ranking": name, "test": test, "n_genes": len(genes),
                         "n_de": int(de_call.sum()), "n_top": len(top),
                         "n_top_de": int(de_call.loc[top].sum()),
                         "spearman_vs_test": stats.spearmanr(r, de.loc[genes, test]).statistic})
    if extra.is_file():
        rows += _whole_against_sweep(whole, core.score.loc[screened], is_core)
    root = Path(os.environ.get("GEMDIFF_DATA_DIR", "../shared/data")) / "genesets"
    libraries = {"Hallmark": read_gmt(root / "h.all.v7.0.symbols.gmt"),
                 "GO_BP": read_gmt(root / "enrichr.GO_Biological_Process_2021.gmt"),
                 "KEGG": read_gmt(root / "enrichr.KEGG_2016.gmt")}
    gsea = []
    for name, r in ranks.items():
        res = prerank(r, libraries)
        res.insert(0, "ranking", name)
        gsea.append(res)
        print(f"prerank {name}: {(res['FDR q-val'].astype(float) < 0.05).sum()} sets at "
              "FDR < 0.05", flush=True)
    return pd.DataFrame(rows), pd.concat(gsea, ignore_index=True)


# ---- one model for the whole transcriptome -------------------------------------------------

def transcriptome(args) -> None:
    """One default model of every kidney gene that varies, trained for ``args.steps``; its
    tumour-to-normal scores go to ``transcriptome.tsv.gz``, its costs to
    ``transcriptome.json``."""
    t0 = time.perf_counter()
    model = GEMDiff.from_config("kidney", n_genes=None, constant_genes="drop")
    model.fit(args.steps, overrides=QUIET, seed=0, progress=False)
    fit_s = time.perf_counter() - t0
    model.save(ROOT / "outputs" / "core_vs_de_transcriptome", overwrite=True)  # kept for reuse
    t1 = time.perf_counter()
    var = _perturb(model)
    perturb_s = time.perf_counter() - t1
    keep = ["score_log2", "mean_change_log2", "z", "core", "de_log2fc", "de_t", "de_q", "de_mod_q"]
    var[keep].to_csv(HERE / "transcriptome.tsv.gz", sep="\t", float_format="%.6g",
                     index_label="gene")
    facts = {"n_genes": len(model.genes), "latent": model.settings["latent"],
             "steps": args.steps, "fit_seconds": round(fit_s, 1),
             "perturb_seconds": round(perturb_s, 1),
             "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                      / 2**20, 2),
             "n_core": int(var.core.sum()), "n_de_welch": int((var.de_q < 0.05).sum()),
             "n_core_de": int((var.core & (var.de_q < 0.05)).sum())}
    (HERE / "transcriptome.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts, indent=2))


def write_md(sim: pd.DataFrame, kid: pd.DataFrame | None, gsea: pd.DataFrame | None,
             how: str) -> None:
    lines = ["# Core genes against differential expression", "", how, ""]
    for batch, part in sim.groupby("batch"):
        lines += [f"## Simulation, batch confounder {'on' if batch else 'off'}", "",
                  "AUPRC (mean ± SD over seeds; random ranking in the last row) and precision "
                  "among the top 6 per driver kind:", ""]
        g = part.groupby(["method", "kind"])
        mean, sd = g.auprc.mean().unstack(), g.auprc.std().unstack()
        pk = g.precision_at_k.mean().unstack()
        cols = list(KINDS)
        table = ["| method | " + " | ".join(f"AUPRC {k}" for k in cols) + " | "
                 + " | ".join(f"P@6 {k}" for k in cols) + " |",
                 "| --- |" + " ---: |" * (2 * len(cols))]
        for m in METHODS:
            table.append(f"| {m} | " + " | ".join(f"{mean.loc[m, k]:.2f} ± {sd.loc[m, k]:.2f}"
                                                   for k in cols) + " | "
                         + " | ".join(f"{pk.loc[m, k]:.2f}" for k in cols) + " |")
        rnd = g.random_auprc.mean().unstack().iloc[0]
        table.append("| random | " + " | ".join(f"{rnd[k]:.2f}" for k in cols) + " |"
                     + " |" * len(cols))
        lines += table + [""]
    if kid is not None:
        lines += ["## Kidney", ""]
        parts = {"Overlap with DE at q < 0.05 (the top as many genes as the sweep's core "
                 "genes) and rank correlation with |t|:": kid.test.isin(["welch", "moderated"]),
                 "Rank correlation of each ranking with the gene's SD of log2 expression over "
                 "all samples (no labels):": kid.test.str.startswith("sd"),
                 "The transcriptome model against the subset sweep's core genes:":
                 kid.test.str.startswith("sweep")}
        for title, rows in parts.items():
            part = kid[rows].dropna(axis=1, how="all")
            part = part.astype({c: int for c in part.columns if c.startswith("n_")})
            if len(part):
                lines += [title, "", part.to_markdown(index=False, floatfmt=".3f",
                                                      missingval=""), ""]
        sig = (gsea.assign(sig=gsea["FDR q-val"].astype(float) < 0.05)
               .groupby(["ranking", "library"]).sig.sum().unstack(fill_value=0))
        lines += ["GSEA prerank (gseapy, 1000 permutations): gene sets at FDR < 0.05", "",
                  sig.to_markdown(), ""]
    (HERE / "results.md").write_text("\n".join(lines))


def _kept(gsea: pd.DataFrame) -> pd.DataFrame:
    """The sets worth keeping on disk: FDR < 0.25, GSEA's own threshold for a lead."""
    return gsea[gsea["FDR q-val"].astype(float) < 0.25]


def kidney_again() -> None:
    """The kidney part alone, beside the simulation's recorded ``results.csv`` (for example
    once ``transcriptome.tsv.gz`` exists)."""
    t0 = time.perf_counter()
    kid, gsea = kidney()
    kid.to_csv(HERE / "kidney.csv", index=False, float_format="%.4g")
    _kept(gsea).to_csv(HERE / "kidney_gsea.csv", index=False, float_format="%.4g")
    study_how = (HERE / "results.md").read_text().splitlines()[2].split(" The kidney part")[0]
    how = (f"{study_how} The kidney part was then run again alone "
           f"(`python experiments/core_vs_de/run.py kidney`, "
           f"{(time.perf_counter() - t0) / 60:.1f} min).")
    write_md(pd.read_csv(HERE / "results.csv"), kid, gsea, how)
    print(how)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", default="study",
                    choices=["study", "transcriptome", "kidney"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=2000, help="training steps of every model")
    ap.add_argument("--quick", action="store_true", help="a small matrix and 200 steps")
    ap.add_argument("--no-kidney", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.part == "transcriptome":
        return transcriptome(args)
    if args.part == "kidney":
        return kidney_again()
    if args.quick:
        args.steps, args.seeds = 200, args.seeds[:1]
    t0 = time.perf_counter()
    sim = simulation(args.seeds, args.steps, args.quick)
    kid = gsea = None
    if not args.no_kidney:
        kid, gsea = kidney()
    minutes = (time.perf_counter() - t0) / 60
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    how = (f"`python experiments/core_vs_de/run.py {' '.join(os.sys.argv[1:])}`: seeds "
           f"{args.seeds}, {args.steps} training steps per model, {minutes:.1f} min in all on "
           f"{os.cpu_count()} CPU cores, peak memory {peak:.1f} GiB.")
    suffix = "_quick" if args.quick else ""
    sim.to_csv(HERE / f"results{suffix}.csv", index=False, float_format="%.4g")
    if not args.quick:
        if kid is not None:
            kid.to_csv(HERE / "kidney.csv", index=False, float_format="%.4g")
            _kept(gsea).to_csv(HERE / "kidney_gsea.csv", index=False, float_format="%.4g")
        write_md(sim, kid, gsea, how)
    print(how)


if __name__ == "__main__":
    main()
