"""Downloads verify checksums, keep intact files, and fail clearly without network."""

from __future__ import annotations

import shutil

import pytest

from gemdiff.data import download as dl
from gemdiff.common.errors import GemdiffError


def test_present_files_are_verified_and_kept(tmp_path, data_dir):
    shutil.copytree(data_dir / "gemdiff_example", tmp_path / "gemdiff_example")
    paths = dl.download("gemdiff_example", tmp_path)
    assert [p.name for p in paths] == [f.name for f in dl.DATASETS["gemdiff_example"][2]]


def test_no_network_says_where_to_put_files(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise dl.urllib.error.URLError("no network")

    monkeypatch.setattr(dl.urllib.request, "urlopen", refuse)
    with pytest.raises(GemdiffError, match="place the file at") as err:
        dl.download("rnaseqdb_kidney", tmp_path)
    assert "kich-rsem-fpkm-tcga-t.txt.gz" in str(err.value)
    assert not (tmp_path / "rnaseqdb").exists()  # nothing half-written


def test_unknown_dataset():
    with pytest.raises(GemdiffError, match="unknown dataset"):
        dl.download("mouse", "/tmp")


def test_the_library_module_run_as_a_program_names_the_app(tmp_path):
    # The entry point before the apps moved: it must not exit 0 having done nothing.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gemdiff.data.download", "gemdiff_example"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "python -m gemdiff.download" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing fetched or written
