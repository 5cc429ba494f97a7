"""Training on synthetic data: the loss falls, the checkpoint holds everything, DDIM inverts."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from gemdiff.common.errors import GemdiffError
from gemdiff.data.dataset import DataOptions, prepare_data
from gemdiff.data.synthetic import simulate_gem
from gemdiff.models.diffusion import GaussianDiffusion
from gemdiff.models.generators import SampleOptions
from gemdiff.train import run as train
from gemdiff.training.checkpoint import load_checkpoint
from gemdiff.training.module import GEMDiffModule, lr_factor
from tests.conftest import TINY, make_config


def test_loss_falls(trained_synthetic):
    out, summary = trained_synthetic
    rows = list(csv.DictReader(open(out / "loss.tsv"), delimiter="\t"))
    train = [float(r["loss"]) for r in rows if r["split"] == "train"]
    assert len(train) >= 10
    # The network starts predicting zero: the first windows' loss is that of the zero
    # prediction (about 1 for v on standardised data), and part of it is irreducible.
    first, last = np.mean(train[:3]), np.mean(train[-5:])
    assert last < 0.9 * first, (first, last)
    val = [float(r["loss"]) for r in rows if r["split"] == "val"]
    assert len(val) == 2 and val[-1] < val[0]
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert summary["global_step"] == 800


def test_checkpoint_holds_everything_and_loads_without_pickle(trained_synthetic):
    out, summary = trained_synthetic
    path = out / "checkpoints" / "last.ckpt"
    assert summary["checkpoint"] == str(path)
    raw = torch.load(path, weights_only=True)  # plain data only
    meta = raw["gemdiff"]
    assert raw["global_step"] == 800
    assert "current_model_state" in raw  # raw weights next to the EMA weights in state_dict
    assert meta["classes"] == ["normal", "tumor"] and len(meta["genes"]) == 16
    assert set(meta["preprocessor"]) == {"input_scale", "nan_policy", "scaling", "lo", "hi",
                                         "floor", "gene_floor", "zero_share", "target_sum"}
    assert np.shape(meta["preprocessor"]["zero_share"]) == (2, 16)  # classes x genes
    assert meta["config"]["data"]["source"]["format"] == "synthetic"
    assert len(meta["train_ids"]) + len(meta["test_ids"]) == 400
    ema = load_checkpoint(path)
    raw_model = load_checkpoint(path, ema=False)
    p_ema = next(iter(ema.generator.denoiser.parameters()))
    p_raw = next(iter(raw_model.generator.denoiser.parameters()))
    assert not torch.equal(p_ema, p_raw)


def test_training_ends_with_a_calibrated_checkpoint(trained_synthetic):
    """The sampler's eps is the network's output less its mean error on the training data."""
    out, _ = trained_synthetic
    gen = load_checkpoint(out / "checkpoints" / "last.ckpt").generator
    table = gen.diffusion.calibration
    assert table.shape == (11, 3, 16)  # debug=fast: 11 levels; 2 classes and "no class"
    assert table.abs().max() > 0 and bool(torch.isfinite(table).all())
    x, t = torch.randn(4, 16), torch.tensor([0, 300, 650, 999])
    y = torch.tensor([0, 1, 1, 0])
    with torch.inference_mode():
        raw = gen.denoiser(x, t, y)
        torch.testing.assert_close(gen.eps_fn()(x, t, y), raw - gen.diffusion.output_offset(t, y))
        guided = gen.eps_fn(2.0)(x, t, y)
        uncond = gen.denoiser(x, t, torch.full_like(y, 2)) - gen.diffusion.output_offset(
            t, torch.full_like(y, 2))
        torch.testing.assert_close(guided, uncond + 2.0 * (gen.eps_fn()(x, t, y) - uncond))


def _test_split(model):
    cfg = model.config["data"]
    gem = simulate_gem(**{k: v for k, v in cfg["source"].items() if k != "format"})
    data = prepare_data(gem.gem, options=DataOptions(seed=cfg["seed"]))
    assert data.genes == model.genes and data.test_ids == model.meta["test_ids"]
    stored = model.data()  # the checkpoint carries the same scaled values
    np.testing.assert_array_equal(stored.x_test, data.x_test)
    return data, gem


def test_ddim_encode_decode_reconstructs(trained_synthetic):
    out, _ = trained_synthetic
    model = load_checkpoint(out / "checkpoints" / "last.ckpt")
    data, _ = _test_split(model)
    x, y = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    d, net = model.generator.diffusion, model.generator.denoiser
    with torch.inference_mode():
        z = d.ddim_encode(net, x, y, steps=50, t_end=990).x
        back = d.ddim_decode(net, z, y, steps=50, t_end=990).x
    err = (back - x).abs().mean().item()
    assert err < 0.05, err
    assert (z - x).abs().mean().item() > 0.3  # the latent is not the input


def test_perturbation_moves_the_planted_drivers(trained_synthetic):
    out, _ = trained_synthetic
    model = load_checkpoint(out / "checkpoints" / "last.ckpt")
    data, truth = _test_split(model)
    x, y = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    src = y == 0
    d, net = model.generator.diffusion, model.generator.denoiser
    with torch.inference_mode():
        z = d.ddim_encode(net, x[src], y[src], steps=50, t_end=990).x
        moved = d.ddim_decode(net, z, torch.ones_like(y[src]), steps=50, t_end=990).x
    score = (moved - x[src]).abs().mean(0)
    top = {model.genes[i] for i in score.argsort(descending=True)[: len(truth.drivers)].tolist()}
    assert len(top & set(truth.drivers)) >= len(truth.drivers) - 1


def test_summary_names_the_checkpoint_really_written(tmp_path):
    """A second run into the same folder must not report the first run's checkpoint."""
    first = train(make_config([*TINY, "trainer.max_steps=4"], tmp_path))
    second = train(make_config([*TINY, "trainer.max_steps=6", "overwrite=true"], tmp_path))
    assert first["checkpoint"] != second["checkpoint"]
    assert torch.load(second["checkpoint"], weights_only=True)["global_step"] == 6
    third = train(make_config([*TINY, "trainer.max_steps=4", "calibrate.rows=0"],
                              tmp_path / "uncalibrated"))
    assert load_checkpoint(third["checkpoint"]).generator.diffusion.calibration is None


@pytest.mark.slow
def test_compiled_training_saves_the_plain_modules_weights(tmp_path):
    """model.compile=true trains through torch.compile; the checkpoint is the plain module's."""
    overrides = [*TINY, "trainer.max_steps=6", "model.denoiser.d_model=16",
                 "model.denoiser.depth=1", "model.denoiser.tokenization=single"]
    eager = train(make_config(overrides, tmp_path / "eager"))
    compiled = train(make_config([*overrides, "model.compile=true"], tmp_path / "compiled"))
    a = torch.load(eager["checkpoint"], weights_only=True)["state_dict"]
    b = torch.load(compiled["checkpoint"], weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    # Same seed, same draws: the compiled kernels reach the same weights up to rounding.
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)
    loaded = load_checkpoint(compiled["checkpoint"])
    assert loaded.generator.denoiser.config.tokenization == "single"


def test_compile_option_wraps_only_the_training_call(monkeypatch):
    def module(compile):
        return GEMDiffModule(4, 2, {"d_model": 8, "depth": 1, "n_heads": 2}, GaussianDiffusion(),
                             compile=compile)

    plain = module(False)
    assert plain._train_eps() is plain.denoiser
    compiled = module(True)
    fn = compiled._train_eps()
    assert fn is not compiled.denoiser and fn is compiled._train_eps()  # built once
    assert set(compiled.state_dict()) == set(plain.state_dict())  # no second copy of weights
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(GemdiffError, match="C\\+\\+ compiler"):
        module(True)._train_eps()


def test_samples_end_inside_the_data_range(trained_synthetic):
    # Sampling does not clip each predicted x_0; the samples still end inside [-1, 1], also
    # from a briefly trained model with a coarse DDIM chain (it can overshoot by far).
    out, _ = trained_synthetic
    gen = load_checkpoint(out / "checkpoints" / "last.ckpt").generator
    assert gen.diffusion.clip_x0 is False
    labels = np.repeat([0, 1], 40)
    for sampler in ("ddim", "ddpm", "dpm2"):
        x = gen.sample(labels, 0, SampleOptions(sampler, ddim_steps=40))
        assert x.shape == (80, 16) and -1.0 <= x.min() and x.max() <= 1.0
    # Without a step count each deterministic sampler takes its own default.
    assert SampleOptions("dpm2").ddim_steps == 25 and SampleOptions("ddim").ddim_steps == 100


def test_learning_rate_warms_up_then_decays_to_zero_on_request(tmp_path):
    assert [lr_factor(s, 4, 14, "none") for s in (0, 3, 13)] == [0.25, 1.0, 1.0]
    cosine = [lr_factor(s, 4, 14, "cosine") for s in range(15)]
    assert cosine[:4] == [0.25, 0.5, 0.75, 1.0]
    assert cosine[9] == pytest.approx(0.5) and cosine[14] == pytest.approx(0.0, abs=1e-12)
    assert all(np.diff(cosine[3:]) <= 0)

    run = train(make_config([*TINY, "trainer.max_steps=12", "model.warmup_steps=2",
                             "model.lr_decay=cosine"], tmp_path))
    sched = torch.load(run["checkpoint"], weights_only=False)["lr_schedulers"][0]
    assert sched["last_epoch"] == 12
    assert sched["_last_lr"][0] == pytest.approx(1e-3 * lr_factor(12, 2, 12, "cosine"))
    assert sched["_last_lr"][0] < 1e-5
    with pytest.raises(GemdiffError, match="lr_decay"):
        GEMDiffModule(4, 2, {"d_model": 8, "depth": 1, "n_heads": 2}, GaussianDiffusion(),
                      lr_decay="linear")


def test_a_small_network_trains_on_one_thread_unless_a_count_is_chosen(tmp_path, monkeypatch):
    from gemdiff.common.devices import THREAD_VARIABLES
    from gemdiff.training.fit import _build_trainer, prepare_run, training_threads

    before = torch.get_num_threads()
    if before < 2:
        pytest.skip("torch runs one thread here")
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def threads_while_training(overrides):
        cfg = make_config(TINY + overrides, tmp_path)
        run = prepare_run(cfg)
        trainer, _ = _build_trainer(cfg, run.model)
        with training_threads(cfg, run.model, trainer):
            inside = torch.get_num_threads()
        assert torch.get_num_threads() == before  # restored
        return inside

    assert threads_while_training([]) == 1
    assert threads_while_training(["threads=2"]) == before
    big = ["model.denoiser.tokenization=gene", "model.denoiser.d_model=64",
           "model.denoiser.depth=2"]  # 32 tokens: about 200M multiply-adds a batch
    assert threads_while_training(big) == before
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))
    assert threads_while_training([]) == before
