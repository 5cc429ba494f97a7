"""The noise predictor: a transformer mapping (x_t, t, y) -> eps. Pure torch; knows no schedule.

Tokenisation decides what attention can relate:

- ``gene``: one token per gene (value embedding + learned gene embedding); attention relates genes.
- ``patch``: ``patch_size`` consecutive genes per token (the default, 32: one token up to 32
  genes, ``ceil(n_genes / 32)`` tokens beyond).
- ``single``: all genes in one token, as the reference implementation; attention then has
  nothing to attend across and the network is an MLP with extra steps (its blocks hold no
  query or key weights).

``token_weights`` decides whether tokens share the maps between values and the model width:

- ``shared``: one input embedding and one output projection for every token, as a vision
  transformer does for its patches; a gene is told apart from the others only by its added
  position embedding.
- ``own``: each token has its own input embedding and output projection (a feature tokenizer,
  Gorishniy et al. 2021), so each gene's values can be read and written on their own scale.
  With one token the two are the same.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gemdiff.common.choices import check_choice

Tokenization = Literal["gene", "patch", "single"]
TokenWeights = Literal["shared", "own"]
Architecture = Literal["transformer", "mlp"]


@dataclass
class DenoiserConfig:
    """Arguments of :func:`build_denoiser`; stored in checkpoints as a plain dict.

    ``architecture``: ``transformer`` (:class:`TransformerDenoiser`; tokenisation and token
    weights apply) or ``mlp`` (:class:`MLPDenoiser`: ``depth`` residual blocks of width
    ``d_model`` and hidden width ``mlp_ratio * d_model``; ``n_heads`` unused).
    """

    n_genes: int
    n_classes: int  # 0 trains an unconditional model
    d_model: int = 128
    depth: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tokenization: str = "patch"
    patch_size: int = 32
    token_weights: str = "shared"
    architecture: str = "transformer"  # checkpoints written before it existed: transformer

    def __post_init__(self):
        check_choice("architecture", self.architecture, Architecture)
        check_choice("tokenization", self.tokenization, Tokenization)
        check_choice("token_weights", self.token_weights, TokenWeights)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    @property
    def token_size(self) -> int:
        """Genes per token."""
        return {"gene": 1, "patch": self.patch_size, "single": self.n_genes}[self.tokenization]

    @property
    def n_tokens(self) -> int:
        return math.ceil(self.n_genes / self.token_size)

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)).

    With a single token (``n_tokens=1``) the token attends only to itself with weight 1, so
    attention returns its value vector: the block holds only the value and output projections
    (``value``, ``proj``), the same function and gradients without query and key weights that
    would never be trained but still be averaged, clipped and stepped. Weights saved with the
    full ``qkv`` projection load into it exactly.
    """

    def __init__(self, d: int, n_heads: int, mlp_ratio: float, dropout: float, n_tokens: int = 2):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.single = n_tokens == 1
        self.ln1 = nn.LayerNorm(d)
        if self.single:
            self.value = nn.Linear(d, d)
            self.register_load_state_dict_pre_hook(_value_rows_of_qkv)
        else:
            self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        hidden = int(d * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d),
                                 nn.Dropout(dropout))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, N, D = h.shape
        if self.single:
            a = self.value(self.ln1(h))  # (B, 1, D): attention over one token is its value
            if self.training and self.dropout:
                # Attention dropout drops the single weight, i.e. a whole head's output.
                heads = F.dropout(a.new_ones(B, 1, self.n_heads, 1), self.dropout)
                a = (a.view(B, 1, self.n_heads, D // self.n_heads) * heads).view(B, 1, D)
            h = h + self.proj(a)
            return h + self.mlp(self.ln2(h))
        q, k, v = self.qkv(self.ln1(h)).view(B, N, 3, self.n_heads, D // self.n_heads).unbind(2)
        # (B, heads, N, d_head) each
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.proj(a.transpose(1, 2).reshape(B, N, D))
        return h + self.mlp(self.ln2(h))


def _value_rows_of_qkv(module: Block, state_dict: dict, prefix: str, *args) -> None:
    """Load hook of a single-token block: keep the value rows of saved ``qkv`` weights."""
    if prefix + "qkv.weight" not in state_dict:
        return
    d = module.value.in_features
    state_dict[prefix + "value.weight"] = state_dict.pop(prefix + "qkv.weight")[2 * d:]
    state_dict[prefix + "value.bias"] = state_dict.pop(prefix + "qkv.bias")[2 * d:]


class TokenLinear(nn.Module):
    """One linear map per token: (B, n_tokens, in) -> (B, n_tokens, out), token i through
    ``weight[i]``; initialised per token as :class:`torch.nn.Linear` is."""

    def __init__(self, n_tokens: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_tokens, in_features, out_features)
                                   .uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tokens, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bni,nio->bno", x, self.weight) + self.bias


class _Conditioned(nn.Module):
    """What the noise predictors share: the timestep MLP, the class embedding (index
    ``n_classes`` is the "no class" of classifier-free guidance) and their sum."""

    config: DenoiserConfig

    def _build_conditioning(self, d: int, n_classes: int) -> None:
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.class_emb = nn.Embedding(n_classes + 1, d) if n_classes > 0 else None

    @property
    def null_class(self) -> int:
        return self.config.n_classes

    def condition(self, t: torch.Tensor, y: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """(B, d_model): the timestep embedding plus the class's (no class where ``y`` is None)."""
        cond = self.time_mlp(timestep_embedding(t, self.config.d_model))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.null_class, dtype=torch.long, device=x.device)
            cond = cond + self.class_emb(y)
        return cond


class TransformerDenoiser(_Conditioned):
    """eps_theta(x_t, t, y): genes -> tokens -> transformer -> genes.

    The timestep embedding and the class embedding are added to every token, next to the
    learned position (gene) embedding. Class index ``n_classes`` is the "no class" token used
    for unconditional prediction (classifier-free guidance).
    """

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = c = config
        d = c.d_model
        self.pad = c.n_tokens * c.token_size - c.n_genes
        own = c.token_weights == "own" and c.n_tokens > 1
        self.embed = TokenLinear(c.n_tokens, c.token_size, d) if own else \
            nn.Linear(c.token_size, d)
        self.pos = nn.Parameter(torch.randn(1, c.n_tokens, d) * 0.02)
        self._build_conditioning(d, c.n_classes)
        self.blocks = nn.ModuleList(Block(d, c.n_heads, c.mlp_ratio, c.dropout, c.n_tokens)
                                    for _ in range(c.depth))
        self.ln_out = nn.LayerNorm(d)
        self.out = TokenLinear(c.n_tokens, d, c.token_size) if own else \
            nn.Linear(d, c.token_size)
        # Start by predicting zero noise: a stable beginning for diffusion training.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the noise in ``x`` (B, n_genes) at steps ``t`` (B,) for classes ``y`` (B,)."""
        c = self.config
        B = x.shape[0]
        if self.pad:
            x = F.pad(x, (0, self.pad))
        h = self.embed(x.view(B, c.n_tokens, c.token_size)) + self.pos  # (B, n_tokens, d)
        h = h + self.condition(t, y, x)[:, None, :]
        for block in self.blocks:
            h = block(h)
        eps = self.out(self.ln_out(h))  # (B, n_tokens, token_size)
        return eps.reshape(B, -1)[:, : c.n_genes]


class ResidualBlock(nn.Module):
    """x + mlp(ln(x) + cond): a pre-norm residual MLP block with the conditioning (timestep
    and class) added to its input."""

    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.cond = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d))

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(self.ln(h) + self.cond(cond))


class MLPDenoiser(_Conditioned):
    """eps_theta(x_t, t, y) as a residual MLP over all genes at once (the denoiser family of
    TabDDPM): every layer reads every gene, so relating genes costs no attention, and a step
    costs about ``2 * n_genes * d_model + depth * 2 * d_model * hidden`` multiply-adds a sample.
    Timestep and class embeddings condition every block; class ``n_classes`` is the "no class"
    of classifier-free guidance, as in :class:`TransformerDenoiser`."""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = c = config
        d = c.d_model
        self.embed = nn.Linear(c.n_genes, d)
        self._build_conditioning(d, c.n_classes)
        self.blocks = nn.ModuleList(ResidualBlock(d, int(d * c.mlp_ratio), c.dropout)
                                    for _ in range(c.depth))
        self.ln_out = nn.LayerNorm(d)
        self.out = nn.Linear(d, c.n_genes)
        nn.init.zeros_(self.out.weight)  # start by predicting zero, as the transformer does
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the noise in ``x`` (B, n_genes) at steps ``t`` (B,) for classes ``y`` (B,)."""
        cond = F.silu(self.condition(t, y, x))
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(self.ln_out(h))


def build_denoiser(config: DenoiserConfig) -> nn.Module:
    """The noise predictor of ``config.architecture``."""
    return MLPDenoiser(config) if config.architecture == "mlp" else TransformerDenoiser(config)
