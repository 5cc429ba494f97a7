"""Run folders under faults and misuse: one run per folder, complete result sets, filesystem
faults as one line, bad cache lines, inconsistent checkpoints."""

from __future__ import annotations

import copy
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from gemdiff.__main__ import main
from gemdiff.common.resultsets import MANIFEST, ResultSet, complete_set, trusted_result
from gemdiff.common.errors import InputError, OutputExistsError
from gemdiff.runtime.outputs import LOCK, OWNER, hold_folder, release_folder

ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _cli(args: list[str], capfd) -> tuple[int, str]:
    """``gemdiff <args>`` in this process: (exit status, stderr)."""
    GlobalHydra.instance().clear()
    code = 0
    try:
        main(args + ["hydra/job_logging=disabled"])
    except SystemExit as exit_:
        code = exit_.code
    return code, capfd.readouterr().err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("gemdiff ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".part")
            or (p.name.startswith(".") and p.suffix == ".h5ad")]


# --- one run per folder -------------------------------------------------------------------

def test_a_second_run_into_a_held_folder_stops_at_once_naming_the_first(trained_synthetic,
                                                                        tmp_path):
    _, summary = trained_synthetic
    folder = tmp_path / "run"
    hold_folder(folder, "gemdiff sample")  # this process plays the first run
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "gemdiff.sample",
                               f"ckpt_path={summary['checkpoint']}", f"hydra.run.dir={folder}"],
                              env=ENV, capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
    finally:
        release_folder(folder)
    assert done.returncode == 2, done.stderr
    line = _one_line(done.stderr)
    assert f"{folder}: is in use by another gemdiff run (gemdiff sample, pid {os.getpid()}" \
        in line
    assert sorted(p.name for p in folder.iterdir()) == []  # the second run wrote nothing
    assert took < 30  # it stopped before loading the model
    assert not (folder / LOCK).exists() and not (folder / OWNER).exists()


@pytest.mark.slow
def test_two_real_runs_started_together_do_not_mix(trained_synthetic, tmp_path):
    """Two ``gemdiff.sample`` processes into one folder: the first (slowed down) finishes
    alone, the second stops at once."""
    _, summary = trained_synthetic
    folder = tmp_path / "run"
    slow = textwrap.dedent(f"""
        import sys, time
        import gemdiff.api.model as m
        sample = m.GEMDiff.sample
        def slowed(*a, **k):
            time.sleep(6)
            return sample(*a, **k)
        m.GEMDiff.sample = slowed
        sys.argv = ["gemdiff sample", "ckpt_path={summary['checkpoint']}", "umap=false",
                    "n_per_class=35", "hydra.run.dir={folder}"]
        from gemdiff.sample import main
        main()
    """)
    first = subprocess.Popen([sys.executable, "-c", slow], env=ENV, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 60
    while not (folder / OWNER).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = subprocess.run([sys.executable, "-m", "gemdiff.sample", "umap=false",
                             f"ckpt_path={summary['checkpoint']}", "n_per_class=20",
                             f"hydra.run.dir={folder}"], env=ENV, capture_output=True,
                            text=True, timeout=120)
    assert first.wait(timeout=180) == 0, first.stderr.read()
    assert second.returncode == 2 and "is in use by another gemdiff run" in second.stderr
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = (folder / "synthetic.tsv").read_text().splitlines()[1:]
    assert metrics["n_synthetic"] == len(rows) == 70
    assert complete_set(folder)


# --- result sets -------------------------------------------------------------------------

KILL_AT_H5AD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import gemdiff.runtime.outputs as outputs
    import gemdiff.runtime.commands as commands
    def stall(adata, path):
        Path(path).with_name("stalled").write_text("")
        time.sleep(120)
    outputs.write_h5ad = commands.write_h5ad = stall
    app = sys.argv[1]
    sys.argv = [f"gemdiff {app}", *sys.argv[2:]]
    __import__(f"gemdiff.{app}", fromlist=["main"]).main()
""")


def _kill_while_writing(app: str, folder: Path, *args: str) -> None:
    """Run ``app`` and ``kill -9`` it while it writes its results (after the first file)."""
    proc = subprocess.Popen([sys.executable, "-c", KILL_AT_H5AD, app, *args, "umap=false",
                             f"hydra.run.dir={folder}"], env=ENV, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not (folder / "stalled").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{app} did not reach its writes: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (folder / "stalled").unlink()


@pytest.mark.parametrize("app,first,missing", [
    ("sample", "synthetic.tsv", "synthetic.h5ad, metrics.json"),
    pytest.param("perturb", "perturbed.tsv", "perturbed.h5ad, gene_scores.tsv",
                 marks=pytest.mark.slow),
])
def test_kill_9_while_writing_leaves_a_set_no_reader_trusts_and_a_rerun_finishes(
        app, first, missing, trained_synthetic, tmp_path, capfd):
    from gemdiff.runtime.sweep import job_rows

    _, summary = trained_synthetic
    ckpt = f"ckpt_path={summary['checkpoint']}"
    quick = ["sampler=dpm2"] if app == "sample" else []  # what is tested is the result set
    folder = tmp_path / "sweep" / "0"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text("- seed=0\n")
    _kill_while_writing(app, folder, ckpt, *quick)
    assert (folder / first).is_file() and not (folder / "metrics.json").exists()
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["complete"] is False

    # Readers refuse it and say what is missing.
    with pytest.raises(InputError, match=f"incomplete result set.*missing {missing}"):
        trusted_result(folder / first)
    assert job_rows(tmp_path / "sweep").finished.tolist() == [False]
    if app == "sample":
        code, err = _cli(["evaluate", ckpt, f"synthetic={folder / first}",
                          f"synthetic_labels={folder / 'synthetic_labels.tsv'}",
                          f"hydra.run.dir={tmp_path / 'eval'}"], capfd)
        assert code == 2 and "belongs to an incomplete result set" in _one_line(err)

    # The same command again just works: the partial set is replaced by a complete one.
    code, err = _cli([app, ckpt, *quick, "umap=false", f"hydra.run.dir={folder}"], capfd)
    assert code == 0, err
    assert complete_set(folder) and not _temporaries(folder)
    assert trusted_result(folder / first) == folder / first
    assert job_rows(tmp_path / "sweep").finished.tolist() == [True]


def test_a_complete_set_is_verified_and_an_edited_file_is_refused(tmp_path):
    rs = ResultSet(tmp_path, ["a.tsv", "b.json"])
    with rs.writing():
        (tmp_path / "a.tsv").write_text("x\n1\n")
        (tmp_path / "b.json").write_text("{}")
        (tmp_path / "plot.png").write_bytes(b"png")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["complete"] and set(manifest["files"]) == {"a.tsv", "b.json", "plot.png"}
    assert trusted_result(tmp_path / "a.tsv") == tmp_path / "a.tsv"
    (tmp_path / "a.tsv").write_text("x\n2\n")
    with pytest.raises(InputError, match="changed after its run finished"):
        trusted_result(tmp_path / "a.tsv")
    (tmp_path / "b.json").unlink()
    with pytest.raises(InputError, match="missing from its result set"):
        trusted_result(tmp_path / "b.json")
    with pytest.raises(OutputExistsError):  # a complete set is not replaced silently
        ResultSet(tmp_path, ["a.tsv", "b.json"])
    other = tmp_path / "elsewhere.tsv"  # a file with no set around it is read as given
    (tmp_path / "x").mkdir()
    assert trusted_result(tmp_path / "x" / other.name) == tmp_path / "x" / other.name


def test_a_failure_while_writing_takes_back_the_set(tmp_path):
    rs = ResultSet(tmp_path, ["a.tsv", "b.json"])
    with pytest.raises(RuntimeError):
        with rs.writing():
            (tmp_path / "a.tsv").write_text("x\n")
            raise RuntimeError("disk gone")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- filesystem faults --------------------------------------------------------------------

@pytest.fixture
def mounted(tmp_path):
    """A 200 KiB tmpfs at ``tmp_path/mnt`` where this machine lets tests mount one (root in a
    container usually may), else None; unmounted afterwards."""
    point = tmp_path / "mnt"
    point.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(point)],
                        capture_output=True).returncode == 0 if hasattr(os, "geteuid") and \
        os.geteuid() == 0 else False
    yield point if ok else None
    if ok:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_disk_full_is_one_line_and_leaves_no_temporary_file(trained_synthetic, mounted,
                                                            tmp_path, capfd, monkeypatch):
    _, summary = trained_synthetic
    if mounted is not None:
        folder = mounted / "run"
        (mounted / "filler").write_bytes(b"\0" * (150 * 1024))  # leave ~50 KiB free
    else:  # no tmpfs here: writing the h5ad fails as a full disk makes it fail
        folder = tmp_path / "run"
        real_write = Path.write_bytes

        def full(self, data):
            if self.suffix != ".h5ad":
                return real_write(self, data)
            real_write(self, bytes(data)[:1024])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))

        monkeypatch.setattr(Path, "write_bytes", full)
    code, err = _cli(["sample", f"ckpt_path={summary['checkpoint']}", "umap=false",
                      "sampler=dpm2", f"hydra.run.dir={folder}"], capfd)
    line = _one_line(err)
    assert code == 2 and "No space left on device (ENOSPC)" in line, line
    assert str(folder) in line
    left = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    assert not _temporaries(folder.parent) and not left, left


def test_read_only_folder_is_one_line_and_nothing_is_written(trained_synthetic, mounted,
                                                             tmp_path, capfd, monkeypatch):
    _, summary = trained_synthetic
    if mounted is not None:
        assert subprocess.run(["mount", "-o", "remount,ro", str(mounted)]).returncode == 0
        base = mounted
    else:
        base = tmp_path / "ro"
        real_mkdir = Path.mkdir

        def refuse(self, *a, **k):
            if base in self.parents or self == base:
                raise OSError(errno.EROFS, "Read-only file system", str(self))
            return real_mkdir(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", refuse)
    code, err = _cli(["sample", f"ckpt_path={summary['checkpoint']}",
                      f"hydra.run.dir={base / 'run'}"], capfd)
    line = _one_line(err)
    assert code == 2 and "Read-only file system (EROFS)" in line and str(base) in line, line

    from gemdiff.download import main as download

    assert download(["gemdiff_example", "--data-dir", str(base / "data")]) == 2
    line = _one_line(capfd.readouterr().err)
    assert "Read-only file system (EROFS)" in line and str(base / "data") in line, line


def test_download_into_a_file_is_one_line(tmp_path, capfd):
    from gemdiff.download import main as download

    target = tmp_path / "data"
    target.write_text("not a folder")
    assert download(["gemdiff_example", "--data-dir", str(target / "sub")]) == 2
    line = _one_line(capfd.readouterr().err)
    assert f"{target}: is a file, not a folder" in line
    assert target.read_text() == "not a folder"


# --- inconsistent checkpoints -------------------------------------------------------------

def _edited(src: str, dst: Path, edit) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    section = copy.deepcopy(ckpt["gemdiff"])
    edit(section)
    ckpt["gemdiff"] = section
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize("edit,expect", [
    (lambda s: s["denoiser"].update(d_model=s["denoiser"]["d_model"] + 16), "size mismatch"),
    (lambda s: s.update(genes=s["genes"][:-1]), "its network has 16 genes, its metadata 15"),
    (lambda s: s.pop("train_ids"), "its metadata lacks train_ids"),
    (lambda s: s.update(classes=[*s["classes"], "metastatic"]),
     "its network has 2 classes, its metadata 3"),
], ids=["width", "gene_removed", "train_ids_missing", "three_classes"])
def test_an_edited_checkpoint_is_refused_in_one_line(edit, expect, trained_synthetic, tmp_path,
                                                     capfd):
    _, summary = trained_synthetic
    ckpt = _edited(summary["checkpoint"], tmp_path / "edited.ckpt", edit)
    code, err = _cli(["sample", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'run'}"],
                     capfd)
    line = _one_line(err)
    assert code == 2 and f"{ckpt}: is an inconsistent checkpoint" in line and expect in line, \
        line
    assert not [p for p in (tmp_path / "run").rglob("*") if p.is_file()]


# --- the screen's cache -------------------------------------------------------------------

def test_cache_lines_of_the_wrong_types_are_dropped_counted_and_rescored(tmp_path):
    from gemdiff.tools.cluster_potential import ScoreCache

    path = tmp_path / "cache.jsonl"
    path.write_text("\n".join([
        '{"key": "good", "scores": {"silhouette": 0.5, "silhouette_gene": NaN}}',
        '{"key": "null", "scores": null}',
        '{"key": "text", "scores": {"silhouette": "0.5"}}',
        '{"key": "int", "scores": {"silhouette": 1}}',
        '{"key": "cut", "sco',
        '[1, 2]',
        '{"key": "no_silhouette", "scores": {"silhouette_gene": 0.1}}',
    ]) + "\n" + "\x00" * 40)  # a crash while appending leaves NUL bytes and no line end
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("gemdiff.screen")
    state = logger.disabled, logger.level  # an earlier in-process Hydra run may have muted it
    logger.disabled, logger.level = False, logging.WARNING
    logger.addHandler(handler)
    try:
        cache = ScoreCache(path)
    finally:
        logger.removeHandler(handler)
        logger.disabled, logger.level = state
    assert set(cache.scores) == {"good", "int"} and cache.dropped == 6
    assert any("6 line(s)" in m for m in seen), seen
    assert "text" not in cache  # scored again by the screen
    cache.add_all([("new", {"silhouette": 0.25})])  # appended on a line of its own
    assert ScoreCache(path).scores["new"] == {"silhouette": 0.25}
