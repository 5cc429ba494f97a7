"""gemdiff: class-conditional diffusion models for gene expression matrices."""

from gemdiff.errors import GemdiffError, InputError

__version__ = "0.1.0"
__all__ = ["GemdiffError", "InputError", "__version__"]
