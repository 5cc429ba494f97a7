"""The flat parameter behind the training step: the same updates as stepping each weight."""

import copy

import torch

from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
from gemdiff.models.diffusion import GaussianDiffusion
from gemdiff.training.flat import FlatParameters, merge_optimizer_state


def _net(seed=0):
    torch.manual_seed(seed)
    return TransformerDenoiser(DenoiserConfig(8, 2, d_model=16, depth=2, tokenization="gene"))


def _grads(net, seed):
    torch.manual_seed(seed)
    x, y = torch.rand(24, 8) * 2 - 1, torch.randint(2, (24,))
    GaussianDiffusion(timesteps=50).loss(net, x, y).backward()


def test_weights_and_gradients_are_views_of_the_flat_tensor():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flat = FlatParameters(net.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert flat.flat.numel() == sum(p.numel() for p in net.parameters())
    with torch.no_grad():
        flat.flat.add_(1.0)  # an optimizer step on the flat tensor moves the module's weights
    assert all(torch.equal(v, before[k] + 1.0) for k, v in net.state_dict().items())
    _grads(net, 1)
    assert float(flat.flat.grad.abs().sum()) > 0
    joined = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    assert torch.equal(joined, flat.flat.grad)


def test_adamw_and_clipping_on_the_flat_tensor_match_stepping_each_weight():
    a, b = _net(), _net()
    flat = FlatParameters(b.parameters())
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.01)
    opt_b = torch.optim.AdamW([flat.flat], lr=1e-2, weight_decay=0.01)
    for step in range(5):
        opt_a.zero_grad()
        flat.zero_grad()
        _grads(a, step)
        _grads(b, step)
        torch.nn.utils.clip_grad_norm_(a.parameters(), 0.05)  # clips: the norm is larger
        torch.nn.utils.clip_grad_norm_([flat.flat], 0.05)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    assert not torch.equal(a.state_dict()["out.weight"], _net().state_dict()["out.weight"])


def test_a_replaced_or_cleared_gradient_is_put_back_into_the_flat_tensor():
    net = _net()
    flat = FlatParameters(net.parameters())
    first, second = list(net.parameters())[:2]
    first.grad = torch.full_like(first, 3.0)  # replaced: no longer a view
    second.grad = None                       # cleared
    flat.check_grads()
    n = first.numel()
    assert torch.equal(flat.flat.grad[:n], torch.full((n,), 3.0))
    assert float(flat.flat.grad[n:n + second.numel()].abs().sum()) == 0
    flat.zero_grad()
    _grads(net, 2)
    assert torch.equal(torch.cat([p.grad.reshape(-1) for p in net.parameters()]),
                       flat.flat.grad)


def test_a_per_weight_optimizer_state_resumes_as_the_flat_ones():
    a = _net()
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2)
    for step in range(3):
        opt_a.zero_grad()
        _grads(a, step)
        opt_a.step()
    b = copy.deepcopy(a)
    flat = FlatParameters(b.parameters())
    opt_b = torch.optim.AdamW([flat.flat], lr=1e-2)
    opt_b.load_state_dict(merge_optimizer_state(copy.deepcopy(opt_a.state_dict())))
    merged = opt_b.state_dict()
    assert merged["state"][0]["exp_avg"].numel() == flat.flat.numel()
    assert merge_optimizer_state(merged) is merged  # already flat: unchanged
    opt_a.zero_grad()
    flat.zero_grad()
    _grads(a, 9)
    _grads(b, 9)
    opt_a.step()
    opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
