"""Fetch the public datasets into the layout the configs expect, and verify their checksums
(the library of ``python -m gemdiff.download``).

Files land in ``DIR/<folder>/`` (``DIR`` defaults to ``$GEMDIFF_DATA_DIR`` or ``./data``). Each
file is written to a temporary name, checked against its SHA-256 and only then renamed, so an
interrupted or corrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gemdiff.common.errors import GemdiffError, OutputWriteError, filesystem_problem
from gemdiff.common.files import sha256

GEMDIFF_RAW = "https://raw.githubusercontent.com/xai990/GEMDiff/HEAD/data/"
RNASEQDB_RAW = "https://github.com/mskcc/RNAseqDB/raw/HEAD/data/normalized/"
ENRICHR = "https://maayanlab.cloud/Enrichr/geneSetLibrary?mode=text&libraryName="
MSIGDB = "https://www.gsea-msigdb.org/gsea/msigdb/human/collections.jsp"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    sha256: str


DATASETS: dict[str, tuple[str, str, list[RemoteFile]]] = {
    "gemdiff_example": ("gemdiff_example", "GEMDiff breast example, 16 genes, 1181 samples", [
        RemoteFile("example_train.txt", GEMDIFF_RAW + "example_train.txt",
                   "fa3e95d8ca517f633567a82b9588e6dd87e4ab95fb14f2172c3a7fbf5f567c26"),
        RemoteFile("example_train_labels.txt", GEMDIFF_RAW + "example_train_labels.txt",
                   "6271189ad60b7d523cbd445077773e5d9ff2c57ba3267b88f782a4d844e020dd"),
        RemoteFile("example_test.txt", GEMDIFF_RAW + "example_test.txt",
                   "91ec330ad5f8652740da40e14c28ac35a958d8fe16cde576145c9a866786de36"),
        RemoteFile("example_test_labels.txt", GEMDIFF_RAW + "example_test_labels.txt",
                   "f3850f123472a5d2f67fc139040ebf282931dd999959ce48162837394cfec83e"),
    ]),
    "rnaseqdb_kidney": ("rnaseqdb", "RNAseqDB kidney chromophobe tumour + normal, FPKM", [
        RemoteFile("kich-rsem-fpkm-tcga-t.txt.gz", RNASEQDB_RAW + "kich-rsem-fpkm-tcga-t.txt.gz",
                   "0ad7b573d9d93c47a2e97cd53ada731861e31b5386b36ec6206391b908284d42"),
        RemoteFile("kich-rsem-fpkm-tcga.txt.gz", RNASEQDB_RAW + "kich-rsem-fpkm-tcga.txt.gz",
                   "62d017d3e2721b3e07b68129c2cd894bb3a410c67cb094c921a422e18548387c"),
        RemoteFile("kidney-rsem-fpkm-gtex.txt.gz", RNASEQDB_RAW + "kidney-rsem-fpkm-gtex.txt.gz",
                   "36798113cfb1fc230f71a23f426483c17e6d64451dd2a0b163242ac1422e039b"),
    ]),
    "genesets": ("genesets", "Enrichr GO Biological Process 2021 and KEGG 2016 libraries", [
        RemoteFile("enrichr.GO_Biological_Process_2021.gmt", ENRICHR + "GO_Biological_Process_2021",
                   "5987ce789053fdd5533393cd65b9abdb5e08e4fade7b0625a1fe234a1207eea4"),
        RemoteFile("enrichr.KEGG_2016.gmt", ENRICHR + "KEGG_2016",
                   "f4344b643e92a53398a24852c41261f108825b3c819adf27ec5fa056773edd9d"),
    ]),
}
MANUAL = {
    "genesets": f"h.all.v7.0.symbols.gmt (MSigDB Hallmarks) needs a free MSigDB login: "
                f"download it from {MSIGDB} into the same folder",
}


def download(dataset: str, data_dir: str | Path, timeout: float = 60.0) -> list[Path]:
    """Download one dataset into ``data_dir/<folder>``; files already present and intact are kept.

    Raises :class:`GemdiffError` (with the place to put the files by hand) when the network is
    unreachable or a checksum does not match.
    """
    if dataset not in DATASETS:
        raise GemdiffError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    folder, _, files = DATASETS[dataset]
    target = Path(data_dir) / folder
    created = not target.exists()
    for parent in [target, *target.parents]:
        if parent.exists() and not parent.is_dir():
            raise OutputWriteError(parent, "is a file, not a folder; choose another --data-dir")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputWriteError(err.filename or target, f"cannot create the data folder: "
                                                       f"{filesystem_problem(err)}") from None
    try:
        return [_fetch(f, target, dataset, timeout) for f in files]
    except GemdiffError:
        if created and not any(target.iterdir()):
            target.rmdir()
        raise


def _fetch(f: RemoteFile, target: Path, dataset: str, timeout: float) -> Path:
    dest = target / f.name
    if not (dest.exists() and sha256(dest) == f.sha256):
        part = dest.with_name(dest.name + ".part")
        try:
            out = open(part, "wb")
        except OSError as err:
            raise OutputWriteError(dest, f"cannot be written: {filesystem_problem(err)}"
                                   ) from None
        try:
            with out, urllib.request.urlopen(f.url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 20):
                    try:
                        out.write(chunk)
                    except OSError as err:  # a full disk: a local fault, not the network's
                        raise OutputWriteError(dest, f"cannot be written: "
                                                     f"{filesystem_problem(err)}") from None
        except (urllib.error.URLError, OSError) as err:
            part.unlink(missing_ok=True)
            reason = getattr(err, "reason", err)
            raise GemdiffError(
                f"cannot download {f.url} ({reason}); without network, place the file at "
                f"{dest} (and the rest of {dataset} in {target})") from None
        except GemdiffError:
            part.unlink(missing_ok=True)
            raise
        got = sha256(part)
        if got != f.sha256:
            part.unlink()
            raise GemdiffError(f"{f.url}: checksum mismatch (sha256 {got[:12]}..., expected "
                               f"{f.sha256[:12]}...); the public file may have changed")
        try:
            os.replace(part, dest)
        except OSError as err:
            part.unlink(missing_ok=True)
            raise OutputWriteError(dest, f"cannot be written: {filesystem_problem(err)}"
                                   ) from None
    return dest


if __name__ == "__main__":
    import sys

    sys.stderr.write("gemdiff.data.download is the library behind the download app; run "
                     "python -m gemdiff.download (or: gemdiff download)\n")
    sys.exit(2)
