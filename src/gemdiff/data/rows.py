"""Matrices read a block of rows at a time: dense arrays, scipy sparse matrices and the ``X`` of
an AnnData opened backed (on disk).

Single-cell data hold far more cells than memory holds dense. Everything that needs all rows
(library sizes, per-gene moments, constant genes) walks them in blocks, and only the chosen
genes of the rows kept are ever loaded, as a sparse matrix.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy import sparse

# A block holds about this many cells (rows x genes); fewer rows for wide matrices.
BLOCK_CELLS = 1 << 24
MAX_BLOCK_ROWS = 10_000


class BackedRows:
    """Rows of a matrix on disk (an AnnData's ``X`` opened with ``backed="r"``), read in blocks
    only when asked for.

    Row indexing returns another :class:`BackedRows` (nothing is read); indexing columns
    (``m[:, cols]``) reads the rows in blocks and returns those columns as a CSR matrix.
    """

    def __init__(self, stored, rows: np.ndarray | None = None):
        self.stored = stored
        self.rows = np.arange(stored.shape[0]) if rows is None else np.asarray(rows, dtype=int)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), int(self.stored.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        view = self if isinstance(rows, slice) and rows == slice(None) else \
            BackedRows(self.stored, self.rows[rows])
        if isinstance(cols, slice) and cols == slice(None):
            return view
        parts = [sparse.csr_matrix(block[:, cols]) for _, block in row_blocks(view)]
        if not parts:
            return sparse.csr_matrix((0, len(np.arange(self.shape[1])[cols])))
        return sparse.vstack(parts, format="csr")

    def read(self, rows: np.ndarray):
        """Rows (indices into this view) as an in-memory block, in the order given."""
        r = self.rows[np.asarray(rows, dtype=int)]
        if not len(r):
            return self.stored[0:0]
        lo, hi = int(r.min()), int(r.max()) + 1
        block = self.stored[lo:hi]  # one contiguous read, then the rows wanted
        return block[r - lo]


def block_rows(n_cols: int) -> int:
    """Rows per block for a matrix of ``n_cols`` columns."""
    return int(max(64, min(MAX_BLOCK_ROWS, BLOCK_CELLS // max(n_cols, 1))))


def row_blocks(values, size: int | None = None) -> Iterator[tuple[int, object]]:
    """``(first row, block)`` over the rows of a dense, sparse (as CSR) or backed matrix."""
    n, m = values.shape
    size = size or block_rows(m)
    if sparse.issparse(values):
        values = values.tocsr()
    for start in range(0, n, size):
        stop = min(n, start + size)
        if isinstance(values, BackedRows):
            yield start, values.read(np.arange(start, stop))
        else:
            yield start, values[start:stop]


def row_sums(values, ignore_nan: bool = True) -> np.ndarray:
    """Per row, the sum of the values (float64); missing cells count as 0."""
    out = np.empty(values.shape[0])
    for start, block in row_blocks(values):
        if sparse.issparse(block):
            block = block.tocsr(copy=True)
            if ignore_nan:
                block.data = np.nan_to_num(block.data)
            out[start:start + block.shape[0]] = np.asarray(block.sum(axis=1)).ravel()
        else:
            b = np.asarray(block, dtype=np.float64)
            out[start:start + len(b)] = np.nansum(b, axis=1) if ignore_nan else b.sum(axis=1)
    return out


def column_moments(values, transform=None, row_scale: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the mean and the variance (ddof 1) of ``transform(values * row_scale)``.

    ``transform`` maps a float64 block elementwise (the stored values of a sparse block: its
    implicit zeros stay 0); None leaves values as they are. Missing cells count as 0 after it.
    """
    n, m = values.shape
    total, squares = np.zeros(m), np.zeros(m)
    for start, block in row_blocks(values):
        scale = None if row_scale is None else row_scale[start:start + block.shape[0]]
        if sparse.issparse(block):
            block = sparse.csr_matrix(block, dtype=np.float64)
            if scale is not None:
                block = sparse.diags(scale) @ block
            data = block.data if transform is None else transform(block.data)
            block.data = np.nan_to_num(data)
            total += np.asarray(block.sum(axis=0)).ravel()
            squares += np.asarray(block.multiply(block).sum(axis=0)).ravel()
        else:
            b = np.asarray(block, dtype=np.float64)
            if scale is not None:
                b = b * scale[:, None]
            b = np.nan_to_num(b if transform is None else transform(b))
            total += b.sum(axis=0)
            squares += (b * b).sum(axis=0)
    mean = total / max(n, 1)
    var = (squares - n * mean ** 2) / max(n - 1, 1)
    return mean, np.maximum(var, 0.0)


def take_columns(values, cols, row_scale: np.ndarray | None = None, dtype=np.float32
                 ) -> sparse.csr_matrix:
    """Columns ``cols`` of every row as a CSR matrix of ``dtype``, each row multiplied by
    ``row_scale`` where given; read a block at a time, so only the result is ever whole."""
    parts = []
    for start, block in row_blocks(values):
        b = sparse.csr_matrix(block[:, cols], dtype=np.float64)
        if row_scale is not None:
            b = sparse.diags(row_scale[start:start + b.shape[0]]) @ b
        parts.append(sparse.csr_matrix(b, dtype=dtype))
    if not parts:
        return sparse.csr_matrix((0, len(cols)), dtype=dtype)
    return sparse.vstack(parts, format="csr", dtype=dtype)
