"""Notebooks: stored without outputs, and the synthetic walkthrough runs from top to bottom."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@pytest.mark.slow  # 35 s: executes the whole notebook; run with -m slow
def test_synthetic_walkthrough_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("GEMDIFF_NOTEBOOK_STEPS", "300")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    nb = nbformat.read(NOTEBOOKS[[p.name for p in NOTEBOOKS].index(
        "walkthrough_synthetic.ipynb")], as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    found = re.search(r"planted drivers recovered: (\d+) of (\d+)", printed)
    assert found and int(found[1]) >= int(found[2]) // 2, printed
    assert (tmp_path / "walkthrough_model/model.ckpt").is_file()


@pytest.mark.slow
def test_breast_notebook_runs(tmp_path, monkeypatch, data_dir):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("GEMDIFF_NOTEBOOK_STEPS", "200")
    monkeypatch.setenv("GEMDIFF_DATA_DIR", str(data_dir))
    nb = nbformat.read(NOTEBOOKS[[p.name for p in NOTEBOOKS].index("breast_example.ipynb")],
                       as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "frac_to_target" in printed
    assert (tmp_path / "breast_model/model.ckpt").is_file()
