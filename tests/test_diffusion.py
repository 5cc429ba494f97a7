"""Schedule math and samplers, tested with closed-form stand-ins for the network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gemdiff.models.diffusion import CLEAN, GaussianDiffusion, make_betas


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules(schedule):
    betas = make_betas(schedule, 1000)
    assert betas.dtype == np.float64 and (betas > 0).all() and (betas < 1).all()
    d = GaussianDiffusion(schedule, 1000)
    ab = d.alpha_bar.numpy()
    assert d.alpha_bar.dtype == torch.float64
    assert (np.diff(ab) < 0).all() and ab[0] > 0.99 and ab[-1] < 1e-3


def test_linear_endpoints_and_cosine_formula():
    b = make_betas("linear", 1000)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    d = GaussianDiffusion("cosine", 1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert d.alpha_bar[499].item() == pytest.approx(f(500) / f(0), rel=1e-6)


def test_q_sample_statistics():
    d = GaussianDiffusion("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 4), 0.5)
    t = torch.full((20000,), 300)
    xt = d.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    ab = d.alpha_bar[300].item()
    assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.5, abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.03)


def gaussian_eps(d: GaussianDiffusion, mu: float, s: float):
    """The exact eps-predictor for data ~ N(mu, s^2 I): E[eps | x_t]."""

    def eps_fn(x, t, y):
        ab = d.alpha_bar[t].to(x.dtype)[:, None]
        var = ab * s**2 + 1 - ab
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / var

    return eps_fn


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_encode_decode_recovers_x0(schedule):
    d = GaussianDiffusion(schedule, 1000)
    eps_fn = gaussian_eps(d, mu=0.2, s=0.3)
    x0 = 0.2 + 0.3 * torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    errors = {}
    for steps in (1000, 100):
        z = d.ddim_encode(eps_fn, x0, None, steps=steps, t_end=990).x
        back = d.ddim_decode(eps_fn, z, None, steps=steps, t_end=990).x
        errors[steps] = (back - x0).abs().mean().item()
    # Encoding evaluates eps at the level it leaves, decoding at the level it leaves, so the
    # round trip is exact only as the step shrinks: first order, 10x more steps, 10x less error.
    assert errors[1000] < 3e-3
    assert 5 < errors[100] / errors[1000] < 15
    # The latent of the exact model is standard normal.
    z = d.ddim_encode(eps_fn, x0, None, steps=200).x
    assert z.std().item() == pytest.approx(1.0, rel=0.1)


def test_ddim_decode_and_ddpm_sample_match_data_distribution():
    d = GaussianDiffusion("linear", 1000, clip_x0=False)
    eps_fn = gaussian_eps(d, mu=-0.4, s=0.2)
    g = torch.Generator().manual_seed(2)
    x = d.ddim_decode(eps_fn, torch.randn(8000, 2, generator=g), None).x
    assert x.mean().item() == pytest.approx(-0.4, abs=0.01)
    assert x.std().item() == pytest.approx(0.2, rel=0.02)
    # Fewer DDIM steps shrink the spread (a known bias of coarse DDIM), never the mean.
    coarse = d.ddim_decode(eps_fn, torch.randn(8000, 2, generator=g), None, steps=50).x
    assert coarse.mean().item() == pytest.approx(-0.4, abs=0.01)
    assert 0.8 * 0.2 < coarse.std().item() < 0.2
    # Ancestral sampling with the posterior variance beta_tilde (the lower bound) is ~2% tight.
    x = d.ddpm_sample(eps_fn, None, (8000, 2), generator=g).x
    assert x.mean().item() == pytest.approx(-0.4, abs=0.01)
    assert x.std().item() == pytest.approx(0.2, rel=0.04)
    # 25 second-order steps on levels even in log-SNR (sampler=dpm2) keep the spread, where
    # 25 uniform DDIM steps lose a quarter of it.
    x = d.ddim_decode(eps_fn, torch.randn(8000, 2, generator=g), None, steps=25,
                      solver="dpm2", spacing="logsnr").x
    assert x.mean().item() == pytest.approx(-0.4, abs=0.01)
    assert x.std().item() == pytest.approx(0.2, rel=0.02)
    coarse = d.ddim_decode(eps_fn, torch.randn(8000, 2, generator=g), None, steps=25).x
    assert coarse.std().item() < 0.8 * 0.2


def test_point_mass_decodes_exactly():
    d = GaussianDiffusion("linear", 1000)
    c = torch.tensor([[0.3, -0.7]])

    def eps_fn(x, t, y):
        ab = d.alpha_bar[t].to(x.dtype)[:, None]
        return (x - ab.sqrt() * c) / (1 - ab).sqrt()

    x = d.ddim_decode(eps_fn, torch.randn(5, 2), None, steps=10).x
    torch.testing.assert_close(x, c.expand(5, 2), atol=1e-5, rtol=0)


def test_levels_and_trajectory():
    d = GaussianDiffusion("linear", 1000)
    levels = d.ddim_levels(steps=11, t_end=990)
    assert levels[0] == CLEAN and levels[1] == 0 and levels[-1] == 990 and len(levels) == 12
    out = d.ddim_encode(gaussian_eps(d, 0.0, 0.5), torch.zeros(3, 2), None, steps=11,
                        t_end=990, record=5)
    assert out.levels[0] == CLEAN and out.levels[-1] == 990
    assert len(out.trajectory) == len(out.levels)
    with pytest.raises(ValueError):
        d.ddim_levels(steps=10, t_end=1000)


def test_loss_is_zero_for_exact_predictor():
    d = GaussianDiffusion("linear", 100)
    x0 = torch.zeros(8, 3)
    noise = torch.randn(8, 3)
    t = torch.randint(100, (8,))
    exact = lambda x, tt, y: (x - d.alpha_bar[tt].float()[:, None].sqrt() * 0) / (  # noqa: E731
        1 - d.alpha_bar[tt].float()[:, None]).sqrt()
    assert d.loss(exact, x0, None, t=t, noise=noise).item() < 1e-10


def test_clipping_predicted_x0_distorts_genes_near_the_range_end():
    # A gene just above the unexpressed end of the range (-1): unclipped ancestral sampling
    # reproduces it, clipping each predicted x_0 pulls it inward; hence clip_x0 is off by default.
    assert GaussianDiffusion().clip_x0 is False
    results = {}
    for clip in (False, True):
        d = GaussianDiffusion("linear", 1000, clip_x0=clip)
        g = torch.Generator().manual_seed(5)
        x = d.ddpm_sample(gaussian_eps(d, mu=-0.9, s=0.1), None, (8000, 2), generator=g).x
        results[clip] = (x.mean().item(), x.std().item())
    assert results[False][0] == pytest.approx(-0.9, abs=0.01)
    assert results[False][1] == pytest.approx(0.1, rel=0.05)
    # clipped: SD 0.083 instead of 0.1, the mean pushed up
    assert results[True][1] < 0.9 * results[False][1] and results[True][0] > -0.895, results


def test_v_prediction_converts_to_the_same_eps():
    d = GaussianDiffusion("linear", 100, prediction="v")
    torch.manual_seed(0)
    x0, noise = torch.randn(8, 3), torch.randn(8, 3)
    t = torch.randint(100, (8,))
    ab = d.alpha_bar[t].float()[:, None]
    x_t = d.q_sample(x0, t, noise)
    v = ab.sqrt() * noise - (1 - ab).sqrt() * x0
    exact_v = lambda x, tt, y: v  # noqa: E731
    assert d.loss(exact_v, x0, None, t=t, noise=noise).item() < 1e-10
    assert torch.allclose(d.eps(exact_v, x_t, t, None), noise, atol=1e-5)
    assert GaussianDiffusion(prediction="v").config()["prediction"] == "v"
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion(prediction="x0")


def test_input_scale_diffuses_scaled_data_and_returns_data_units():
    # Data ~ N(-0.4, 0.2^2) diffused at scale 4 is N(-1.6, 0.8^2) in diffused units; the exact
    # predictor for that must give back the data's distribution, and the data, in data units.
    d = GaussianDiffusion("linear", 1000, scale=4.0)
    eps_fn = gaussian_eps(d, mu=-1.6, s=0.8)
    g = torch.Generator().manual_seed(3)
    x = d.ddpm_sample(eps_fn, None, (8000, 2), generator=g).x
    assert x.mean().item() == pytest.approx(-0.4, abs=0.01)
    assert x.std().item() == pytest.approx(0.2, rel=0.04)
    x0 = -0.4 + 0.2 * torch.randn(256, 4, generator=g)
    enc = d.ddim_encode(eps_fn, x0, None, steps=1000, t_end=990, record=3)
    assert enc.x.std().item() == pytest.approx(1.0, rel=0.1)  # the latent: diffused units
    torch.testing.assert_close(enc.trajectory[0], x0)  # recorded states: data units
    back = d.ddim_decode(eps_fn, enc.x, None, steps=1000, t_end=990).x
    assert (back - x0).abs().mean().item() < 3e-3
    # The loss takes data units and diffuses the data times the scale: a predictor that is
    # exact only at x_t of the scaled data scores zero, and not at scale 1.
    t, noise = torch.randint(1000, (256,), generator=g), torch.randn(256, 4, generator=g)
    x_t = d.q_sample(4.0 * x0, t, noise)
    exact = lambda xt, tt, y: noise + (xt - x_t)  # noqa: E731
    assert d.loss(exact, x0, None, t=t, noise=noise).item() < 1e-10
    assert GaussianDiffusion("linear", 1000).loss(exact, x0, None, t=t, noise=noise) > 1e-3
    # Checkpoints rebuild the diffusion from its config; those saved before have no scale.
    assert GaussianDiffusion(**d.config()).scale == 4.0
    old = {k: v for k, v in d.config().items() if k != "scale"}
    assert GaussianDiffusion(**old).scale == 1.0
    with pytest.raises(ValueError, match="scale"):
        GaussianDiffusion(scale=0.0)


def test_standardized_genes_diffuse_at_unit_variance_and_come_back_in_data_units():
    # Two genes of very different spread on the data's scale: standardised, each is N(0, 1)
    # in the chain, so the exact predictor of a standard normal must give back both genes'
    # own means and SDs, in data units.
    g = torch.Generator().manual_seed(0)
    mean, sd = torch.tensor([-0.5, 0.3]), torch.tensor([0.05, 0.2])
    x = mean + sd * torch.randn(4000, 2, generator=g)
    d = GaussianDiffusion("linear", 1000, standardize=True)
    d.fit_standardization(x.numpy())
    z = d.to_diffused(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.from_diffused(z), x)
    eps_fn = gaussian_eps(d, mu=0.0, s=1.0)
    out = d.ddim_decode(eps_fn, torch.randn(4000, 2, generator=g), None, steps=25,
                        solver="dpm2", spacing="logsnr").x
    torch.testing.assert_close(out.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(out.std(0), sd, rtol=0.05, atol=0)
    enc = d.ddim_encode(eps_fn, x[:256], None, steps=100, t_end=990, solver="dpm2",
                        spacing="logsnr")
    back = d.ddim_decode(eps_fn, enc.x, None, steps=100, t_end=990, solver="dpm2",
                         spacing="logsnr").x
    assert ((back - x[:256]).abs() / sd).mean().item() < 0.01
    # The fitted units travel with the config (checkpoints); without standardize, or in a
    # config saved before it existed, the chain runs on the data's own scale.
    again = GaussianDiffusion(**d.config())
    torch.testing.assert_close(again.to_diffused(x), z)
    plain = GaussianDiffusion("linear", 1000)
    plain.fit_standardization(x.numpy())
    assert plain.config().get("data_mean") is None
    torch.testing.assert_close(plain.to_diffused(x), x)


def test_dpm2_follows_the_exact_ode_of_gaussian_data_closer_than_ddim():
    """For data x0 ~ N(0, s^2) the best denoiser is known, eps(x_t) = sigma_t x_t /
    (alpha_t^2 s^2 + sigma_t^2), and the probability-flow ODE carries x0 to
    x0 * sqrt(alpha_t^2 s^2 + sigma_t^2) / s. With few steps the second-order solver lands
    nearer than DDIM, both ways (50 steps to t = 500: 0.013 against 0.054 encoding, 0.014
    against 0.028 decoding); with the previous data prediction equal to the current one its
    step is DDIM's."""
    import torch

    from gemdiff.models.diffusion import GaussianDiffusion

    d = GaussianDiffusion()
    s = 0.5
    ab = d.alpha_bar

    def eps_fn(x, t, y):
        a = ab[t].to(x.dtype)[:, None]
        return (1 - a).sqrt() * x / (a * s**2 + 1 - a)

    x0 = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
    t_end = 500
    exact = x0 * float(torch.sqrt(ab[t_end] * s**2 + 1 - ab[t_end])) / s
    errors = {}
    for solver in ("ddim", "dpm2"):
        enc = d.ddim_encode(eps_fn, x0, None, 50, t_end, solver=solver)
        dec = d.ddim_decode(eps_fn, exact, None, 50, t_end, solver=solver)
        errors[solver] = (float((enc.x - exact).abs().max()), float((dec.x - x0).abs().max()))
    assert errors["dpm2"][0] < errors["ddim"][0] / 2 and errors["dpm2"][1] < errors["ddim"][1] / 2
    x, x0_hat = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    eps = (x - ab[500].sqrt() * x0_hat) / (1 - ab[500]).sqrt()
    np.testing.assert_allclose(d.dpm2_step(x, x0_hat, 500, 400, x0_hat, 600),
                               d.ddim_step(x, eps, 500, 400), atol=1e-10)


def test_logsnr_levels_are_denser_near_the_data_and_end_at_t_end():
    from gemdiff.models.diffusion import CLEAN, GaussianDiffusion

    d = GaussianDiffusion()
    levels = d.ddim_levels(25, 990, "logsnr")
    assert levels[0] == CLEAN and levels[1] == 0 and levels[-1] == 990
    assert len(levels) - 1 <= 25 and all(np.diff(levels[1:]) > 0)
    gaps = np.diff(levels[1:])
    assert gaps[0] < gaps[-1]  # small steps where the signal-to-noise ratio changes fastest
    assert d.ddim_levels(2000, 990, "logsnr") == d.ddim_levels(2000, 990)  # every level
    with pytest.raises(Exception, match="spacing"):
        d.ddim_levels(25, 990, "geometric")


def test_dpm2_on_logsnr_levels_needs_fewer_steps_than_ddim_for_the_same_ode():
    import torch

    from gemdiff.models.diffusion import GaussianDiffusion

    d = GaussianDiffusion()
    s, ab = 0.5, d.alpha_bar

    def eps_fn(x, t, y):
        a = ab[t].to(x.dtype)[:, None]
        return (1 - a).sqrt() * x / (a * s**2 + 1 - a)

    x0 = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
    exact = x0 * float(torch.sqrt(ab[990] * s**2 + 1 - ab[990])) / s
    err = lambda **kw: float((d.ddim_encode(eps_fn, x0, None, t_end=990, **kw).x  # noqa: E731
                              - exact).abs().max())
    # A tenth and a twentieth of DDIM's steps for the same accuracy (0.018 against 0.022,
    # 0.0043 against 0.0053).
    assert err(steps=25, solver="dpm2", spacing="logsnr") < err(steps=250)
    assert err(steps=50, solver="dpm2", spacing="logsnr") < err(steps=1000)
