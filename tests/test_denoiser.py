"""The transformer noise predictor: shapes, tokenisation and conditioning."""

from __future__ import annotations

import pytest
import torch

from gemdiff.common.errors import GemdiffError
from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser


def _net(**kw):
    torch.manual_seed(0)
    net = TransformerDenoiser(DenoiserConfig(**{"n_genes": 10, "n_classes": 2, "d_model": 32,
                                                "depth": 2, "n_heads": 4, **kw}))
    torch.nn.init.normal_(net.out.weight, std=0.1)  # the zero init would hide dependencies
    return net


@pytest.mark.parametrize("tok,n_tokens", [("gene", 10), ("patch", 3), ("single", 1)])
def test_shapes(tok, n_tokens):
    net = _net(tokenization=tok, patch_size=4)
    assert net.config.n_tokens == n_tokens
    out = net(torch.randn(5, 10), torch.randint(1000, (5,)), torch.randint(2, (5,)))
    assert out.shape == (5, 10)


def test_gene_tokens_relate_genes_through_attention():
    net = _net(tokenization="gene")
    x = torch.randn(1, 10, requires_grad=True)
    out = net(x, torch.tensor([10]), torch.tensor([0]))
    (grad,) = torch.autograd.grad(out[0, 0], x)
    assert grad[0, 1:].abs().sum() > 0  # gene 0's prediction depends on the other genes


def test_class_and_time_conditioning_change_the_output():
    net = _net()
    x, t = torch.randn(4, 10), torch.full((4,), 50)
    a = net(x, t, torch.zeros(4, dtype=torch.long))
    b = net(x, t, torch.ones(4, dtype=torch.long))
    c = net(x, t + 400, torch.zeros(4, dtype=torch.long))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    null = net(x, t, None)  # unconditional: the "no class" token
    assert null.shape == a.shape and not torch.allclose(null, a)


def test_unconditional_model_ignores_labels():
    net = _net(n_classes=0)
    x, t = torch.randn(4, 10), torch.full((4,), 50)
    torch.testing.assert_close(net(x, t, None), net(x, t, None))
    assert net.class_emb is None


def test_bad_tokenization_lists_choices():
    with pytest.raises(GemdiffError, match="'gene', 'patch', 'single'"):
        DenoiserConfig(n_genes=4, n_classes=2, tokenization="word")


def test_token_linear_is_one_linear_map_per_token():
    from gemdiff.models.denoiser import TokenLinear

    lin, x = TokenLinear(3, 4, 5), torch.randn(2, 3, 4)
    out = lin(x)
    for i in range(3):
        torch.testing.assert_close(out[:, i], x[:, i] @ lin.weight[i] + lin.bias[i])


def test_own_token_weights_read_and_write_each_token_on_its_own():
    net = _net(tokenization="patch", patch_size=4, token_weights="own")
    assert net.embed.weight.shape == (3, 4, 32) and net.out.weight.shape == (3, 32, 4)
    with torch.no_grad():  # silence the output projection of the first patch only
        net.out.weight[0].zero_()
        net.out.bias[0].zero_()
    out = net(torch.randn(5, 10), torch.full((5,), 50), torch.zeros(5, dtype=torch.long))
    assert (out[:, :4] == 0).all() and (out[:, 4:] != 0).all()
    shared = _net(tokenization="patch", patch_size=4)
    assert isinstance(shared.embed, torch.nn.Linear) and isinstance(shared.out, torch.nn.Linear)
    one = _net(tokenization="single", token_weights="own")  # one token: nothing to separate
    assert isinstance(one.embed, torch.nn.Linear)


def test_token_weights_default_to_shared_and_bad_choices_are_listed():
    assert DenoiserConfig(n_genes=4, n_classes=2).token_weights == "shared"
    with pytest.raises(GemdiffError, match="'shared', 'own'"):
        DenoiserConfig(n_genes=4, n_classes=2, token_weights="tied")


def test_single_token_block_is_full_attention_on_one_token():
    from gemdiff.models.denoiser import Block

    torch.manual_seed(0)
    full = Block(32, n_heads=4, mlp_ratio=2.0, dropout=0.0, n_tokens=2).eval()
    single = Block(32, n_heads=4, mlp_ratio=2.0, dropout=0.0, n_tokens=1).eval()
    assert not hasattr(single, "qkv")  # no query or key weights to train
    # Full attention weights load into the value-only block; softmax over a single key gives
    # weight 1, so the general attention path on one token must give the same output.
    single.load_state_dict(full.state_dict())
    h = torch.randn(6, 1, 32)
    torch.testing.assert_close(single(h), full(h))
    assert sum(p.numel() for p in single.parameters()) < sum(p.numel() for p in full.parameters())
