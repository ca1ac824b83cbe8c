"""MaskGIT: a bidirectional transformer over the code grid, sampled in a few parallel steps.

Training (Chang et al., 2022): each grid gets a masking ratio r = cos(π/2 · u),
u ~ U(0, 1) — the cosine schedule, so most grids are heavily masked and a few
lightly — and ⌈r·T⌉ of its T = H·W codes, chosen at random, are replaced by a mask
token (index K). The network sees the rest in both directions and predicts the
masked codes; the loss is their cross-entropy, masked positions only. The ratio is
drawn per grid rather than once per batch: the same schedule, with less noise
between batches. When conditional, the label is one more token in front of the
grid; ``label_dropout`` replaces it in training by a "no label" token (index C), which
``guidance`` W != 1 samples with (as the autoregressive priors do, :mod:`.base`).

Sampling: start from an all-masked grid; at step s of S, draw a code for every
position from the logits (``temperature``, ``top_k``), keep the codes that were
already known, and of the newly drawn ones re-mask the least confident —
log-probability of the drawn code plus Gumbel noise scaled by
``choice_temperature · (1 − s/S)`` — so that ``masked_after(T, S)[s]`` positions
stay masked (T·cos(π/2 · s/S), rounded down, and at least one fewer each step).
After S steps (8 by default) nothing is masked; a code, once kept, never changes.

What it does not have: an exact likelihood. It reports the masked-token
cross-entropy (:meth:`MaskGITPrior.masked_ce_bits`), which is *not* a negative
log-likelihood of the grid and not comparable with the autoregressive priors'
bits/code; it is therefore no :class:`aegen.models.abilities.ScoresCodeLikelihood`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..data.loader import Batch
from ..registry import register
from .base import (
    LN2,
    CodePrior,
    Guidance,
    PriorConfig,
    check_guidance,
    check_sampling,
    draw,
    guidance_at,
    guide,
)
from .transformer import RECIPE, Block

__all__ = ["MaskGITPrior", "MaskGITPriorConfig", "mask_ratio", "masked_after"]


def mask_ratio(u: torch.Tensor) -> torch.Tensor:
    """The cosine schedule: the fraction of a grid that is masked at progress u ∈ [0, 1]."""
    return torch.cos(0.5 * math.pi * u)


def masked_after(length: int, steps: int) -> list[int]:
    """How many of ``length`` positions are still masked after each of ``steps`` steps.

    ⌊T·cos(π/2 · s/S)⌋ for s = 1 … S, but at least one fewer than the step before
    (until none are left), so every step fixes a code and the last leaves none masked.
    """
    counts, left = [], length
    for s in range(1, steps + 1):
        want = math.floor(length * math.cos(0.5 * math.pi * s / steps) + 1e-9)
        left = 0 if s == steps else max(0, min(left - 1, want))
        counts.append(left)
    return counts


@dataclass
class MaskGITPriorConfig(PriorConfig):
    d_model: int = bounded(128, ge=1)
    n_layers: int = bounded(4, ge=1)
    n_heads: int = bounded(4, ge=1)
    mlp_ratio: int = bounded(4, ge=1)
    dropout: float = bounded(0.0, ge=0, lt=1)  # on the residual branches, in training
    steps: int = bounded(8, ge=1)  # sampling steps unless sample(steps=…) says otherwise
    # Gumbel noise on the confidences: MaskGIT's 4.5 gave FID 53.3, 8 gave 51.2 on full
    # Fashion-MNIST codes (same draw; 8 also lower in 7 of 8 validation pairs, docs/vqvae.md)
    choice_temperature: float = bounded(8.0, ge=0)

    def validate(self) -> None:
        check(
            self.d_model % self.n_heads == 0,
            f"model.n_heads must divide model.d_model={self.d_model}, got {self.n_heads}",
        )


@register("maskgit", MaskGITPriorConfig, kind="prior")
class MaskGITPrior(CodePrior):
    """Bidirectional transformer that predicts masked codes; sampled by iterative unmasking."""

    train_defaults = dict(RECIPE)  # the transformer prior's (priors/transformer.py)

    def __init__(self, config: MaskGITPriorConfig):
        super().__init__(config)
        c = config
        d = c.d_model
        self.mask_token = c.num_codes  # index K of the input embedding
        self.tok = nn.Embedding(c.num_codes + 1, d)
        self.pos = nn.Parameter(torch.randn(self.length, d) * 0.02)
        # C classes and a "no label" token (index C) for label dropout
        self.cls = nn.Embedding(c.num_classes + 1, d) if c.num_classes else None
        self.blocks = nn.ModuleList(
            Block(d, c.n_heads, c.mlp_ratio, c.dropout, causal=False) for _ in range(c.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, c.num_codes)

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, H, W) with K at masked positions → logits (B, K, H, W) at every position."""
        b = codes.shape[0]
        x = self.tok(codes.flatten(1)) + self.pos  # (B, T, d)
        if self.cls is not None:
            x = torch.cat([self.cls(y)[:, None], x], dim=1)  # (B, 1 + T, d): label first
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x[:, -self.length :])  # (B, T, d)
        return self.head(x).transpose(1, 2).reshape(b, -1, *self.grid)

    # ------------------------------------------------------------------ training

    def random_mask(self, n: int, generator: torch.Generator | None = None, device=None):
        """(n, T) bool: per grid ⌈cos(π/2 · u)·T⌉ random positions (at least one), u ~ U(0, 1)."""
        u = torch.rand(n, generator=generator, device=device)
        k = (mask_ratio(u) * self.length).ceil().clamp(1, self.length)  # (n,)
        scores = torch.rand(n, self.length, generator=generator, device=device)
        rank = scores.argsort(1).argsort(1)  # (n, T): a random order of the positions
        return rank < k[:, None]

    def _masked_ce(
        self, codes: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy (nats) over the masked positions of one random mask, and their number."""
        mask = self.random_mask(codes.shape[0], generator, codes.device).view_as(codes)
        logits = self(codes.masked_fill(mask, self.mask_token), y)  # (B, K, H, W)
        ce = F.cross_entropy(logits.float(), codes, reduction="none")  # (B, H, W)
        return ce[mask].sum(), int(mask.sum())

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """Cross-entropy in nats per masked code; logs ``masked_ce_bits`` (not a likelihood).

        In eval mode (validation) the masks come from a fixed seed, so the score of the
        same weights does not change from call to call nor touch the global RNG.
        """
        codes = batch.x.long()  # (B, H, W)
        y = self.drop_labels(self._labels(batch.y, codes.shape[0]))
        generator = None
        if not self.training:
            generator = torch.Generator(codes.device).manual_seed(0)
        total, count = self._masked_ce(codes, y, generator)
        loss = total / count
        return loss, {"masked_ce_bits": loss.detach() / LN2}

    @torch.no_grad()
    def masked_ce_bits(
        self,
        codes: torch.Tensor,
        labels: torch.Tensor | None = None,
        batch_size: int = 1000,
        seed: int = 0,
    ) -> float:
        """Mean cross-entropy of masked codes in bits, masks drawn as in training from ``seed``.

        Not a negative log-likelihood of the grids: the network predicts each masked
        code from the unmasked ones, and the masks are random.
        """
        was = self.training
        self.eval()
        g = torch.Generator(codes.device).manual_seed(seed)
        total, count = 0.0, 0
        for start in range(0, codes.shape[0], batch_size):
            c = codes[start : start + batch_size].long()
            y = labels[start : start + batch_size] if labels is not None else None
            s, k = self._masked_ce(c, self._labels(y, c.shape[0]), g)
            total, count = total + s.item(), count + k
        self.train(was)
        return total / (count * LN2)

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def unmasking(
        self,
        n: int,
        generator: torch.Generator | None = None,
        label: int | torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        steps: int | None = None,
        choice_temperature: float | None = None,
        guidance: Guidance = 1.0,
    ) -> Iterator[torch.Tensor]:
        """The grids (n, H, W) after each sampling step, K where still masked (see the module)."""
        check_sampling(temperature, top_k)
        check_guidance(self.config, guidance)
        steps = self.config.steps if steps is None else int(steps)
        tau = self.config.choice_temperature if choice_temperature is None else choice_temperature
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        y = self._sample_labels(n, label, generator)
        yy = self.with_no_label(y, guidance)  # (n,) or (2n,): labelled, then unlabelled
        m = n if yy is None else yy.shape[0]
        k, t = self.config.num_codes, self.length
        cur = torch.full((n, t), self.mask_token, dtype=torch.long)  # (n, T)
        after = masked_after(t, steps)
        # a ramp's progress at each step: the codes known before it, over those known
        # before the last step (0 at the first step, 1 at the last)
        known = [t - left for left in [t, *after[:-1]]]
        for s, keep in enumerate(after, start=1):
            grids = cur.view(n, *self.grid).repeat(m // n, 1, 1)  # (m, H, W)
            logits = self(grids, yy).flatten(2).transpose(1, 2)  # (m, T, K)
            if m != n:
                w = guidance_at(guidance, known[s - 1] / max(known[-1], 1))
                logits = guide(logits, w)  # (n, T, K)
            drawn = draw(logits.reshape(n * t, k), generator, temperature, top_k).view(n, t)
            masked = cur == self.mask_token
            drawn = torch.where(masked, drawn, cur)  # known codes stay
            if keep:
                logp = (logits.float() / temperature).log_softmax(-1)
                conf = logp.gather(-1, drawn[..., None])[..., 0]  # (n, T)
                u = torch.rand(n, t, generator=generator).clamp_(1e-20, 1 - 1e-7)
                conf = conf + tau * (1 - s / steps) * -torch.log(-torch.log(u))  # Gumbel
                conf = conf.masked_fill(~masked, math.inf)
                least = conf.argsort(1)[:, :keep]  # (n, keep): re-masked this step
                drawn = drawn.scatter(1, least, self.mask_token)
            cur = drawn
            yield cur.view(n, *self.grid).clone()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        label: int | torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        steps: int | None = None,
        choice_temperature: float | None = None,
        guidance: Guidance = 1.0,
    ) -> torch.Tensor:
        """``n`` code grids (n, H, W) long in ``steps`` parallel steps (config.steps: 8).

        The same arguments as the autoregressive priors' ``sample``; ``use_cache`` is
        accepted and ignored (every step sees the whole grid: there is nothing to cache).
        """
        was = self.training
        self.eval()
        *_, grids = self.unmasking(
            n, generator, label, temperature, top_k, steps, choice_temperature, guidance
        )
        self.train(was)
        return grids
