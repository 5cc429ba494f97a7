"""The Python API: :class:`GEMDiff`, a model object over AnnData, DataFrames and files."""

from gemdiff.api.model import GEMDiff

__all__ = ["GEMDiff"]
