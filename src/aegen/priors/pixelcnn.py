"""Gated PixelCNN prior over the code grid, without a blind spot.

A plain stack of masked k×k convolutions cannot see a wedge of positions above
and to the right of the current one (the "blind spot"). The gated PixelCNN
(van den Oord et al., 2016) fixes this with two stacks:

- a **vertical** stack whose convolutions see only rows strictly above the
  current one (all columns within reach), and
- a **horizontal** stack whose 1×k convolutions see the current row to the left,
  and which also receives the vertical stack's features (a 1×1 "link").

Both are masked convolutions: type **A** in the first layer (excludes the
current position: rows < i for the vertical stack, columns < j for the
horizontal one), type **B** afterwards (includes it, since by then it holds no
information about the code at (i, j)). Here the masked half of each kernel is
simply not stored: a (k//2 [+1 for B]) × k kernel over a grid padded on top, a
1 × (k//2 [+1]) kernel over a grid padded on the left.

Each layer is gated, tanh(a) ⊙ σ(b), with the class embedding added to a and b
when conditional; layers after the first are residual in the horizontal stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..registry import register
from .base import Prior, PriorConfig

__all__ = ["MaskedConv2d", "PixelCNNPrior", "PixelCNNConfig"]


@dataclass
class PixelCNNConfig(PriorConfig):
    d_model: int = bounded(64, ge=1)  # channels of every gated layer
    n_layers: int = bounded(5, ge=0)  # gated layers after the first (type A) one
    kernel: int = bounded(3, ge=3)  # odd; each layer reaches kernel//2 further up, left and right
    head_dim: int = bounded(256, ge=1)  # channels of the 1×1 head's hidden layer

    # names before the one config vocabulary (docs/architecture.md)
    renamed: ClassVar[dict[str, str]] = {
        "channels": "d_model",
        "layers": "n_layers",
        "out_hidden": "head_dim",
    }

    def validate(self) -> None:
        check(self.kernel % 2 == 1, f"model.kernel must be an odd number >= 3, got {self.kernel}")


class MaskedConv2d(nn.Module):
    """A masked k×k (vertical) or 1×k (horizontal) convolution, storing only the unmasked part.

    vertical, A: output (i, j) sees input rows i−k//2 … i−1, columns j−k//2 … j+k//2
    vertical, B: the same rows and row i
    horizontal, A: row i, columns j−k//2 … j−1
    horizontal, B: the same columns and column j
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stack: Literal["vertical", "horizontal"],
        mask: Literal["A", "B"],
    ):
        super().__init__()
        r, extra = k // 2, int(mask == "B")
        self.stack = stack
        if stack == "vertical":
            self.conv = nn.Conv2d(cin, cout, (r + extra, k))
            self.pad = (r, r, r, 0)  # left, right, top, bottom
        else:
            self.conv = nn.Conv2d(cin, cout, (1, r + extra))
            self.pad = (r, 0, 0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.conv(F.pad(x, self.pad))  # type A: one row/column too many, at the end
        return out[..., :h, :w]


def gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer of both stacks; ``first`` (type A) has no horizontal residual.

    ``label_rows``: rows of the class embedding added to the gates (0: unconditional).
    """

    def __init__(self, c: int, k: int, first: bool, label_rows: int):
        super().__init__()
        mask = "A" if first else "B"
        self.first = first
        self.v = MaskedConv2d(c, 2 * c, k, "vertical", mask)
        self.h = MaskedConv2d(c, 2 * c, k, "horizontal", mask)
        self.link = nn.Conv2d(2 * c, 2 * c, 1)  # vertical → horizontal; rows above only
        self.out = nn.Conv2d(c, c, 1)
        self.cond = nn.Embedding(label_rows, 4 * c) if label_rows else None

    def forward(self, v: torch.Tensor, h: torch.Tensor, y: torch.Tensor | None):
        v_pre = self.v(v)  # (B, 2C, H, W)
        h_pre = self.h(h) + self.link(v_pre)
        if self.cond is not None:
            cv, ch = self.cond(y)[:, :, None, None].chunk(2, dim=1)  # (B, 2C, 1, 1) each
            v_pre, h_pre = v_pre + cv, h_pre + ch
        h_out = self.out(gate(h_pre))
        return gate(v_pre), h_out if self.first else h + h_out


@register("pixelcnn", PixelCNNConfig, kind="prior")
class PixelCNNPrior(Prior):
    """Gated PixelCNN: embedding, one type-A layer, ``n_layers`` type-B layers, a 1×1 head."""

    train_defaults = {"epochs": 2, "batch_size": 128, "lr": 1e-3}

    def __init__(self, config: PixelCNNConfig):
        super().__init__(config)
        c = config
        self.tok = nn.Embedding(c.num_codes, c.d_model)
        self.layers = nn.ModuleList(
            GatedLayer(c.d_model, c.kernel, i == 0, self.label_rows) for i in range(c.n_layers + 1)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c.d_model, c.head_dim, 1),
            nn.ReLU(),
            nn.Conv2d(c.head_dim, c.num_codes, 1),
        )

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        return self.tok(codes)  # (B, H, W, C)

    def logits_from(self, emb: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        x = emb.permute(0, 3, 1, 2)  # (B, C, H, W)
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, y)
        return self.head(h)  # (B, K, H, W)

    def prefix_logits(self, flat: torch.Tensor, y: torch.Tensor | None, t: int) -> torch.Tensor:
        # Nothing here looks down, so rows below the current one can be left out.
        i, j = divmod(t, self.grid[1])
        codes = flat.view(-1, *self.grid)[:, : i + 1]
        return self(codes, y)[:, :, i, j]
