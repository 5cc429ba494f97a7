"""Reading, selecting, preprocessing and serving gene expression matrices."""

from gemdiff.common.lazy import lazy_attributes

_EXPORTS = {
    "GEM": "gemdiff.data.io", "read_gemdiff": "gemdiff.data.io", "read_gmt": "gemdiff.data.io",
    "read_h5ad": "gemdiff.data.io", "read_labels": "gemdiff.data.io",
    "read_rnaseqdb": "gemdiff.data.io", "read_samples": "gemdiff.data.io",
    "GeneSelection": "gemdiff.data.genesets", "GeneSubset": "gemdiff.data.genesets",
    "split_gene_sets": "gemdiff.data.genesets",
    "DataOptions": "gemdiff.data.dataset", "PreparedData": "gemdiff.data.dataset",
    "prepare_data": "gemdiff.data.dataset", "read_dataset": "gemdiff.data.dataset",
    "Preprocessor": "gemdiff.data.preprocess",
    "SyntheticGEM": "gemdiff.data.synthetic", "simulate_gem": "gemdiff.data.synthetic",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
