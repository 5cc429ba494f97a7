"""Fetch a public dataset into the data folder and verify its checksums.

    python -m gemdiff.download gemdiff_example [--data-dir DIR]
    python -m gemdiff.download rnaseqdb_kidney
    python -m gemdiff.download --list
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from gemdiff.data.download import DATASETS, MANUAL

    parser = argparse.ArgumentParser(
        prog="gemdiff download", description="Fetch a public dataset and verify its checksums.")
    parser.add_argument("dataset", nargs="?", choices=sorted(DATASETS), help="dataset to fetch")
    parser.add_argument("--data-dir", default=os.environ.get("GEMDIFF_DATA_DIR", "./data"),
                        help="where datasets live (default: $GEMDIFF_DATA_DIR or ./data)")
    parser.add_argument("--list", action="store_true", help="list the datasets and exit")
    args = parser.parse_args(argv)
    if args.list or not args.dataset:
        for name, (folder, desc, files) in DATASETS.items():
            print(f"{name:18s} {desc} -> <data-dir>/{folder}/ ({len(files)} files)")
        return 0
    from gemdiff.common.errors import GemdiffError
    from gemdiff.data.download import download

    try:
        for path in download(args.dataset, args.data_dir):
            print(f"ok  {path}")
    except GemdiffError as err:
        print(f"gemdiff download: error: {err}", file=sys.stderr)
        return 2
    if args.dataset in MANUAL:
        print(f"note: {MANUAL[args.dataset]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
