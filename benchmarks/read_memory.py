"""Peak memory and time of reading a whole-transcriptome matrix.

    python benchmarks/read_memory.py [--samples 1200] [--genes 20000] [--work /tmp/gemdiff-read]

Writes a GEMDiff-format matrix (samples x genes) and an RNAseqDB-format one (genes x samples,
gzip) of random log-normal expression with a tenth of the cells missing, then reads each in a
fresh process and reports the process's peak resident memory as a multiple of the matrix
itself (samples x genes float64), the peak above the interpreter and libraries loaded before
the read, and the seconds the read took. The data path also scans the matrix for genes with
one value in every sample (``constant_genes``), as ``prepare_data`` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Peak resident memory of this process: VmHWM starts afresh at exec (getrusage's ru_maxrss
# would carry over the parent's peak).
PROBE = r"""
import json, sys, time
import numpy as np
from gemdiff.data.io import read_gemdiff, read_rnaseqdb
from gemdiff.data.preprocess import constant_genes
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
kind, path, labels = sys.argv[1:4]
t0 = time.perf_counter()
gem = read_gemdiff(path, labels) if kind == "gemdiff" else read_rnaseqdb({"tumor": [path]})
read_s = time.perf_counter() - t0
flat = constant_genes(gem.values, "log2")
total_s = time.perf_counter() - t0
peak = hwm()
print(json.dumps({"shape": list(gem.values.shape), "read_s": read_s, "total_s": total_s,
                  "base_kib": base, "peak_kib": peak}))
"""


def write_inputs(work: Path, n_samples: int, n_genes: int) -> tuple[Path, Path, Path]:
    import gzip

    rng = np.random.default_rng(0)
    x = rng.lognormal(1.0, 1.5, (n_samples, n_genes))
    x[rng.random(x.shape) < 0.1] = np.nan
    samples = [f"S{i:05d}" for i in range(n_samples)]
    genes = [f"G{j:05d}" for j in range(n_genes)]
    work.mkdir(parents=True, exist_ok=True)
    cell = np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.4g}", otypes=[object])
    text = cell(x)
    gem, labels, rsdb = work / "matrix.tsv", work / "labels.tsv", work / "rnaseqdb.txt.gz"
    with open(gem, "w") as fh:
        fh.write("\t" + "\t".join(genes) + "\n")
        for s, row in zip(samples, text, strict=True):
            fh.write(s + "\t" + "\t".join(row) + "\n")
    labels.write_text("".join(f"{s}\t{'tumor' if i % 2 else 'normal'}\n"
                              for i, s in enumerate(samples)))
    with gzip.open(rsdb, "wt", compresslevel=1) as fh:
        fh.write("Hugo_Symbol\t" + "\t".join(samples) + "\n")
        for g, col in zip(genes, text.T, strict=True):
            fh.write(g + "\t" + "\t".join(col) + "\n")
    return gem, labels, rsdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1200)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--work", default="/tmp/gemdiff-read")
    args = parser.parse_args()
    work = Path(args.work)
    t0 = time.perf_counter()
    gem, labels, rsdb = work / "matrix.tsv", work / "labels.tsv", work / "rnaseqdb.txt.gz"
    if not all(p.exists() for p in (gem, labels, rsdb)):
        write_inputs(work, args.samples, args.genes)
    print(f"inputs ready in {time.perf_counter() - t0:.0f} s: {gem.stat().st_size / 2**20:.0f} "
          f"MiB text, {rsdb.stat().st_size / 2**20:.0f} MiB gzip")
    matrix_mib = args.samples * args.genes * 8 / 2**20
    print(f"matrix: {args.samples} x {args.genes} float64 = {matrix_mib:.0f} MiB")
    print(f"{'format':10s} {'read s':>7s} {'+scan s':>8s} {'peak MiB':>9s} {'x matrix':>9s} "
          f"{'above start':>12s}")
    for kind, path in (("gemdiff", gem), ("rnaseqdb", rsdb)):
        out = subprocess.run([sys.executable, "-c", PROBE, kind, str(path), str(labels)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        peak, above = r["peak_kib"] / 1024, (r["peak_kib"] - r["base_kib"]) / 1024
        print(f"{kind:10s} {r['read_s']:7.1f} {r['total_s'] - r['read_s']:8.1f} {peak:9.0f} "
              f"{peak / matrix_mib:9.1f} {above / matrix_mib:11.1f}x")


if __name__ == "__main__":
    main()
