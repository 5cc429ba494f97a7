"""Gene selection modes and the splitting of gene sets into K-gene subsets."""

from __future__ import annotations

import numpy as np
import pytest

from gemdiff.data.genesets import GeneSelection, split_gene_sets
from gemdiff.common.errors import InputError

GENES = [f"G{i}" for i in range(100)]
SETS = {"S1": GENES[:40], "S2": GENES[30:75] + ["ABSENT"], "S3": GENES[90:95]}


def test_subsets_sizes_no_overlap_within_set_and_seeded():
    subs = split_gene_sets(SETS, GENES, size=16, seed=0)
    assert [s.set_name for s in subs] == ["S1", "S1", "S2", "S2"]  # 40 // 16, 45 // 16, 5 // 16
    assert all(len(s.genes) == 16 and len(set(s.genes)) == 16 for s in subs)
    for name in SETS:
        genes = [g for s in subs if s.set_name == name for g in s.genes]
        assert len(genes) == len(set(genes))
        assert set(genes) <= set(SETS[name]) and "ABSENT" not in genes
    assert split_gene_sets(SETS, GENES, 16, seed=0) == subs
    assert split_gene_sets(SETS, GENES, 16, seed=1) != subs


def test_exclusive_subsets_never_share_a_gene():
    subs = split_gene_sets(SETS, GENES, size=8, seed=0, exclusive=True)
    genes = [g for s in subs for g in s.genes]
    assert len(genes) == len(set(genes))


def test_hallmark_subsets_on_kidney_genes(data_dir):
    from gemdiff.data.io import read_gmt, read_rnaseqdb

    d = data_dir / "rnaseqdb"
    gem = read_rnaseqdb({"tumor": [d / "kich-rsem-fpkm-tcga-t.txt.gz"]})
    sets = read_gmt(data_dir / "genesets" / "h.all.v7.0.symbols.gmt")
    assert len(split_gene_sets(sets, gem.genes, 16, seed=0)) == 427


def test_selection_modes(tmp_path):
    gmt = tmp_path / "s.gmt"
    gmt.write_text("\n".join(f"{k}\tdesc\t" + "\t".join(v) for k, v in SETS.items()))
    assert GeneSelection().select(GENES) == GENES
    rand = GeneSelection(n_genes=10, select_by="random", seed=3).select(GENES)
    assert len(rand) == 10 and rand == GeneSelection(n_genes=10, select_by="random",
                                                     seed=3).select(GENES)
    ranks = np.arange(len(GENES))[::-1]  # the last gene the most variable
    assert GeneSelection(n_genes=3).select(GENES, ranks=ranks) == GENES[-3:]
    assert GeneSelection(genes=["G5", "G1"]).select(GENES) == ["G5", "G1"]
    assert GeneSelection(gmt=str(gmt), gene_set="S3").select(GENES) == GENES[90:95]
    sub = GeneSelection(gmt=str(gmt), gene_set="S2", subset_index=1, subset_size=16).select(GENES)
    assert sub == list(split_gene_sets(SETS, GENES, 16, 0)[3].genes)
    with pytest.raises(InputError, match="subset_index=5 does not exist"):
        GeneSelection(gmt=str(gmt), gene_set="S2", subset_index=5).select(GENES)
    with pytest.raises(InputError, match="no gene set 'S9'"):
        GeneSelection(gmt=str(gmt), gene_set="S9").select(GENES)
    with pytest.raises(InputError, match="n_genes=500"):
        GeneSelection(n_genes=500).select(GENES, ranks=np.arange(len(GENES)))
