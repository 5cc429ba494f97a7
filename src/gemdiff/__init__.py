"""gemdiff: class-conditional diffusion models for gene expression matrices.

    import gemdiff
    model = gemdiff.GEMDiff.from_anndata(adata, label_key="phenotype", n_genes=16)

The model object (:class:`gemdiff.GEMDiff`) is imported on first use, so that the command-line
apps start without torch.
"""

from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.common.lazy import lazy_attributes

__version__ = "0.1.0"
__all__ = ["GEMDiff", "GemdiffError", "InputError", "__version__"]
__getattr__ = lazy_attributes(__name__, {"GEMDiff": "gemdiff.api.model"})
