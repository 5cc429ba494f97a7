"""Readers on the real public files and on hand-made edge cases."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from gemdiff.data.io import read_gemdiff, read_gmt, read_h5ad, read_labels, read_rnaseqdb


def test_breast_example_shapes_and_classes(data_dir):
    ex = data_dir / "gemdiff_example"
    train = read_gemdiff(ex / "example_train.txt", ex / "example_train_labels.txt")
    test = read_gemdiff(ex / "example_test.txt", ex / "example_test_labels.txt")
    assert train.values.shape == (788, 16) and test.values.shape == (393, 16)
    assert train.class_counts() == {"normal": 125, "tumor": 663}
    assert test.class_counts() == {"normal": 74, "tumor": 319}
    assert train.genes == test.genes and train.genes[0] == "MTUS1"
    # Empty cells are unexpressed genes, read as missing, not as zero or an error.
    assert np.isnan(train.values).sum() > 0
    # The test label file has Windows line endings and no final newline.
    raw = (ex / "example_test_labels.txt").read_bytes()
    assert b"\r\n" in raw and not raw.endswith(b"\n")
    assert all("\r" not in s for s in test.labels)


def test_labels_matched_by_id_not_position(tmp_path):
    m = tmp_path / "m.tsv"
    m.write_text("\tA\tB\ns1\t1\t2\ns2\t3\t4\ns3\t5\t6\n")
    lab = tmp_path / "l.tsv"
    lab.write_text("s3\ttumor\ns1\tnormal\ns2\ttumor\n")
    gem = read_gemdiff(m, lab)
    assert gem.samples == ["s1", "s2", "s3"]
    assert gem.labels.tolist() == ["normal", "tumor", "tumor"]


def test_bom_crlf_whitespace_gzip(tmp_path):
    m = tmp_path / "m.tsv.gz"
    with gzip.open(m, "wt", newline="") as fh:
        fh.write("\ufeff\tA\tB\r\ns1\t1.5\tNA\r\ns2\t\t4")
    lab = tmp_path / "l.tsv"
    lab.write_bytes("\ufeffs1\t normal \r\ns2\ttumor  ".encode())
    gem = read_gemdiff(m, lab)
    assert gem.genes == ["A", "B"]
    assert gem.labels.tolist() == ["normal", "tumor"]
    assert gem.values[0, 0] == 1.5 and np.isnan(gem.values[0, 1]) and np.isnan(gem.values[1, 0])


def test_read_labels_strips(tmp_path):
    lab = tmp_path / "l.tsv"
    lab.write_text("a\tx\n\nb\t y\n")
    assert read_labels(lab).to_dict() == {"a": "x", "b": "y"}


def test_kidney_rnaseqdb(data_dir):
    d = data_dir / "rnaseqdb"
    gem = read_rnaseqdb({"tumor": [d / "kich-rsem-fpkm-tcga-t.txt.gz"],
                         "normal": [d / "kich-rsem-fpkm-tcga.txt.gz",
                                    d / "kidney-rsem-fpkm-gtex.txt.gz"]})
    assert gem.class_counts() == {"tumor": 60, "normal": 25 + 32}
    assert gem.values.shape == (117, 19216)
    assert gem.values.min() >= 0  # linear FPKM


def test_hallmark_gmt(data_dir):
    sets = read_gmt(data_dir / "genesets" / "h.all.v7.0.symbols.gmt")
    assert len(sets) == 50 and "HALLMARK_E2F_TARGETS" in sets
    kegg = read_gmt(data_dir / "genesets" / "enrichr.KEGG_2016.gmt")  # empty description column
    assert all(len(g) > 0 for g in kegg.values())


def test_h5ad_roundtrip(tmp_path):
    anndata = pytest.importorskip("anndata")
    import pandas as pd

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    obs = pd.DataFrame({"state": ["a", "b", "a", "b"]}, index=[f"c{i}" for i in range(4)])
    var = pd.DataFrame(index=["g1", "g2", "g3"])
    path = tmp_path / "x.h5ad"
    anndata.AnnData(x, obs=obs, var=var).write_h5ad(path)
    gem = read_h5ad(path, "state")
    assert gem.values.shape == (4, 3) and gem.genes == ["g1", "g2", "g3"]
    assert gem.labels.tolist() == ["a", "b", "a", "b"]


def test_repeated_anndata_names_point_to_make_unique():
    anndata = pytest.importorskip("anndata")
    import pandas as pd

    from gemdiff.common.errors import InputError
    from gemdiff.data.io import gem_from_anndata

    obs = pd.DataFrame({"state": ["a", "b"]}, index=["c0", "c1"])
    with pytest.warns(UserWarning):  # anndata's own note on non-unique names
        adata = anndata.AnnData(np.ones((2, 3)), obs=obs,
                                var=pd.DataFrame(index=["g1", "g2", "g1"]))
    with pytest.raises(InputError, match=r"gene 'g1' appears more than once "
                                         r"\(adata.var_names_make_unique\(\)"):
        gem_from_anndata(adata, "state")
    adata.var_names_make_unique()
    assert gem_from_anndata(adata, "state").genes == ["g1", "g2", "g1-1"]


def test_every_reader_decodes_latin1_the_same_way(tmp_path, caplog):
    """A file that is not UTF-8 is read as Latin-1 by the GMT, label and matrix readers alike
    (with a warning); a binary file is named as one."""
    from gemdiff.common.errors import InputError

    (tmp_path / "lib.gmt").write_bytes("SET_A\tr\xe9ponse\tG1\tG2\n".encode("latin-1"))
    (tmp_path / "x.tsv").write_bytes("\tG1\tG\xe92\ns1\t1\t2\ns2\t3\t4\n".encode("latin-1"))
    (tmp_path / "y.tsv").write_bytes("s1\tn\xe9\ns2\ttumor\n".encode("latin-1"))
    with caplog.at_level("WARNING"):
        assert read_gmt(tmp_path / "lib.gmt") == {"SET_A": ["G1", "G2"]}
        gem = read_gemdiff(tmp_path / "x.tsv", tmp_path / "y.tsv")
    assert gem.genes == ["G1", "G\xe92"] and list(gem.labels) == ["n\xe9", "tumor"]
    assert caplog.text.count("read as Latin-1") == 3
    (tmp_path / "bin.gmt").write_bytes(b"SET\t\x00\x01\x02garbage")
    with pytest.raises(InputError, match="bin.gmt: cannot be read as text: it is a binary"):
        read_gmt(tmp_path / "bin.gmt")


def test_a_gmt_set_listed_twice_names_both_lines(tmp_path):
    from gemdiff.common.errors import InputError

    (tmp_path / "lib.gmt").write_text("A\td\tG1\tG2\n\nB\td\tG3\nA\td\tG4\n")
    with pytest.raises(InputError, match="gene set 'A' is listed twice, on lines 1 and 4"):
        read_gmt(tmp_path / "lib.gmt")


def test_gene_symbols_na_and_nan_stay_text(tmp_path):
    """RNAseqDB rows for the genes 'NA' and 'NaN' keep their names; missing values in the
    numbers are still missing."""
    (tmp_path / "t.txt").write_text("Hugo_Symbol\tEntrez_Gene_Id\ts1\ts2\nNA\t1\t1\t2\n"
                                    "NaN\t2\t3\tNA\nTP53\t3\t1\t2\n")
    (tmp_path / "n.txt").write_text("Hugo_Symbol\tEntrez_Gene_Id\ts3\nNA\t1\t5\nNaN\t2\t6\n"
                                    "TP53\t3\t7\n")
    gem = read_rnaseqdb({"tumor": tmp_path / "t.txt", "normal": tmp_path / "n.txt"})
    assert gem.genes == ["NA", "NaN", "TP53"]
    assert np.isnan(gem.values[1, 1]) and np.isfinite(np.delete(gem.values.ravel(), 4)).all()
