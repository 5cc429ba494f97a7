"""The paper's Hallmark workflow on the kidney RNAseqDB data: screen, sweep, core genes, enrichment.

    GEMDIFF_DATA_DIR=../shared/data python experiments/hallmark_kidney/run.py [--work DIR]

Runs the four commands a user would run, each in a fresh process, timing each stage:

1. ``gemdiff.screen data=kidney gmt=<Hallmarks>``: 16-gene subsets of the 50 Hallmark sets
   (no gene in two subsets), 1000 random controls, the feature-size study;
2. ``gemdiff.core``: a model per high-potential subset and seed trained on tumour and normal
   samples, tumours carried to normal, with a permuted-label model for each as the null;
3. ``gemdiff.enrich``: the core genes against GO Biological Process and KEGG, with every gene
   of the matrix as the background.

Copies the tables and figures next to this file (``results/``; of the enrichment table the 50
best sets) with ``timings.json``. Each stage
runs in its own folder under ``--work``; a stage whose folder holds its results is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMINGS = HERE / "results/timings.json"


def stage(name: str, args: list[str], folder: Path, done: str, timings: dict) -> None:
    if (folder / done).is_file():
        print(f"{name}: already done in {folder}")
        return
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", f"gemdiff.{name}", *args, f"hydra.run.dir={folder}"],
                   check=True)
    timings[name] = round(time.perf_counter() - t, 1)
    print(f"{name}: {timings[name]} s")
    TIMINGS.parent.mkdir(exist_ok=True)
    TIMINGS.write_text(json.dumps(timings, indent=2) + "\n")  # kept if a later stage fails


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("outputs/hallmark_kidney"))
    ap.add_argument("--steps", type=int, default=2000, help="training steps per subset model")
    ap.add_argument("--n_jobs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    data_dir = Path(os.environ.get("GEMDIFF_DATA_DIR", "data"))
    genesets = data_dir / "genesets"
    work = args.work.resolve()
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}

    stage("screen", ["data=kidney", f"gmt={genesets / 'h.all.v7.0.symbols.gmt'}",
                     "umap.n_epochs=200", "progress=false"], work / "screen", "summary.json",
          timings)
    stage("core", [f"screen={work / 'screen'}", "source=tumor", "target=normal",
                   "launcher=joblib", f"n_jobs={args.n_jobs}",
                   f"seeds=[{','.join(map(str, args.seeds))}]",
                   f"job_overrides=[\"trainer.max_steps={args.steps}\",\"preset=paper\"]"],
          work / "core", "summary.json", timings)
    stage("enrich", [f"genes={work / 'core/core_genes.txt'}",
                     f"background={data_dir / 'rnaseqdb/kich-rsem-fpkm-tcga-t.txt.gz'}"],
          work / "enrich", "summary.json", timings)

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    # Paths of this machine become $GEMDIFF_DATA_DIR and <work> in the recorded files.
    local = [(str(data_dir.resolve()), "$GEMDIFF_DATA_DIR"), (str(data_dir), "$GEMDIFF_DATA_DIR"),
             (str(work), "<work>")]
    for folder, names in (("screen", ["subsets.tsv", "sets.tsv", "feature_sizes.tsv",
                                      "summary.json", "scores.png", "umaps.png",
                                      "feature_sizes.png"]),
                          ("core", ["core_genes.tsv", "subset_scores.tsv", "summary.json",
                                    "correlation.png", "scores.png"]),
                          ("enrich", ["enrichment.tsv", "summary.json", "enrichment.png"])):
        for name in names:
            src = work / folder / name
            if src.is_file() and src.suffix == ".json":
                text = src.read_text()
                for path, placeholder in local:
                    text = text.replace(path, placeholder)
                (results / f"{folder}_{name}").write_text(text)
            elif src.is_file():
                shutil.copy(src, results / f"{folder}_{name}")
    table = results / "enrich_enrichment.tsv"  # every set tested: keep the 50 best
    if table.is_file():
        lines = table.read_text().splitlines(keepends=True)
        table.write_text("".join(lines[:51]))


if __name__ == "__main__":
    main()
