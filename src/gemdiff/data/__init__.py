"""Reading, selecting, preprocessing and serving gene expression matrices."""

from gemdiff.data.dataset import PreparedData, prepare_data, read_dataset
from gemdiff.data.genesets import GeneSelection, GeneSubset, split_gene_sets
from gemdiff.data.io import GEM, read_gemdiff, read_gmt, read_h5ad, read_labels, read_rnaseqdb
from gemdiff.data.preprocess import Preprocessor
from gemdiff.data.synthetic import SyntheticGEM, simulate_gem

__all__ = [
    "GEM", "GeneSelection", "GeneSubset", "PreparedData", "Preprocessor", "SyntheticGEM",
    "prepare_data", "read_dataset", "read_gemdiff", "read_gmt", "read_h5ad", "read_labels",
    "read_rnaseqdb", "simulate_gem", "split_gene_sets",
]
