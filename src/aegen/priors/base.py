"""What every autoregressive prior over code grids offers.

A prior models p(codes | label) = Π_t p(c_t | c_<t, label) over an H×W grid of
code indices in raster order (row by row, left to right), t = 0 … H·W − 1.

- ``forward(codes, y) -> logits`` (B, K, H, W): the logits at (i, j) are the
  distribution of ``codes[:, i, j]`` given only the codes before it in raster
  order (and the label). It is ``logits_from(embed(codes), y)``; the split lets
  tests differentiate with respect to the embedded inputs to check causality.
- ``loss(batch)``: cross-entropy in nats per code (mean over codes and batch),
  logging ``nll_bits`` (the same in bits per code). ``batch.x`` holds the codes
  (B, H, W) as int64 and ``batch.y`` the labels, so the shared Trainer trains it.
- ``nll_bits(codes, labels)``: held-out negative log-likelihood in bits per code.
- ``sample(n, generator, label, temperature, top_k, use_cache)`` → (n, H, W) long.

Sampling draws one uniform number per image and step from ``generator`` and
inverts the CDF, so cached and uncached sampling consume the same random numbers
and give the same codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded
from ..data.loader import Batch
from ..errors import UserError

__all__ = ["CodePrior", "Prior", "PriorConfig", "check_sampling", "draw"]

LN2 = math.log(2.0)


@dataclass
class PriorConfig:
    """The grid a prior models: K codes, H×W positions, and how many classes (0: unconditional)."""

    num_codes: int = bounded(256, ge=2)  # K
    height: int = bounded(7, ge=1)  # H
    width: int = bounded(7, ge=1)  # W
    num_classes: int = bounded(0, ge=0)  # > 0: class-conditional


def draw(
    logits: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> torch.Tensor:
    """One sample per row of ``logits`` (n, K) → (n,) long, by inverting the CDF.

    ``temperature`` divides the logits; ``top_k`` keeps only the k most likely codes.
    Exactly n uniform numbers are drawn from ``generator``.
    """
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[1]:
        kth = logits.topk(top_k, dim=1).values[:, -1:]  # (n, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    cdf = logits.softmax(1).cumsum(1)  # (n, K)
    u = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device) * cdf[:, -1:]
    # first code whose CDF exceeds u: codes of probability 0 can never be chosen
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=logits.shape[1] - 1)


def check_sampling(temperature: float, top_k: int | None) -> None:
    """Refuse a temperature or top-k that sampling cannot use, with one line."""
    if temperature <= 0:
        raise UserError(f"temperature must be positive, got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"top-k must be at least 1, got {top_k}")


class CodePrior(nn.Module):
    """What every prior over code grids shares, autoregressive or not: the grid, the
    labels it is trained and sampled with, and ``family = "prior"``."""

    family: ClassVar[str] = "prior"
    registry_name: ClassVar[str]
    config_cls: ClassVar[type]
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        self.grid = (config.height, config.width)
        self.length = config.height * config.width  # T

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def _labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if y is None:
            raise ValueError("a class-conditional prior needs labels")
        return y.long()

    def _sample_labels(
        self, n: int, label: int | torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        if not self.conditional:
            if label is not None:
                raise UserError("this prior was trained without labels; leave out the label")
            return None
        c = self.config.num_classes
        if label is None:  # a uniformly random class per image
            return torch.randint(c, (n,), generator=generator)
        y = torch.as_tensor(label, dtype=torch.long).expand(n).clone()
        if int(y.min()) < 0 or int(y.max()) >= c:
            raise UserError(f"label {int(y.max())} is not a class of this prior (0..{c - 1})")
        return y


class Prior(CodePrior):
    """Base class of the autoregressive priors (see the module docstring)."""

    # ------------------------------------------------------------------ the model

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) long → (B, H, W, C) float: per-position input embeddings."""
        raise NotImplementedError

    def logits_from(self, emb: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """(B, H, W, C) embedded codes → (B, K, H, W) logits, causal in raster order."""
        raise NotImplementedError

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_from(self.embed(codes), y)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """Cross-entropy in nats per code (mean over codes and batch); logs ``nll_bits``."""
        codes = batch.x.long()  # (B, H, W)
        logits = self(codes, self._labels(batch.y, codes.shape[0]))  # (B, K, H, W)
        nll = F.cross_entropy(logits.float(), codes)
        return nll, {"nll_bits": nll.detach() / LN2}

    @torch.no_grad()
    def nll_bits(
        self, codes: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
    ) -> float:
        """Mean negative log-likelihood of ``codes`` (N, H, W) in bits per code."""
        was = self.training
        self.eval()
        total = 0.0
        for start in range(0, codes.shape[0], batch_size):
            c = codes[start : start + batch_size].long()
            y = labels[start : start + batch_size] if labels is not None else None
            logits = self(c, self._labels(y, c.shape[0]))
            total += F.cross_entropy(logits.float(), c, reduction="sum").item()
        self.train(was)
        return total / (codes.numel() * LN2)

    # ------------------------------------------------------------------ sampling

    def init_cache(self, n: int, y: torch.Tensor | None) -> Any:
        """State for incremental sampling, or None when the prior has no cache."""
        return None

    def step(
        self, prev: torch.Tensor | None, y: torch.Tensor | None, t: int, cache: Any
    ) -> tuple[torch.Tensor, Any]:
        """Logits (n, K) for position t given the code at t − 1 (None at t = 0) and the cache."""
        raise NotImplementedError

    def prefix_logits(self, flat: torch.Tensor, y: torch.Tensor | None, t: int) -> torch.Tensor:
        """Logits (n, K) for position t, recomputed from the codes ``flat[:, :t]`` (no cache)."""
        codes = flat.view(-1, *self.grid)
        return self(codes, y).flatten(2)[:, :, t]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        label: int | torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """``n`` code grids (n, H, W) long, drawn position by position in raster order.

        ``label``: a class (or (n,) classes) for a conditional prior; None draws
        classes uniformly. ``use_cache=False`` recomputes every step from the codes
        so far (the reference the cache is tested against).
        """
        check_sampling(temperature, top_k)
        was = self.training
        self.eval()
        y = self._sample_labels(n, label, generator)
        flat = torch.zeros(n, self.length, dtype=torch.long)  # (n, T)
        cache = self.init_cache(n, y) if use_cache else None
        for t in range(self.length):
            if cache is not None:
                logits, cache = self.step(flat[:, t - 1] if t else None, y, t, cache)
            else:
                logits = self.prefix_logits(flat, y, t)
            flat[:, t] = draw(logits, generator, temperature, top_k)
        self.train(was)
        return flat.view(n, *self.grid)
