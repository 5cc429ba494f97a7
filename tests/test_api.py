"""The Python API: the README's example as printed, self-contained saved models, the commands
over the same code, and wide sparse AnnData read without densifying it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra

import gemdiff
from gemdiff.__main__ import main
from gemdiff.common.errors import InputError
from gemdiff.data import simulate_gem
from gemdiff.data.datamodule import GEMDataModule
from gemdiff.data.io import gem_from_anndata, read_gemdiff

ROOT = Path(__file__).resolve().parents[1]


def readme_api_block() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^## Python API\n.*?^```python\n(.*?)^```", text, re.S | re.M)
    assert found, "README.md has no python block in its 'Python API' section"
    return found[1]


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README's example, executed as printed in a fresh folder: its folder and names."""
    folder = tmp_path_factory.mktemp("readme")
    here = Path.cwd()
    names: dict = {}
    try:
        os.chdir(folder)
        exec(compile(readme_api_block(), "README.md", "exec"), names)
    finally:
        os.chdir(here)
    return folder, names


def test_readme_example_runs_and_returns_anndata(readme_run):
    folder, names = readme_run
    synth, moved, new = names["synth"], names["moved"], names["new"]
    assert synth.shape == (200, 16)
    assert synth.obs["label"].value_counts().to_dict() == {"normal": 100, "tumor": 100}
    assert np.isfinite(synth.uns["metrics"]["mmd_ratio"]) and synth.obsm["X_umap"].shape == (200, 2)
    # only the new normal samples move; their originals are kept beside, in input units
    normals = new.obs_names[new.obs["phenotype"] == "normal"]
    assert list(moved.obs_names) == list(normals)
    original = new[normals, list(moved.var_names)].X
    assert np.allclose(moved.layers["original"], original, atol=1e-3, equal_nan=True)
    assert {"score", "mean_change_log2", "z", "core"} <= set(moved.var.columns)
    assert moved.uns["gemdiff"]["model"] == "diffusion"
    back = anndata.read_h5ad(folder / "moved.h5ad")
    assert np.array_equal(back.X, moved.X, equal_nan=True) and "original" in back.layers
    assert list(back.uns["core_genes"]) == list(moved.uns["core_genes"])


def hydra_main(args: list[str]) -> None:
    GlobalHydra.instance().clear()
    try:
        main(args + ["hydra/job_logging=disabled"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)


def test_commands_give_what_the_api_gives(readme_run, tmp_path):
    folder, names = readme_run
    model, new = gemdiff.GEMDiff.load(folder / "my_model"), names["new"]
    new.write_h5ad(tmp_path / "new.h5ad")
    hydra_main(["perturb", f"ckpt_path={folder / 'my_model'}", f"samples={tmp_path / 'new.h5ad'}",
                "samples_label_key=phenotype", "source=normal", "target=tumor", "ddim_steps=20",
                "umap=false", "progress=false", f"hydra.run.dir={tmp_path / 'perturb'}"])
    cli = anndata.read_h5ad(tmp_path / "perturb/perturbed.h5ad")
    api = model.perturb(new, source="normal", target="tumor", label_key="phenotype",
                        ddim_steps=20, umap=False)
    assert np.array_equal(cli.X, api.X, equal_nan=True) and np.array_equal(
        cli.layers["original"], api.layers["original"], equal_nan=True)
    pd.testing.assert_frame_equal(cli.var, api.var)
    assert cli.uns["metrics"]["frac_to_target"] == api.uns["metrics"]["frac_to_target"]

    hydra_main(["sample", f"ckpt_path={folder / 'my_model'}", "n_per_class=15", "sampler=ddim",
                "ddim_steps=20", "umap=false", "seed=3", f"hydra.run.dir={tmp_path / 'sample'}"])
    cli = anndata.read_h5ad(tmp_path / "sample/synthetic.h5ad")
    api = model.sample(n_per_class=15, sampler="ddim", ddim_steps=20, seed=3, umap=False)
    assert np.array_equal(cli.X, api.X, equal_nan=True)
    assert list(cli.obs["label"]) == list(api.obs["label"])
    sampled = tmp_path / "sample"
    tsv = read_gemdiff(sampled / "synthetic.tsv", sampled / "synthetic_labels.tsv")
    assert np.allclose(np.nan_to_num(tsv.values), np.nan_to_num(cli.X), atol=1e-6)


def test_perturb_names_the_genes_a_samples_file_lacks(readme_run, tmp_path, capfd):
    folder, names = readme_run
    new = names["new"]
    gene = names["moved"].var_names[0]
    new[:, [g for g in new.var_names if g != gene]].copy().write_h5ad(tmp_path / "part.h5ad")
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:
        main(["perturb", f"ckpt_path={folder / 'my_model'}", f"samples={tmp_path / 'part.h5ad'}",
              "source=normal", "target=tumor", f"hydra.run.dir={tmp_path / 'out'}",
              "hydra/job_logging=disabled"])
    err = capfd.readouterr().err
    assert exit_.value.code == 2 and "part.h5ad" in err and repr(gene) in err
    assert "Traceback" not in err and not (tmp_path / "out/perturbed.tsv").exists()


def test_a_saved_model_needs_only_its_folder(tmp_path):
    sim = simulate_gem(n_samples=240, n_genes=12, n_drivers=3, seed=1)
    files = tmp_path / "files"
    files.mkdir()
    x = pd.DataFrame(sim.gem.values, index=sim.gem.samples, columns=sim.gem.genes)
    x.iloc[:200].to_csv(files / "train.tsv", sep="\t")
    pd.Series(sim.gem.labels[:200], index=sim.gem.samples[:200]).to_csv(
        files / "labels.tsv", sep="\t", header=False)
    x.iloc[200:].to_csv(tmp_path / "new.tsv", sep="\t")  # new samples, without labels
    model = gemdiff.GEMDiff.from_files(files / "train.tsv", files / "labels.tsv")
    model.fit(max_steps=60, progress=False, overrides=[
        "model.denoiser.d_model=32", "model.denoiser.depth=1", "calibrate.rows=0",
        "model.denoiser.tokenization=gene"])
    model.save(tmp_path / "model")
    files.rename(tmp_path / "moved_away")
    script = textwrap.dedent(f"""
        import numpy as np, gemdiff
        model = gemdiff.GEMDiff.load({str(tmp_path / 'model')!r})
        synth = model.sample(n_per_class=4, sampler="ddim", ddim_steps=5, metrics=False,
                             umap=False)
        moved = model.perturb({str(tmp_path / 'new.tsv')!r}, source="normal", target="tumor",
                              ddim_steps=5, umap=False)
        ref = model.reference()
        # what falls below a gene's detection floor reads back as unexpressed (NaN), never inf
        print(synth.shape, moved.n_obs, int(not np.isinf(moved.X).any()), ref.n_obs)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-5:] == ["(8,", "12)", "40", "1", "200"], done.stdout


def test_a_run_folder_given_for_a_saved_model_points_to_its_checkpoint(trained_synthetic):
    out, _ = trained_synthetic
    with pytest.raises(InputError, match=r"holds no saved model \(model.ckpt\); its training "
                                         r"checkpoint is .*checkpoints/last.ckpt"):
        gemdiff.GEMDiff.load(out)


def test_wide_sparse_anndata_is_never_densified_whole():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    n, g = 1000, 20000
    x = sparse.random(n, g, density=0.02, format="csr", random_state=0, dtype=np.float32)
    x.data = (x.data * 8).astype(np.float32)
    labels = np.where(rng.random(n) < 0.5, "normal", "tumor")
    adata = anndata.AnnData(X=x, obs=pd.DataFrame({"state": labels},
                                                  index=[f"s{i}" for i in range(n)]),
                            var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))
    tracemalloc.start()
    gem = gem_from_anndata(adata, "state")  # what GEMDiff.from_anndata reads, then fit prepares
    data = GEMDataModule(source={"format": "memory"}, n_genes=16, matrix=gem).prepare()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data.x_train.shape[1] == 16
    dense_bytes = n * g * 8  # 160 MB as dense float64
    assert peak < dense_bytes / 8, f"peak {peak / 1e6:.0f} MB"


def test_fit_leaves_out_the_frameworks_banners_and_tips_unless_verbose(capfd):
    import logging

    model = gemdiff.GEMDiff.from_config("synthetic")
    small = ["model.denoiser.d_model=32", "model.denoiser.depth=1", "calibrate.rows=0",
             "sample_plot=false", "callbacks.progress_bar=null"]
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    lightning_log = logging.getLogger("lightning.pytorch")
    # An earlier in-process Hydra run may have muted Lightning's loggers: open them all.
    loggers = [lightning_log] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                                 if n.startswith("lightning.pytorch.")]
    state = [(lg, lg.disabled, lg.level) for lg in loggers]
    for lg in loggers:
        lg.disabled, lg.level = False, logging.NOTSET
    lightning_log.addHandler(handler)
    try:
        model.fit(max_steps=2, progress=False, overrides=small)
        quiet, seen[:] = list(seen), []
        said = "".join(capfd.readouterr())
        model.fit(max_steps=2, progress=False, overrides=small, verbose=True)
        loud = list(seen)
    finally:
        lightning_log.removeHandler(handler)
        for lg, disabled, level in state:
            lg.disabled, lg.level = disabled, level
    for noise in ("GPU available", "Tip:", "LeafSpec", "Total params"):
        assert not any(noise in m for m in quiet) and noise not in said, (quiet, said)
    assert any("GPU available" in m for m in loud) and any("Total params" in m for m in loud)


def test_an_untrained_model_shows_its_data_and_options_are_checked_when_given():
    sim = simulate_gem(n_samples=90, n_genes=12, n_drivers=2, seed=4).gem
    df = pd.DataFrame(sim.values, index=sim.samples, columns=sim.genes)
    labels = pd.Series(sim.labels, index=sim.samples)
    chosen = list(np.array(sim.genes)[[0, 2, 5, 7]])  # numpy strings, as users hold them
    model = gemdiff.GEMDiff.from_dataframe(df, labels, genes=chosen)
    assert model.genes == [str(g) for g in chosen] and model.classes == ["normal", "tumor"]
    counts = model.class_counts
    assert sum(counts["train"].values()) + sum(counts["test"].values()) == 90
    assert model.settings["data"]["input_scale"] == "log2"
    shown = repr(model)
    assert shown.startswith("GEMDiff(untrained, 4 genes (GENE01, GENE03, GENE06, ...)")
    assert f"normal ({counts['train']['normal']} train" in shown
    model.fit(max_steps=2, progress=False, overrides=[
        "model.denoiser.d_model=16", "model.denoiser.depth=1", "calibrate.rows=0"])
    assert model.genes == [str(g) for g in chosen] and repr(model).startswith("GEMDiff(diffusion")
    same = gemdiff.GEMDiff.from_dataframe(df, labels, genes=pd.Index(chosen), n_genes=None)
    assert same.genes == model.genes
    for bad, message in [({"input_scale": "fpkm"}, "option input_scale='fpkm': input should be "
                                                   "'auto', 'log2', 'linear' or 'counts'"),
                         ({"test_size": 1.5}, "option test_size=1.5"),
                         ({"genes": "GENE01"}, "give a list of names"),
                         ({"genes": chosen, "n_genes": 3}, "one gene selection"),
                         ({"n_gene": 3}, "unknown data option 'n_gene'")]:
        with pytest.raises(gemdiff.GemdiffError, match=re.escape(message)):
            gemdiff.GEMDiff.from_dataframe(df, labels, **bad)


def test_perturb_moves_only_the_source_class_and_says_what_it_saw(readme_run, tmp_path):
    folder, names = readme_run
    model, new = gemdiff.GEMDiff.load(folder / "my_model"), names["new"]
    normals = list(new.obs_names[new.obs["phenotype"] == "normal"])
    new.write_h5ad(tmp_path / "new.h5ad")
    # no samples_label_key: the labels come from the model's own column, obs["phenotype"]
    hydra_main(["perturb", f"ckpt_path={folder / 'my_model'}", f"samples={tmp_path / 'new.h5ad'}",
                "source=normal", "target=tumor", "ddim_steps=5", "umap=false", "progress=false",
                f"hydra.run.dir={tmp_path / 'perturb'}"])
    cli = anndata.read_h5ad(tmp_path / "perturb/perturbed.h5ad")
    assert list(cli.obs_names) == normals
    assert cli.uns["metrics"]["samples_label_key"] == "phenotype"
    # the entropic OT map's gene scores stand beside the bridge's, in gene_scores.tsv too
    table = pd.read_csv(tmp_path / "perturb/gene_scores.tsv", sep="\t")
    assert {"score_entropic_ot", "z_entropic_ot", "core_entropic_ot"} <= set(table.columns)
    m = cli.uns["metrics"]
    assert m["beside"] == "entropic_ot" and 0 <= m["core_shared_entropic_ot"] <= min(
        m["n_core_genes"], m["n_core_entropic_ot"]) and -1 <= m["score_spearman_entropic_ot"] <= 1
    alone = model.perturb(new, source="normal", target="tumor", label_key="phenotype",
                          ddim_steps=5, umap=False, beside=None)
    assert "score_entropic_ot" not in alone.var
    with pytest.raises(gemdiff.GemdiffError, match="map='ot2' is not one of"):
        model.perturb(new, source="normal", target="tumor", beside="ot2")

    unlabelled = anndata.AnnData(X=new.X, obs=pd.DataFrame(index=new.obs_names), var=new.var)
    moved = model.perturb(unlabelled, source="normal", target="tumor", ddim_steps=5, umap=False)
    m = moved.uns["metrics"]
    tumours = int((new.obs["phenotype"] == "tumor").sum())
    assert moved.n_obs == new.n_obs and abs(m["unlabelled_called_target"] - tumours) <= 10
    assert any(f"calls {m['unlabelled_called_target']} of them" in w for w in m["warnings"])

    seen = model.reference()
    seen = seen[seen.obs["split"] == "train"][:5]
    moved = model.perturb(seen, source="normal", target="tumor", label_key="label",
                          ddim_steps=5, umap=False, metrics=False)
    assert moved.uns["gemdiff"]["samples_seen_in_training"] == sorted(
        seen.obs_names[seen.obs["label"] == "normal"])


def test_many_classes_and_few_samples_get_per_class_metrics_readable_figures_and_warnings(
        tmp_path):
    rng = np.random.default_rng(0)
    centres = {"liver": 0.0, "lung": 1.5, "kidney": -1.5}
    x = np.concatenate([rng.normal(c, 1.0, (18, 6)) for c in centres.values()])
    labels = np.repeat(list(centres), 18)
    ids = [f"s{i}" for i in range(len(x))]
    df = pd.DataFrame(x, index=ids, columns=[f"g{j}" for j in range(6)])
    model = gemdiff.GEMDiff.from_dataframe(df, pd.Series(labels, index=ids))
    model.fit(overrides=["model=gaussian"], progress=False)
    synth = model.sample(n_per_class=5)
    per_class = synth.uns["metrics"]["per_class"]
    assert set(per_class) == set(centres)
    assert all(0.0 <= m["svm_recall"] <= 1.0 and np.isfinite(m["sd_ratio"])
               for m in per_class.values())
    # 18 test + 15 synthetic samples: principal components, not a UMAP lattice
    assert synth.uns["umap_reference"]["axis"] == "PC"
    joined = model.with_reference(synth)
    assert joined.n_obs == 18 + 15 and joined.obsm["X_umap"].shape == (33, 2)
    assert joined.obs["origin"].value_counts().to_dict() == {"real": 18, "synthetic": 15}
    real = model.reference()
    first = joined.obs_names[0]
    assert np.allclose(joined[first].X, real[first].X)
    moved = model.perturb(source="lung", target="liver", map="mean_shift")
    both = model.with_reference(moved)
    assert set(both.obs["origin"]) == {"real", "perturbed", "original"}
    assert both.n_obs == 2 * moved.n_obs + len(moved.uns["umap_reference"]["ids"])
    from gemdiff.tools.results import plot_synthetic

    plot_synthetic(synth, tmp_path / "umap.png")
    # synthetic samples squeezed to their class means: far too narrow, said per class too
    narrow = synth.copy()
    for c in centres:
        rows = (narrow.obs["label"] == c).to_numpy()
        narrow.X[rows] = narrow.X[rows].mean(0) + 0.05 * (narrow.X[rows] - narrow.X[rows].mean(0))
    warned = [w for w in model.score(narrow)["warnings"] if "sd_ratio" in w]
    assert any(w.startswith("synthetic samples spread 0.") and "too narrow" in w for w in warned)
    assert any("of class 'lung'" in w for w in warned)
