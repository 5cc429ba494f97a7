"""Sampler calibration, tested with closed-form stand-ins for the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gemdiff.models.calibration import CalibrationOptions, calibrate, shrunk
from gemdiff.models.diffusion import GaussianDiffusion


def _point_mass_net(d, means, bias):
    """The exact noise predictor for data sitting on one point per label (rows of ``means``),
    plus a constant error ``bias`` per label."""
    def net(x, t, y):
        ab = d.alpha_bar[t].to(x.dtype)[:, None]
        return (x - ab.sqrt() * d.scale * means[y]) / (1 - ab).sqrt() + bias[y]
    return net


def test_calibration_measures_the_mean_error_and_sampling_without_it_lands_on_the_data():
    d = GaussianDiffusion("linear", 200, scale=2.0)
    y = torch.tensor([0] * 30 + [1] * 10)
    means = torch.tensor([[0.3, -0.5], [-0.2, 0.4], [0.0, 0.0]])
    means[2] = means[y].mean(0)  # "no class": the mean of all samples
    bias = torch.tensor([[0.05, -0.1], [0.0, 0.08], [0.02, -0.03]])
    net = _point_mass_net(d, means, bias)
    calibrate(d, net, means[y], y, 2, 2, CalibrationOptions(rows=120, levels=11))
    assert d.calibration.shape == (11, 3, 2)
    assert d.calibration_levels.tolist() == np.round(np.linspace(0, 199, 11)).tolist()
    torch.testing.assert_close(d.calibration, bias.expand(11, 3, 2), atol=1e-4, rtol=0)

    labels = torch.tensor([0, 1, 1, 0])
    plain = d.ddpm_sample(net, labels, (4, 2), generator=torch.Generator().manual_seed(0)).x
    assert (plain - means[labels]).abs().max() > 5e-4  # off by the last steps' error
    calibrated = lambda x, t, yy: net(x, t, yy) - d.output_offset(t, yy)  # noqa: E731
    x = d.ddpm_sample(calibrated, labels, (4, 2), generator=torch.Generator().manual_seed(0)).x
    torch.testing.assert_close(x, means[labels], atol=2e-5, rtol=0)


def test_output_offset_interpolates_between_levels_and_survives_the_config():
    d = GaussianDiffusion("linear", 101)
    table = torch.zeros(2, 3, 1)
    table[1, :, 0] = torch.tensor([1.0, 2.0, 4.0])
    d.set_calibration(table, torch.tensor([0, 100]))
    t = torch.tensor([0, 50, 100, 25])
    off = d.output_offset(t, torch.tensor([0, 1, 2, 5]))  # labels past the classes: "no class"
    torch.testing.assert_close(off[:, 0], torch.tensor([0.0, 1.0, 4.0, 1.0]))
    torch.testing.assert_close(d.output_offset(t, None)[:, 0], torch.tensor([0.0, 2, 4, 1]))
    again = GaussianDiffusion(**d.config())
    torch.testing.assert_close(again.output_offset(t, None), d.output_offset(t, None))
    assert GaussianDiffusion("linear", 101).output_offset(t, None) is None
    with pytest.raises(ValueError, match="increasing levels"):
        d.set_calibration(table, torch.tensor([0, 50]))


def test_calibration_of_an_unconditional_network_has_one_row_for_all():
    d = GaussianDiffusion("linear", 50)
    y = torch.tensor([0, 0, 1])
    x = torch.full((3, 2), 0.25)
    bias = torch.tensor([0.1, -0.2])

    def net(xt, t, yy):
        assert yy is None
        ab = d.alpha_bar[t].to(xt.dtype)[:, None]
        return (xt - ab.sqrt() * 0.25) / (1 - ab).sqrt() + bias

    calibrate(d, net, x, y, 2, None, CalibrationOptions(rows=6, levels=5))
    torch.testing.assert_close(d.calibration, bias.expand(5, 3, 2), atol=1e-4, rtol=0)


def test_calibration_spreads_its_draws_over_a_classs_samples():
    d = GaussianDiffusion("linear", 50)
    seen = []

    def net(xt, t, yy):
        seen.append(yy.clone())
        return torch.zeros_like(xt)

    y = torch.tensor([0] * 50 + [1] * 3)
    calibrate(d, net, torch.zeros(53, 2), y, 2, 2, CalibrationOptions(rows=20, levels=2))
    labels = torch.cat(seen[::2])  # the conditional passes (each level's is followed by null's)
    # Per level: 10 of the 50 (rows / 2), one antithetic pair each; the 3 others 3 pairs each.
    assert torch.bincount(labels).tolist() == [2 * 2 * 10, 2 * 2 * 3 * 3]


def test_shrunk_calibration_keeps_clear_errors_and_drops_what_is_noise():
    d = GaussianDiffusion("linear", 50)
    y = torch.tensor([0] * 40 + [1] * 40)
    x = torch.zeros(80, 12)

    def calibrated(bias, shrink, seed):
        def net(xt, t, yy):
            # Exact for data at 0, plus the bias and an error even in the noise (antithetic
            # pairs do not cancel it) that averages to 0: noise the calibration has to see
            # through (its estimates' own SD is 0.25 here).
            noise = xt / (1 - d.alpha_bar[t].to(xt.dtype)[:, None]).sqrt()
            return noise + bias + 0.8 * (noise ** 2 - 1)

        calibrate(d, net, x, y, 2, 2, CalibrationOptions(rows=40, levels=3, shrink=shrink,
                                                         seed=seed))
        return d.calibration.clone()

    rms = lambda z: z.pow(2).mean().sqrt().item()  # noqa: E731
    # No error at all: the raw table is the estimates' noise, the shrunk one nearly nothing.
    none = torch.zeros(12)
    raw = [calibrated(none, False, seed) for seed in (0, 1)]
    tables = [calibrated(none, True, seed) for seed in (0, 1)]
    assert min(rms(t) for t in raw) > 0.15
    assert max(rms(t) for t in tables) < 0.5 * min(rms(t) for t in raw)
    assert rms(tables[0] - tables[1]) < 0.5 * rms(raw[0] - raw[1])
    # Errors well above the noise stay.
    clear = torch.tensor([1.2, -1.2] * 6)
    table = calibrated(clear, True, 0)
    assert (table / clear).mean().item() == pytest.approx(1.0, abs=0.1)
    # No spread between the pairs: nothing to shrink.
    means = torch.tensor([[0.3, -0.2, 0.0]])
    torch.testing.assert_close(shrunk(means, torch.zeros(1, 3)), means)
