"""Every rejected input gives one clear error naming the file and the problem."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gemdiff.data.dataset import DataOptions, prepare_data
from gemdiff.data.genesets import GeneSelection
from gemdiff.data.io import read_gemdiff, read_gmt, read_rnaseqdb
from gemdiff.common.errors import GemdiffError, InputError

GOOD = "\tA\tB\tC\ns1\t1\t2\t3\ns2\t2\t3\t4\ns3\t3\t4\t5\ns4\t4\t5\t6\n"
LABELS = "s1\tnormal\ns2\tnormal\ns3\ttumor\ns4\ttumor\n"

CASES = {
    # name: (matrix text or bytes, label text, expected phrase)
    "empty_file": ("", LABELS, "is empty"),
    "header_only": ("\tA\tB\n", LABELS, "no data rows"),
    "ragged_rows": ("\tA\tB\ns1\t1\t2\t9\n", "s1\tx\n", "line 2 has 4 fields"),
    "truncated": ("\tA\tB\ns1\t1\t2\ns2\t3", "s1\tx\ns2\ty\n", "line 3 has 2 fields"),
    "duplicate_sample": ("\tA\tB\ns1\t1\t2\ns1\t3\t4\n", "s1\tx\n", "sample id 's1' appears more"),
    "duplicate_gene": ("\tA\tA\ns1\t1\t2\n", "s1\tx\n", "gene 'A' appears more"),
    "text_in_cell": ("\tA\tB\ns1\t1\thigh\n", "s1\tx\n", "non-numeric value 'high'"),
    "infinite": ("\tA\tB\ns1\t1\tinf\n", "s1\tx\n", "infinite value"),
    "wrong_delimiter": (",A,B\ns1,1,2\n", "s1\tx\n", "tab-separated"),
    "missing_label": (GOOD, "s1\tnormal\ns2\ttumor\n", "has no label for 2 sample"),
    "extra_label": (GOOD, LABELS + "s9\ttumor\n", "not in"),
    "duplicate_label": (GOOD, LABELS + "s1\ttumor\n", "labelled more than once"),
    "bad_label_line": (GOOD, "s1 normal\n", "is not 'sample<TAB>label'"),
    "empty_label_file": (GOOD, "", "is empty"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_rejects(tmp_path, name):
    matrix, labels, phrase = CASES[name]
    m, lab = tmp_path / f"{name}.tsv", tmp_path / f"{name}_labels.tsv"
    m.write_text(matrix)
    lab.write_text(labels)
    with pytest.raises(InputError) as err:
        read_gemdiff(m, lab)
    assert phrase in str(err.value)
    assert name in str(err.value)  # the message names the file at fault


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_gemdiff(tmp_path / "nope.tsv", tmp_path / "l.tsv")
    with pytest.raises(InputError, match="is a directory"):
        read_gemdiff(tmp_path, tmp_path / "l.tsv")


def test_gzip_that_is_not_gzip(tmp_path):
    m = tmp_path / "m.tsv.gz"
    m.write_text(GOOD)
    with pytest.raises(InputError, match="not gzip"):
        read_gemdiff(m, tmp_path / "l.tsv")


def test_rnaseqdb_wrong_first_column(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("Gene\ts1\nA\t1\n")
    with pytest.raises(InputError, match="Hugo_Symbol"):
        read_rnaseqdb({"tumor": [f]})


def _gem(tmp_path, labels=LABELS):
    m, lab = tmp_path / "m.tsv", tmp_path / "l.tsv"
    m.write_text(GOOD)
    lab.write_text(labels)
    return read_gemdiff(m, lab)


def test_one_class_only(tmp_path):
    gem = _gem(tmp_path, "s1\tx\ns2\tx\ns3\tx\ns4\tx\n")
    with pytest.raises(InputError, match="only one class"):
        prepare_data(gem)


def test_unknown_requested_class(tmp_path):
    with pytest.raises(InputError, match="has no class 'metastatic'"):
        prepare_data(_gem(tmp_path), options=DataOptions(classes=("normal", "metastatic")))


def test_gene_set_without_overlap(tmp_path):
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("SET1\t\tX\tY\tZ\n")
    sel = GeneSelection(gmt=str(gmt), gene_set="SET1")
    with pytest.raises(InputError, match="no gene in the matrix") as err:
        prepare_data(_gem(tmp_path), selection=sel)
    assert "sets.gmt" in str(err.value)


def test_unknown_gene_in_list(tmp_path):
    with pytest.raises(InputError, match="not in the matrix"):
        prepare_data(_gem(tmp_path), selection=GeneSelection(genes=["A", "TP53"]))


def test_conflicting_gene_selection():
    with pytest.raises(GemdiffError, match="choose one gene selection"):
        GeneSelection(genes=["A"], n_genes=3)


def test_empty_gmt(tmp_path):
    gmt = tmp_path / "e.gmt"
    gmt.write_text("\n")
    with pytest.raises(InputError, match="holds no gene sets"):
        read_gmt(gmt)


def test_cli_bad_input_clear_error_no_traceback_no_output(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("\tA\tB\ns1\t1\toops\ns2\t1\t2\n")
    lab = tmp_path / "labels.tsv"
    lab.write_text("s1\tnormal\ns2\ttumor\n")
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "gemdiff.train", "data=breast", f"data.source.matrix={bad}",
         f"data.source.labels={lab}", "data.source.test_matrix=null", f"paths.log_dir={runs}",
         "logger=none"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**__import__("os").environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 2
    assert "bad.tsv" in proc.stderr and "non-numeric value 'oops'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.rglob("*")), list(runs.rglob("*"))


def test_evaluate_cli_missing_file(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "gemdiff", "evaluate", "data=synthetic",
         f"synthetic={tmp_path / 'nope.tsv'}", f"synthetic_labels={tmp_path / 'nope.tsv'}",
         f"paths.log_dir={runs}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "nope.tsv" in proc.stderr and "file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.rglob("*")), list(runs.rglob("*"))
