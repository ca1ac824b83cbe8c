"""A decoder-only causal transformer over the raster-ordered code grid.

The grid's H·W codes are a sequence of T tokens. The input at position t is the
token at t − 1 (a learned start vector, plus the class embedding when
conditional, at t = 0) plus a learned position embedding; causal self-attention
means the output at t sees positions ≤ t of the input, i.e. codes < t. Blocks are
pre-LayerNorm (attention, then an MLP), GPT style.

Sampling keeps each layer's keys and values (a KV cache): step t computes one
token through the network and attends over the t cached ones, instead of
re-running the whole prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..registry import register
from .base import Prior, PriorConfig

__all__ = ["RECIPE", "Block", "TransformerPrior", "TransformerPriorConfig"]


@dataclass
class TransformerPriorConfig(PriorConfig):
    d_model: int = bounded(128, ge=1)
    n_layers: int = bounded(4, ge=1)
    n_heads: int = bounded(4, ge=1)
    mlp_ratio: int = bounded(4, ge=1)
    # on the residual branches, in training; a few epochs do not overfit
    dropout: float = bounded(0.0, ge=0, lt=1)

    def validate(self) -> None:
        check(
            self.d_model % self.n_heads == 0,
            f"model.n_heads must divide model.d_model={self.d_model}, got {self.n_heads}",
        )
        check(0 <= self.dropout < 1, f"model.dropout must be in [0, 1), got {self.dropout}")


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)).

    ``causal=False`` lets every position attend to every other (the MaskGIT prior's
    bidirectional blocks); ``step`` and its cache are for causal blocks only.
    """

    def __init__(self, d: int, heads: int, mlp_ratio: int, dropout: float, causal: bool = True):
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d)
        )
        self.drop = nn.Dropout(dropout)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)  # each (B, T, d)
        shape = (b, t, self.heads, d // self.heads)
        return (a.view(shape).transpose(1, 2) for a in (q, k, v))  # each (B, h, T, d/h)

    def _finish(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = att.shape
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, -1)))
        return x + self.drop(self.mlp(self.ln2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=self.causal))

    def step(self, x: torch.Tensor, t: int, cache: tuple[torch.Tensor, torch.Tensor]):
        """One new token ``x`` (n, 1, d) at position t; its key and value go into ``cache``."""
        q, k, v = self._qkv(x)  # (n, h, 1, d/h)
        keys, values = cache  # (n, h, T, d/h), filled up to t − 1
        keys[:, :, t : t + 1] = k
        values[:, :, t : t + 1] = v
        att = F.scaled_dot_product_attention(q, keys[:, :, : t + 1], values[:, :, : t + 1])
        return self._finish(x, att)


# How both transformer priors train (this one and MaskGIT's). lr 4e-3 with 100 warm-up
# steps and clipping: one epoch on the tour's codes gave 4.02 bits/code where lr 2e-3 gave
# 4.55 (docs/tour.md), and 2 epochs on full Fashion-MNIST codes 4.23 bits and FID 93 (lr
# 1e-3 on a 3-epoch VQ-VAE's codes: 4.55 and 209, docs/vqvae.md). 5 epochs: on full
# Fashion-MNIST, guided at W = 1.5, 3 epochs (299 s on 2 Xeon cores, fp32) scored FID 44.6
# and 5 epochs (about 500 s) 37.9, against the VQ-VAE's own ceiling of 35.4; the whole
# default pipeline took 14.4 minutes there. MaskGIT with it: masked cross-entropy 5.15 bits
# where 2 epochs at lr 1e-3 with 200 warm-up steps gave 5.68, and FID 53 where 173
# (docs/vqvae.md, "The parallel prior"); an epoch took 85-89 s there.
RECIPE = {
    "epochs": 5,
    "batch_size": 128,
    "lr": 4e-3,
    "warmup_steps": 100,
    "grad_clip": 1.0,
}


@register("transformer", TransformerPriorConfig, kind="prior")
class TransformerPrior(Prior):
    """GPT-style prior: token + learned position embeddings, causal blocks, a linear head."""

    train_defaults = dict(RECIPE)

    def __init__(self, config: TransformerPriorConfig):
        super().__init__(config)
        c = config
        d = c.d_model
        self.tok = nn.Embedding(c.num_codes, d)
        self.pos = nn.Parameter(torch.randn(self.length, d) * 0.02)  # learned positions
        self.start = nn.Parameter(torch.randn(d) * 0.02)
        self.cls = nn.Embedding(self.label_rows, d) if c.num_classes else None
        self.blocks = nn.ModuleList(
            Block(d, c.n_heads, c.mlp_ratio, c.dropout) for _ in range(c.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, c.num_codes)

    def _start(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        s = self.start.expand(n, -1)  # (n, d)
        return s + self.cls(y) if self.cls is not None else s

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.tok(codes)  # (B, H, W, d)

    def _run(self, seq: torch.Tensor) -> torch.Tensor:
        """Input sequence (B, t, d), positions 0…t−1 → logits (B, t, K)."""
        x = seq + self.pos[: seq.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def _inputs(self, emb: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Shift right: (B, t, d) embedded codes → (B, t + 1, d) inputs [start, c_0 … c_{t−1}]."""
        return torch.cat([self._start(emb.shape[0], y)[:, None], emb], dim=1)

    def logits_from(self, emb: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        b, h, w, _ = emb.shape
        seq = self._inputs(emb.flatten(1, 2)[:, :-1], y)  # (B, T, d)
        return self._run(seq).transpose(1, 2).reshape(b, -1, h, w)  # (B, K, H, W)

    def prefix_logits(self, flat: torch.Tensor, y: torch.Tensor | None, t: int) -> torch.Tensor:
        seq = self._inputs(self.tok(flat[:, :t]), y)  # (n, t + 1, d): the prefix only
        return self._run(seq)[:, -1]

    def init_cache(self, n: int, y: torch.Tensor | None):
        c = self.config
        shape = (n, c.n_heads, self.length, c.d_model // c.n_heads)
        return [(torch.zeros(shape), torch.zeros(shape)) for _ in self.blocks]

    def step(self, prev, y, t, cache):
        n = cache[0][0].shape[0]
        x = self._start(n, y) if prev is None else self.tok(prev)  # (n, d)
        x = (x + self.pos[t])[:, None]  # (n, 1, d)
        for block, kv in zip(self.blocks, cache, strict=True):
            x = block.step(x, t, kv)
        return self.head(self.ln_f(x))[:, 0], cache
