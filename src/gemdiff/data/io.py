"""Readers for gene expression matrices, label files and GMT gene-set libraries.

Every reader returns plain numpy/pandas data and raises :class:`~gemdiff.errors.InputError`
naming the file and the problem for anything it cannot use. Values stay in the file's own
units; missing cells are NaN.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gemdiff.common.errors import InputError
from gemdiff.data.rows import BackedRows, row_sums, take_columns

NA_VALUES = ["", "NA", "NaN", "nan", "N/A", "NULL", "null"]


@dataclass
class GEM:
    """A gene expression matrix with one label per sample.

    Attributes
    ----------
    values
        (n_samples, n_genes) in the input's units; NaN marks a missing cell. float64, a scipy
        sparse matrix as read from AnnData, or :class:`~gemdiff.data.rows.BackedRows` (an
        AnnData on disk): :meth:`take_genes` reads the chosen genes only, so a wide sparse
        matrix is never densified whole.
    samples, genes
        Row and column names, unique.
    labels
        (n_samples,) class name of each row, matched by sample id; None for samples read
        without labels (new samples to perturb).
    source
        Where the matrix came from, for messages.
    row_scale
        Per sample, a factor its values are multiplied by when genes are taken (library-size
        normalisation of counts, :meth:`normalized`); None: none.
    """

    values: Any
    samples: list[str]
    genes: list[str]
    labels: np.ndarray | None
    source: str = ""
    meta: dict = field(default_factory=dict)
    row_scale: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        return [] if self.labels is None else sorted(set(self.labels.tolist()))

    def class_counts(self) -> dict[str, int]:
        if self.labels is None:
            return {}
        names, counts = np.unique(self.labels, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    def take_genes(self, genes: Sequence[str], sparse: bool = False) -> "GEM":
        """The matrix of ``genes`` only, as dense float64 (``sparse``: as a float32 CSR
        matrix, read a block of rows at a time), rows multiplied by :attr:`row_scale`."""
        index = {g: i for i, g in enumerate(self.genes)}
        cols = [index[g] for g in genes]
        if sparse:
            values = take_columns(self.values, cols, self.row_scale)
        else:
            values = dense(self.values[:, cols])
            if self.row_scale is not None:
                values *= self.row_scale[:, None]
        return GEM(values, list(self.samples), list(genes), self.labels, self.source,
                   dict(self.meta))

    def take_samples(self, rows: np.ndarray) -> "GEM":
        labels = None if self.labels is None else self.labels[rows]
        scale = None if self.row_scale is None else self.row_scale[rows]
        return GEM(self.values[rows], [self.samples[i] for i in rows], list(self.genes),
                   labels, self.source, dict(self.meta), scale)

    def normalized(self, target_sum: float | None = None) -> "GEM":
        """Counts scaled, sample by sample, to ``target_sum`` over all genes (scanpy's
        ``normalize_total``; None: the median of the samples' totals, kept in
        ``meta["target_sum"]``), applied as genes are taken. A sample without counts is an
        error naming it."""
        totals = row_sums(self.values)
        empty = np.flatnonzero(~(totals > 0))
        if len(empty):
            raise InputError(self.source or None, f"sample {self.samples[empty[0]]!r} has no "
                                                  f"counts in any gene ({len(empty)} such); "
                                                  "remove such samples first")
        target = float(np.median(totals)) if target_sum is None else float(target_sum)
        return GEM(self.values, list(self.samples), list(self.genes), self.labels, self.source,
                   dict(self.meta) | {"target_sum": target}, target / totals)

    def to_anndata(self, label_key: str = "label"):
        """The matrix as AnnData: ``X`` the values, ``obs[label_key]`` the labels."""
        import anndata

        obs = pd.DataFrame(index=pd.Index(self.samples, dtype=str))
        if self.labels is not None:
            obs[label_key] = pd.Categorical(self.labels)
        return anndata.AnnData(X=self.values, obs=obs,
                               var=pd.DataFrame(index=pd.Index(self.genes, dtype=str)))

    def with_labels(self, labels: np.ndarray) -> "GEM":
        return GEM(self.values, list(self.samples), list(self.genes), np.asarray(labels),
                   self.source, dict(self.meta), self.row_scale)


def dense(values) -> np.ndarray:
    """float64 array of a dense or scipy sparse matrix."""
    if hasattr(values, "toarray"):
        values = values.toarray()
    return np.asarray(values, dtype=np.float64)


def check_file(path: str | Path) -> Path:
    """``path`` as a Path, once it is known to be a readable, non-empty file (and gzip where
    it ends in ``.gz``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror})") from None
    if path.suffix == ".gz" and head != b"\x1f\x8b":
        raise InputError(path, "ends in .gz but is not gzip-compressed")
    if not head:
        raise InputError(path, "is empty")
    return path


# Bytes that no text file holds (tab, line ends, form feed and escape aside): a binary file.
_BINARY = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b")
_encodings: dict[tuple[str, int, int], str] = {}


def text_encoding(path: Path) -> str:
    """How every reader decodes ``path``: UTF-8 (a byte-order mark dropped), or Latin-1 for a
    text file that is not valid UTF-8 (older GMT and label files), with a warning.

    A binary file raises :class:`~gemdiff.common.errors.InputError`. The answer is kept per
    file (path, size, modification time), so a file read three ways is scanned once.
    """
    import codecs
    import logging

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _encodings:
        return _encodings[key]
    decoder, utf8, offset = codecs.getincrementaldecoder("utf-8")(), True, 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                bad = next((i for i, b in enumerate(chunk) if b in _BINARY), None) \
                    if chunk.translate(None, _BINARY) != chunk else None
                if bad is not None:
                    raise InputError(path, f"cannot be read as text: it is a binary file (byte "
                                           f"0x{chunk[bad]:02x} at offset {offset + bad})")
                if utf8:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        utf8 = False
                offset += len(chunk)
    except (OSError, EOFError) as err:
        raise InputError(path, f"cannot be read ({err})") from None
    encoding = "utf-8-sig" if utf8 else "latin-1"
    if not utf8:
        logging.getLogger("gemdiff.io").warning("%s is not UTF-8: read as Latin-1", path)
    _encodings[key] = encoding
    return encoding


def open_text(path: Path) -> io.TextIOBase:
    """A text stream of a file, gzip-decompressed where it ends in ``.gz``, decoded as
    :func:`text_encoding` says."""
    encoding = text_encoding(path)
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    # newline=None reads \r\n and \r as line ends.
    return io.TextIOWrapper(raw, encoding=encoding, newline=None)


def _read_header(path: Path) -> list[str]:
    try:
        with open_text(path) as fh:
            line = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read as text ({err})") from None
    line = line.rstrip("\n")
    if not line.strip():
        raise InputError(path, "is empty or has an empty header line")
    return [c.strip() for c in line.split("\t")]


def _check_field_counts(path: Path, n_fields: int) -> None:
    """Every non-blank line must have as many tab-separated fields as the header.

    pandas would pad a short row with missing values and shift a long one into the index, so a
    truncated or ragged file would be read without complaint.
    """
    with open_text(path) as fh:
        for num, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            got = line.rstrip("\n").count("\t") + 1
            if got != n_fields:
                raise InputError(path, f"has rows of unequal length: line {num} has {got} fields, "
                                       f"the header has {n_fields}")


def _duplicates(names: Sequence[str]) -> list[str]:
    seen, dup = set(), []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    return dup


def _read_numeric_table(path: Path, index_cols: int) -> tuple[list[str], list[str], np.ndarray]:
    """Read a tab-separated table: ``index_cols`` leading name columns, then numbers.

    Returns (row names from the first column, column names, values).
    """
    header = _read_header(path)
    if len(header) <= index_cols:
        raise InputError(path, "has no data columns; is it tab-separated?")
    try:
        _check_field_counts(path, len(header))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read ({err})") from None
    try:
        # Columns named by position, so that missing-value markers apply to the numbers only:
        # a gene symbol or sample id 'NA' or 'NaN' stays text.
        names = [f"c{i}" for i in range(len(header))]
        df = pd.read_csv(
            path, sep="\t", header=0, names=names, index_col=None, keep_default_na=False,
            na_values={n: NA_VALUES for n in names[index_cols:]},
            encoding=text_encoding(path), compression="gzip" if path.suffix == ".gz" else None,
            low_memory=False, dtype={n: str for n in names[:index_cols]},
            float_precision="round_trip",  # the exact double of every decimal written
        )
    except pd.errors.EmptyDataError:
        raise InputError(path, "is empty") from None
    except pd.errors.ParserError as err:
        msg = str(err).strip().replace("Error tokenizing data. C error: ", "")
        raise InputError(path, f"has rows of unequal length ({msg})") from None
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read ({err})") from None
    if df.shape[0] == 0:
        raise InputError(path, "has a header but no data rows")
    rows = df.iloc[:, 0].astype(str).str.strip().tolist()
    data = df.iloc[:, index_cols:]
    bad = [c for c, dt in data.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
    if bad:
        col = bad[0]
        coerced = pd.to_numeric(data[col], errors="coerce")
        row = int(np.flatnonzero(coerced.isna() & data[col].notna())[0])
        raise InputError(path, f"non-numeric value {data[col].iloc[row]!r} in column "
                               f"{header[index_cols + list(data.columns).index(col)]!r}, "
                               f"row {rows[row]!r}")
    values = data.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise InputError(path, f"infinite value in row {rows[r]!r}, column "
                               f"{header[index_cols + c]!r}")
    return rows, header[index_cols:], values


def read_labels(path: str | Path) -> pd.Series:
    """Read a label file: ``sample<TAB>label`` per line, no header.

    Returns a Series of labels indexed by sample id; whitespace around fields is stripped.
    """
    path = check_file(path)
    try:
        with open_text(path) as fh:
            lines = [ln.rstrip("\n") for ln in fh]
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read as text ({err})") from None
    ids, labels = [], []
    for num, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise InputError(path, f"line {num} is not 'sample<TAB>label': {line[:60]!r}")
        ids.append(parts[0])
        labels.append(parts[1])
    if not ids:
        raise InputError(path, "holds no labels")
    dup = _duplicates(ids)
    if dup:
        raise InputError(path, f"sample id {dup[0]!r} is labelled more than once")
    return pd.Series(labels, index=ids, dtype=object)


def attach_labels(
    samples: list[str], labels: pd.Series, matrix: Path, label_file: Path
) -> np.ndarray:
    """Match labels to matrix rows by sample id, never by position."""
    missing = [s for s in samples if s not in labels.index]
    if missing:
        raise InputError(label_file, f"has no label for {len(missing)} sample(s) of {matrix}, "
                                     f"e.g. {missing[0]!r}")
    extra = sorted(set(labels.index) - set(samples))
    if extra:
        raise InputError(label_file, f"labels {len(extra)} sample(s) that are not in {matrix}, "
                                     f"e.g. {extra[0]!r}")
    return labels.loc[samples].to_numpy(dtype=object).astype(str)


def read_matrix(matrix: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read a GEMDiff-format matrix (samples x genes, tab-separated, sample ids first).

    Returns (sample ids, genes, values); ids and genes are checked to be unique.
    """
    matrix = check_file(matrix)
    samples, genes, values = _read_numeric_table(matrix, index_cols=1)
    for kind, names in (("sample id", samples), ("gene", genes)):
        dup = _duplicates(names)
        if dup:
            raise InputError(matrix, f"{kind} {dup[0]!r} appears more than once")
    if any(not g for g in genes):
        raise InputError(matrix, "has an empty gene name in its header")
    return samples, genes, values


def as_gem(samples, labels=None, label_key: str | None = None,
           layer: str | None = None) -> GEM:
    """Samples given as an AnnData (labels from ``obs[label_key]``), a samples x genes
    DataFrame (labels: a Series by sample id), a :class:`GEM` or a file path (any format of
    :func:`read_samples`; labels: a label file); labels are optional."""
    if isinstance(samples, GEM):
        return samples
    if isinstance(samples, pd.DataFrame):
        return gem_from_dataframe(samples, labels)
    if isinstance(samples, (str, Path)):
        return read_samples(samples, labels, label_key, layer)
    if hasattr(samples, "obs") and hasattr(samples, "var_names"):
        return gem_from_anndata(samples, label_key, layer)
    raise InputError(None, f"cannot read samples from a {type(samples).__name__}: give an "
                           "AnnData, a pandas DataFrame (samples x genes) or a file path")


def read_gemdiff(matrix: str | Path, labels: str | Path) -> GEM:
    """Read a GEMDiff-format matrix (samples x genes) and its label file."""
    samples, genes, values = read_matrix(matrix)
    matrix = Path(matrix)
    lab = read_labels(labels)
    y = attach_labels(samples, lab, matrix, Path(labels))
    return GEM(values, samples, genes, y, source=str(matrix))


def _read_rnaseqdb_file(p: str | Path) -> tuple[Path, list[str], list[str], np.ndarray]:
    """One RNAseqDB file (genes x samples): (path, genes, samples, samples x genes values)."""
    p = check_file(p)
    header = _read_header(p)
    if header[0] != "Hugo_Symbol":
        raise InputError(p, f"first column is {header[0]!r}, expected 'Hugo_Symbol' "
                            "(RNAseqDB format: genes x samples)")
    n_index = 2 if len(header) > 1 and header[1] == "Entrez_Gene_Id" else 1
    genes, samples, values = _read_numeric_table(p, index_cols=n_index)
    for kind, names in (("gene", genes), ("sample id", samples)):
        dup = _duplicates(names)
        if dup:
            raise InputError(p, f"{kind} {dup[0]!r} appears more than once")
    return p, genes, samples, values.T


def read_rnaseqdb(files: Mapping[str, str | Path | Sequence[str | Path]]) -> GEM:
    """Read RNAseqDB / TCGA-GTEx files (genes x samples), one or more per label.

    Parameters
    ----------
    files
        Label -> path or list of paths, e.g. ``{"tumor": [a], "normal": [b, c]}``. Genes are
        intersected across files (in the first file's order).
    """
    parts: list[tuple[str, Path, list[str], list[str], np.ndarray]] = []
    for label, paths in files.items():
        for p in [paths] if isinstance(paths, (str, Path)) else paths:
            parts.append((str(label), *_read_rnaseqdb_file(p)))
    if not parts:
        raise InputError(None, "no RNAseqDB files were given")
    common = set(parts[0][2])
    for _, _, genes, _, _ in parts[1:]:
        common &= set(genes)
    genes = [g for g in parts[0][2] if g in common]
    if not genes:
        raise InputError(parts[0][1], "shares no gene with the other files")
    blocks, samples, labels = [], [], []
    for label, _, g, s, v in parts:
        index = {name: i for i, name in enumerate(g)}
        blocks.append(v[:, [index[name] for name in genes]])
        samples += s
        labels += [label] * len(s)
    dup = _duplicates(samples)
    if dup:
        raise InputError(None, f"sample id {dup[0]!r} appears in more than one RNAseqDB file")
    return GEM(np.concatenate(blocks), samples, genes, np.array(labels),
               source=", ".join(str(p[1]) for p in parts))


def gem_from_anndata(adata, label_key: str | None, layer: str | None = None,
                     source: str = "AnnData") -> GEM:
    """The matrix of an AnnData (``X`` or ``layers[layer]``, samples x genes, dense or sparse,
    kept as it is; the ``X`` of an AnnData opened backed stays on disk) with labels from
    ``obs[label_key]`` (None: no labels)."""
    if layer is not None and layer not in adata.layers:
        raise InputError(source, f"has no layer {layer!r}; its layers are "
                                 f"{list(adata.layers) or 'none'}")
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        raise InputError(source, "has no expression matrix (X is empty)")
    samples, genes = list(map(str, adata.obs_names)), list(map(str, adata.var_names))
    for kind, names, fix in (("sample id", samples, "obs"), ("gene", genes, "var")):
        dup = _duplicates(names)
        if dup:
            raise InputError(source, f"{kind} {dup[0]!r} appears more than once "
                                     f"(adata.{fix}_names_make_unique() renames the repeats)")
    from scipy import sparse

    if getattr(adata, "isbacked", False) and layer is None:
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(source, f"holds non-numeric values ({x.dtype})")
        x = BackedRows(x)  # on disk: read a block of rows at a time
    else:  # in memory: checked whole
        if not sparse.issparse(x):  # an AnnData view's array has toarray() too
            x = np.asarray(x, dtype=np.float64)
        stored = x.data if sparse.issparse(x) else x
        if not np.issubdtype(stored.dtype, np.number):
            raise InputError(source, f"holds non-numeric values ({stored.dtype})")
        if np.isinf(stored).any():
            raise InputError(source, "holds infinite values")
    labels = None
    if label_key is not None:
        if label_key not in adata.obs.columns:
            raise InputError(source, f"obs has no column {label_key!r}; columns are "
                                     f"{list(adata.obs.columns)}")
        column = adata.obs[label_key]
        if column.isna().any():
            raise InputError(source, f"obs[{label_key!r}] has missing labels")
        labels = column.astype(str).str.strip().to_numpy()
    return GEM(x, samples, genes, labels, source=source)


def gem_from_dataframe(df: pd.DataFrame, labels: pd.Series | None = None,
                       source: str = "DataFrame") -> GEM:
    """The matrix of a samples x genes DataFrame (index: sample ids), with labels matched by
    sample id from a Series (None: no labels)."""
    samples, genes = [str(s) for s in df.index], [str(g) for g in df.columns]
    for kind, names in (("sample id", samples), ("gene", genes)):
        dup = _duplicates(names)
        if dup:
            raise InputError(source, f"{kind} {dup[0]!r} appears more than once")
    bad = [c for c, dt in df.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
    if bad:
        raise InputError(source, f"column {bad[0]!r} is not numeric ({df[bad[0]].dtype})")
    values = df.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        raise InputError(source, "holds infinite values")
    y = None
    if labels is not None:
        series = pd.Series(labels)
        series.index = series.index.astype(str)
        if series.isna().any():
            raise InputError("labels", "has missing labels")
        dup = _duplicates(series.index.tolist())
        if dup:
            raise InputError("labels", f"sample id {dup[0]!r} is labelled more than once")
        y = attach_labels(samples, series.astype(str).str.strip(), Path(source), Path("labels"))
    return GEM(values, samples, genes, y, source=source)


# AnnData files larger than this are opened backed: X stays on disk and is read in blocks.
BACKED_BYTES = 1 << 30


def read_h5ad(path: str | Path, label_key: str | None, layer: str | None = None,
              backed: bool | None = None) -> GEM:
    """Read an AnnData file; labels from ``obs[label_key]``, values from ``X`` or a layer.

    ``backed`` (None: for files over 1 GiB) leaves ``X`` on disk: the matrix is read a block of
    rows at a time and only the chosen genes are loaded (a layer is always read whole).
    """
    import anndata

    path = check_file(path)
    if backed is None:
        backed = path.stat().st_size > BACKED_BYTES and layer is None
    try:
        adata = anndata.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:  # h5py raises many types for a file that is not HDF5
        raise InputError(path, f"cannot be read as .h5ad ({type(err).__name__}: {err})") from None
    return gem_from_anndata(adata, label_key, layer, source=str(path))


def read_samples(path: str | Path, labels: str | Path | None = None,
                 label_key: str | None = None, layer: str | None = None) -> GEM:
    """Samples in any supported format, with or without labels: ``.h5ad`` (labels from
    ``obs[label_key]``), an RNAseqDB file (genes x samples, ``Hugo_Symbol`` first) or a
    GEMDiff matrix (samples x genes), the last two with an optional label file."""
    if str(path).endswith(".h5ad"):
        return read_h5ad(path, label_key, layer)
    path = check_file(path)
    if _read_header(path)[0] == "Hugo_Symbol":
        p, genes, samples, values = _read_rnaseqdb_file(path)
        gem = GEM(values, samples, genes, None, source=str(p))
    else:
        samples, genes, values = read_matrix(path)
        gem = GEM(values, samples, genes, None, source=str(path))
    if labels is not None:
        gem = gem.with_labels(attach_labels(gem.samples, read_labels(labels), path,
                                            Path(labels)))
    return gem


def read_text_rows(path: str | Path, numbered: bool = False) -> list:
    """Non-empty lines of a text file (gzip allowed), split on tabs and stripped; with
    ``numbered``, ``(line number, fields)`` pairs."""
    path = check_file(path)
    try:
        with open_text(path) as fh:
            rows = [(num, [f.strip() for f in ln.rstrip("\n").split("\t")])
                    for num, ln in enumerate(fh, start=1)]
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot be read as text ({err})") from None
    return [r if numbered else r[1] for r in rows if any(r[1])]


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """Read a GMT gene-set library: name, description, genes... per line.

    A set name given on two lines is an error naming both (which one was meant is unknown).
    """
    sets: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for num, parts in read_text_rows(path, numbered=True):
        if not parts[0]:
            continue
        if len(parts) < 3:
            raise InputError(path, f"line {num} is not 'name<TAB>description<TAB>genes...'")
        if parts[0] in first_line:
            raise InputError(path, f"gene set {parts[0]!r} is listed twice, on lines "
                                   f"{first_line[parts[0]]} and {num}")
        first_line[parts[0]] = num
        sets[parts[0]] = list(dict.fromkeys(g for g in parts[2:] if g))
    if not sets:
        raise InputError(path, "holds no gene sets")
    return sets
