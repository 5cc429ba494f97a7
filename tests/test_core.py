"""Core genes: aggregation on constructed job tables, and a tiny screen -> sweep -> core run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gemdiff import core as core_app
from gemdiff.tools import core_genes as core
from gemdiff.common.config import compose_config
from gemdiff.data.synthetic import simulate_gem
from gemdiff.common.errors import GemdiffError, InputError
from gemdiff.screen import run as run_screen

SUBSETS = pd.DataFrame({"subset": ["A_0", "A_1", "B_0"], "set": ["A", "A", "B"],
                        "silhouette": [0.8, 0.5, 0.1], "flag": ["high", "", "low"],
                        "genes": ["a,b", "c,d", "e,f"]})


def job_rows(scores: dict[str, float], subset_of: dict[str, str], seed=0, permuted=False,
             change_sign=1.0) -> pd.DataFrame:
    return pd.DataFrame({"gene": list(scores), "score_log2": list(scores.values()),
                         "mean_change_log2": [change_sign * v for v in scores.values()],
                         "subset": [subset_of[g] for g in scores], "seed": seed,
                         "permuted": permuted})


SUBSET_OF = {"a": "A_0", "b": "A_0", "c": "A_1", "d": "A_1", "e": "B_0", "f": "B_0"}


def test_core_call_is_mean_plus_k_sd_and_correlation_by_hand():
    scores = {"a": 5.0, "b": 1.0, "c": 1.1, "d": 0.9, "e": 1.0, "f": 0.8}
    genes, per_subset, summary = core.aggregate(job_rows(scores, SUBSET_OF), SUBSETS,
                                                core_sd=1.5)
    v = np.array(list(scores.values()))
    assert summary["threshold"] == pytest.approx(v.mean() + 1.5 * v.std(ddof=1))
    assert genes.loc[genes.core, "gene"].tolist() == ["a"]
    assert (genes.direction == "up").all()
    means = per_subset.set_index("subset").mean_score
    assert means["A_0"] == pytest.approx(3.0) and means["B_0"] == pytest.approx(0.9)
    r, p = stats.pearsonr([0.8, 0.5, 0.1], [3.0, 1.0, 0.9])
    assert summary["pearson_r"] == pytest.approx(r) and summary["pearson_p"] == pytest.approx(p)


def test_seeds_are_averaged_and_their_agreement_reported():
    s0 = {"a": 5.0, "b": 1.0, "c": 1.1, "d": 0.9, "e": 1.0, "f": 0.8}
    s1 = {"a": 1.0, "b": 5.0, "c": 1.1, "d": 0.9, "e": 1.0, "f": 0.8}
    jobs = pd.concat([job_rows(s0, SUBSET_OF, seed=0), job_rows(s1, SUBSET_OF, seed=1,
                                                                change_sign=-1.0)])
    genes, _, summary = core.aggregate(jobs, SUBSETS, core_sd=1.5)
    row = genes.set_index("gene")
    assert row.loc["a", "score"] == pytest.approx(3.0) and row.loc["a", "n_seeds"] == 2
    assert row.loc["a", "core_frequency"] == 0.5 and row.loc["b", "core_frequency"] == 0.5
    assert summary["core_jaccard_between_seeds"] == 0.0  # each seed called another gene
    assert row.loc["c", "direction"] == "up"  # mean of +1.1 and -1.1 is 0: counted as up


def test_permuted_models_give_empirical_p_values():
    real = {"a": 5.0, "b": 1.0, "c": 1.1, "d": 0.9, "e": 1.0, "f": 0.8}
    null = {"a": 0.5, "b": 1.2, "c": 0.4, "d": 0.3, "e": 0.2, "f": 0.1}
    jobs = pd.concat([job_rows(real, SUBSET_OF), job_rows(null, SUBSET_OF, permuted=True)])
    genes, _, summary = core.aggregate(jobs, SUBSETS)
    row = genes.set_index("gene")
    assert row.loc["a", "p_null"] == pytest.approx(1 / 7)  # no null score reaches 5.0
    assert row.loc["b", "p_null"] == pytest.approx(2 / 7)  # one null score (1.2) >= 1.0
    assert row.loc["b", "null_score"] == pytest.approx(1.2)
    assert summary["n_null_scores"] == 6
    np.testing.assert_allclose(genes.q_null, stats.false_discovery_control(genes.p_null))


def test_selection_and_bad_screen_folder(tmp_path):
    assert core.select_subsets(SUBSETS, "high") == ["A_0"]
    assert core.select_subsets(SUBSETS, "top", 2) == ["A_0", "A_1"]
    assert len(core.select_subsets(SUBSETS, "all")) == 3
    with pytest.raises(GemdiffError, match="chose no subset"):
        core.select_subsets(SUBSETS.assign(flag=""), "high")
    with pytest.raises(InputError, match="not a finished gemdiff.screen run"):
        core.read_screen(tmp_path)
    with pytest.raises(InputError, match="no finished gemdiff.subset job"):
        core.read_jobs(tmp_path)


SIM = ["data.source.n_samples=200", "data.source.n_genes=300", "data.source.n_modules=6",
       "data.source.n_drivers=24"]


@pytest.mark.slow  # 45-55 s: a screen and four training jobs in a child process
def test_screen_then_core_finds_planted_drivers(tmp_path):
    """Tiny end to end: screen, sweep the two best subsets with their permuted-label nulls
    (four jobs of gemdiff.subset in a child process), aggregate."""
    screen_dir = tmp_path / "screen"
    run_screen(compose_config([*SIM, "n_control=20", "feature_sizes=[]", "umap.n_epochs=30",
                               "n_jobs=1", "progress=false", "plots=false"], screen_dir,
                              "screen"))
    (screen_dir / ".hydra").mkdir()  # what a Hydra run of the screen leaves for the sweep
    (screen_dir / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in SIM))
    (screen_dir / ".hydra/config.yaml").write_text(
        "seed: 0\ndata:\n  source:\n    format: synthetic\n")
    out = tmp_path / "core"
    jobs = ["trainer.max_steps=400", "model.denoiser.d_model=64", "model.denoiser.depth=2",
            "perturb.ddim_steps=50", "trainer.val_check_interval=400",
            "callbacks.checkpoint.every_n_train_steps=400", "hydra/job_logging=disabled"]
    # 14 of the 32 genes of the two subsets are drivers, so the default call (2 SD above the mean
    # of all 32 scores) sits at the top drivers' own level; 1 SD sits in the gap between them.
    cfg = compose_config([f"screen={screen_dir}", "select=top", "top=2", "core_sd=1",
                          f"job_overrides=[{','.join(repr(j) for j in jobs)}]"], out, "core")
    summary = core_app.run(cfg)
    genes = pd.read_csv(out / "core_genes.tsv", sep="\t")
    drivers = set(simulate_gem(n_samples=200, n_genes=300, n_modules=6, n_drivers=24,
                               drivers_in_module=True).drivers)
    assert summary["n_subsets"] == 2 and len(genes) == 32
    assert set(genes.subset.str.rsplit("_", n=1).str[0]) == {"MODULE_1"}
    # Planted drivers move more than the other genes of their module, and more than the null.
    is_driver = genes.gene.isin(drivers)
    assert genes.score[is_driver].mean() > 2 * genes.score[~is_driver].mean()
    assert genes.score[is_driver].mean() > 2 * genes.null_score.mean()
    called = set((out / "core_genes.txt").read_text().split())
    assert called and called <= drivers
    # A t-test of the same samples beside every gene: the planted drivers are DE too.
    assert {"de_log2fc", "de_t", "de_p", "de_q"} <= set(genes.columns)
    assert summary["n_core_de"] + len(summary["core_not_de"]) == summary["n_core"]
    assert (genes.de_q[is_driver] < 0.05).mean() > 0.8
    for name in ("subset_scores.tsv", "summary.json", "correlation.png", "scores.png"):
        assert (out / name).is_file()
    # Run again in the same folder for the aggregation only: every job is found finished.
    again = core_app.run(compose_config([f"screen={screen_dir}", f"sweep_dir={out / 'jobs'}",
                                     "overwrite=true", "core_sd=1"], out, "core"))
    assert again["n_core"] == summary["n_core"]


def test_subset_job_selects_only_the_subset_whatever_the_dataset_config():
    cfg = compose_config(["screen=/s", "subset=SET_0", "data=kidney"], "/tmp/o", "subset")
    assert cfg.data.n_genes is None and cfg.data.genes is None
    assert cfg.data.gmt == "/s/subsets.gmt" and cfg.data.gene_set == "SET_0"


def test_the_sweep_gets_the_users_config_folder(tmp_path, monkeypatch):
    """A screen run on a dataset config from the user's own folder (``--config-dir``): the
    core sweep's jobs find that config too."""
    import subprocess

    from omegaconf import OmegaConf

    mine = tmp_path / "my_configs"
    (mine / "data").mkdir(parents=True)
    (mine / "data/mine.yaml").write_text("defaults:\n  - synthetic\n  - _self_\n"
                                         "source:\n  n_genes: 20\n")
    screen = tmp_path / "screen"
    (screen / ".hydra").mkdir(parents=True)
    (screen / "subsets.gmt").write_text("S_0\td\tG1\tG2\n")
    (screen / ".hydra/overrides.yaml").write_text("- data=mine\n")
    OmegaConf.save({"hydra": {"runtime": {"config_sources": [
        {"path": str(mine), "schema": "file", "provider": "command-line"}]}}},
        screen / ".hydra/hydra.yaml")
    launched = []
    monkeypatch.setattr(core_app.subprocess, "run",
                        lambda cmd, env: launched.append(cmd) or subprocess.CompletedProcess(
                            cmd, 0))
    cfg = compose_config([f"screen={screen}", "null_model=false"], tmp_path / "core", "core")
    core_app.launch(cfg, ["S_0"], tmp_path / "jobs")
    monkeypatch.undo()
    (cmd,) = launched
    assert "data=mine" in cmd and f"hydra.searchpath=[file://{mine}]" in cmd
    assert cmd[1:4] == ["-m", "gemdiff.subset", "-m"]
    job = cmd[:3] + cmd[4:] + ["--cfg", "job"]  # one job (not a multirun), its config printed
    done = subprocess.run(job, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "n_genes: 20" in done.stdout
    without = [a for a in job if not a.startswith("hydra.searchpath")]
    assert subprocess.run(without, capture_output=True, text=True).returncode != 0
