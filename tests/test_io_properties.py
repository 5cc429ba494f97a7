"""Property-based tests of the readers: any table is read exactly or rejected with InputError."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemdiff.data.io import NA_VALUES, read_gmt, read_labels, read_matrix
from gemdiff.common.errors import InputError

# Example counts come from the profile (tests/conftest.py): 60 by default, 2000 with
# ``pytest --hypothesis-profile=deep``.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:"
names = st.text(NAME_CHARS, min_size=1, max_size=8).filter(
    lambda s: s not in NA_VALUES and s.lower() not in ("nan", "inf", "-inf", "+inf"))
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                   st.just(math.nan))


@st.composite
def tables(draw):
    samples = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    genes = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    grid = draw(st.lists(st.lists(values, min_size=len(genes), max_size=len(genes)),
                         min_size=len(samples), max_size=len(samples)))
    return samples, genes, np.array(grid, dtype=np.float64)


def _cell(v: float) -> str:
    return "" if math.isnan(v) else repr(float(v))


def _write(text: str, suffix: str = ".tsv") -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with open(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return Path(name)


@SETTINGS
@given(tables())
def test_any_valid_table_is_read_exactly(table):
    samples, genes, grid = table
    lines = ["\t" + "\t".join(genes)]
    lines += [s + "\t" + "\t".join(map(_cell, row))
              for s, row in zip(samples, grid, strict=True)]
    path = _write("\n".join(lines) + "\n")
    try:
        got_samples, got_genes, got = read_matrix(path)
    finally:
        path.unlink()
    assert got_samples == samples and got_genes == genes
    assert got.shape == grid.shape
    assert np.array_equal(np.isnan(got), np.isnan(grid))
    assert np.array_equal(got[~np.isnan(got)], grid[~np.isnan(grid)])  # bit-exact floats


# Text built from the characters tables are made of, so that the fuzzing reaches deep into the
# parser (headers, ragged rows, numbers that are not numbers) rather than failing at once.
fuzz_text = st.text(st.sampled_from(list("\t\t\n\n01.5e-+ ,aAxNn\r\"#")), max_size=120)


@SETTINGS
@given(fuzz_text)
def test_any_text_is_read_or_rejected_with_a_clear_error(text):
    path = _write(text)
    try:
        samples, genes, grid = read_matrix(path)
    except InputError as err:
        assert str(path) in str(err)
        return
    finally:
        path.unlink()
    assert grid.shape == (len(samples), len(genes))
    assert len(set(samples)) == len(samples) and len(set(genes)) == len(genes)
    assert not np.isinf(grid).any()


@SETTINGS
@given(fuzz_text)
def test_any_label_or_gmt_text_is_read_or_rejected(text):
    for reader in (read_labels, read_gmt):
        path = _write(text, ".txt")
        try:
            reader(path)
        except InputError as err:
            assert str(path) in str(err)
        finally:
            path.unlink()


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_are_read_or_rejected(data):
    fd, name = tempfile.mkstemp(suffix=".tsv.gz")
    with open(fd, "wb") as fh:
        fh.write(data)
    path = Path(name)
    try:
        read_matrix(path)
    except InputError as err:
        assert str(path) in str(err)
    finally:
        path.unlink()
