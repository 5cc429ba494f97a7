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


def test_mlp_denoiser_relates_all_genes_and_is_conditioned():
    from gemdiff.models.denoiser import MLPDenoiser, build_denoiser

    cfg = DenoiserConfig(n_genes=10, n_classes=2, d_model=32, depth=2, mlp_ratio=2.0,
                         architecture="mlp")
    net = build_denoiser(cfg)
    assert isinstance(net, MLPDenoiser) and net.null_class == 2
    x, t, y = torch.randn(4, 10), torch.tensor([0, 10, 100, 999]), torch.tensor([0, 1, 0, 2])
    assert torch.equal(net(x, t, y), torch.zeros(4, 10))  # starts by predicting zero
    torch.nn.init.normal_(net.out.weight, std=0.1)
    out = net(x, t, y)
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert (net(x2, t, y) - out)[:, 1:].abs().max() > 0  # gene 0 moves every other gene
    assert not torch.allclose(net(x, t, torch.tensor([1, 0, 1, 0])), out)
    assert not torch.allclose(net(x, t + 1, y), out)
    with pytest.raises(GemdiffError, match="architecture='cnn' is not one of"):
        DenoiserConfig(n_genes=10, n_classes=2, architecture="cnn")
    # checkpoints written before the option load as transformers
    old = {k: v for k, v in cfg.to_dict().items() if k != "architecture"}
    assert isinstance(build_denoiser(DenoiserConfig(**old)), TransformerDenoiser)


def test_an_mlp_model_trains_saves_and_samples(tmp_path):
    import gemdiff

    model = gemdiff.GEMDiff.from_config("synthetic", n_genes=12)
    model.fit(max_steps=30, progress=False, overrides=[
        "model.denoiser.architecture=mlp", "model.denoiser.d_model=32", "calibrate.rows=0"])
    model.save(tmp_path / "m")
    back = gemdiff.GEMDiff.load(tmp_path / "m")
    assert back.settings["model"]["denoiser"]["architecture"] == "mlp"
    synth = back.sample(n_per_class=5, sampler="dpm2", metrics=False, umap=False)
    assert synth.shape == (10, 12)
