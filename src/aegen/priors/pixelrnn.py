"""PixelRNN prior: a raster-scan LSTM over the code grid.

Which PixelRNN, and why. The PixelRNN paper's Row LSTM runs one LSTM step per
*row*, each position seeing a triangle of the rows above through a 1-D
convolution: it parallelises over a row, which pays off on 32×32 or 64×64 images,
but its receptive field misses part of the context (the codes to the far left and
right of the rows above, and until an extra layer even the row so far). Our grids
are 7×7 = 49 codes, so there is nothing to parallelise worth a blind spot. A
*raster-scan* LSTM reads the grid as one sequence of 49 steps: its state at step t
has seen every code before t, exactly the context the autoregressive factorisation
asks for, and sampling carries the state forward one code at a time (the cache
here is simply the LSTM's (h, c)). To keep the 2-D layout that a flat sequence
loses, each step's input adds learned row and column embeddings of the position
being predicted.

The input at step t is the code at t − 1 (a learned start vector at t = 0), plus
the position embeddings, plus the class embedding when conditional (at every step,
so the label need not be remembered); stacked LSTM layers, then a linear head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..config import bounded
from ..registry import register
from .base import Prior, PriorConfig

__all__ = ["PixelRNNPrior", "PixelRNNConfig"]


@dataclass
class PixelRNNConfig(PriorConfig):
    embed_dim: int = bounded(128, ge=1)
    d_model: int = bounded(256, ge=1)  # the LSTM's hidden size
    n_layers: int = bounded(2, ge=1)
    dropout: float = bounded(0.0, ge=0, lt=1)  # between LSTM layers, during training only

    # names before the one config vocabulary (docs/architecture.md)
    renamed: ClassVar[dict[str, str]] = {"hidden": "d_model"}


@register("pixelrnn", PixelRNNConfig, kind="prior")
class PixelRNNPrior(Prior):
    """Raster-scan LSTM prior (see the module docstring for why not the Row LSTM)."""

    train_defaults = {"epochs": 2, "batch_size": 128, "lr": 2e-3}

    def __init__(self, config: PixelRNNConfig):
        super().__init__(config)
        c = config
        e = c.embed_dim
        self.tok = nn.Embedding(c.num_codes, e)
        self.start = nn.Parameter(torch.randn(e) * 0.02)
        self.row = nn.Parameter(torch.randn(c.height, 1, e) * 0.02)
        self.col = nn.Parameter(torch.randn(1, c.width, e) * 0.02)
        self.cls = nn.Embedding(self.label_rows, e) if c.num_classes else None
        self.lstm = nn.LSTM(
            e, c.d_model, c.n_layers, batch_first=True, dropout=c.dropout if c.n_layers > 1 else 0
        )
        self.head = nn.Linear(c.d_model, c.num_codes)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.tok(codes)  # (B, H, W, e)

    def _inputs(self, emb: torch.Tensor, y: torch.Tensor | None, t0: int = 0) -> torch.Tensor:
        """Embedded previous codes (B, t, e) for positions t0…t0+t−1 → LSTM inputs (B, t, e)."""
        pos = (self.row + self.col).flatten(0, 1)[t0 : t0 + emb.shape[1]]  # (t, e)
        x = emb + pos
        if self.cls is not None:
            x = x + self.cls(y)[:, None]
        return x

    def _shifted(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, t, e) codes 0…t−1 → (B, t + 1, e) [start, codes 0…t−1]."""
        start = self.start.expand(emb.shape[0], 1, -1)
        return torch.cat([start, emb], dim=1)

    def logits_from(self, emb: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        b, h, w, _ = emb.shape
        x = self._inputs(self._shifted(emb.flatten(1, 2)[:, :-1]), y)  # (B, T, e)
        out, _ = self.lstm(x)  # (B, T, d_model)
        return self.head(out).transpose(1, 2).reshape(b, -1, h, w)  # (B, K, H, W)

    def prefix_logits(self, flat: torch.Tensor, y: torch.Tensor | None, t: int) -> torch.Tensor:
        x = self._inputs(self._shifted(self.tok(flat[:, :t])), y)  # (n, t + 1, e)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

    def init_cache(self, n: int, y: torch.Tensor | None):
        return {"n": n, "state": None}

    def step(self, prev, y, t, cache):
        n = cache["n"]
        e = self.start.expand(n, -1) if prev is None else self.tok(prev)  # (n, e)
        x = self._inputs(e[:, None], y, t0=t)  # (n, 1, e)
        out, cache["state"] = self.lstm(x, cache["state"])
        return self.head(out[:, 0]), cache
