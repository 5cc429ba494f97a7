"""The malformed-input corpus (``tests/bad_inputs/``) through the ``gemdiff`` command line.

Each case runs ``gemdiff <subcommand> ...`` in this process (a fresh interpreter per case would
cost seconds each; ``test_bad_input.py`` runs real subprocesses): it must exit with status 2,
print one line naming the file and the problem, show no traceback and leave no output behind.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from gemdiff.__main__ import main

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
with open(CORPUS / "cases.tsv", newline="") as fh:
    CASES = {row["case"]: row for row in csv.DictReader(fh, delimiter="\t")}


def test_corpus_is_large_enough():
    assert len(CASES) >= 25
    files = [p for p in CORPUS.iterdir() if p.name not in ("README.md", "cases.tsv")]
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_gives_one_clear_error(name, trained_synthetic, tmp_path, capfd):
    case = CASES[name]
    _, summary = trained_synthetic
    args = (case["args"].replace("@dir@", str(CORPUS))
            .replace("@ckpt@", summary["checkpoint"]).split(" "))
    runs = tmp_path / "runs"
    args += [f"paths.log_dir={runs}", "hydra/job_logging=disabled"]
    if args[0] == "train":
        args.append("logger=none")
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capfd.readouterr().err
    assert exit_.value.code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("gemdiff ")]
    assert len(lines) == 1, err
    assert case["expect"] in lines[0] and case["names"] in lines[0], lines[0]
    assert "Traceback" not in err
    left = [p for p in runs.rglob("*") if p.is_file()] if runs.exists() else []
    assert not left, left
