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
- ``sample(n, generator, label, temperature, top_k, use_cache, guidance)`` → (n, H, W) long.

Sampling draws one uniform number per image and step from ``generator`` and
inverts the CDF, so cached and uncached sampling consume the same random numbers
and give the same codes.

Classifier-free guidance (Ho & Salimans, 2022). A conditional prior trained with
``label_dropout`` p > 0 sees, in a fraction p of its training grids, a "no label"
class (index C, one more class embedding) instead of the true label, so the one
network is also the unconditional prior. Sampling with ``guidance`` W draws each
code from the logits l_u + W·(l_c − l_u), l_c the conditional and l_u the no-label
logits at that position (both from one batch of 2n grids), before temperature and
top-k: W = 1 is the conditional prior (one pass), W = 0 the unconditional one, and
W > 1 leans further towards what makes the class likely.

W may also rise (or fall) as a grid is drawn: ``guidance`` (A, B) weighs each code by
A + (B − A)·p, where p grows with the codes already known when it is drawn, from 0 at
the first draw to 1 at the last (in raster order, p = t / (T − 1) at position t).
Guidance that rises with the codes drawn is the schedule of MUSE and MAR (Chang et al.
2023, Li et al. 2024); measured here in docs/vqvae.md ("Guidance that rises").
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

__all__ = [
    "CodePrior",
    "Guidance",
    "Prior",
    "PriorConfig",
    "check_guidance",
    "check_sampling",
    "draw",
    "guidance_at",
    "guidance_record",
    "guide",
]

# a weight W, or (A, B): from A at the first code drawn, linearly, towards B (module docstring)
Guidance = float | tuple[float, float]

LN2 = math.log(2.0)


@dataclass
class PriorConfig:
    """The grid a prior models: K codes, H×W positions, and how many classes (0: unconditional)."""

    num_codes: int = bounded(256, ge=2)  # K
    height: int = bounded(7, ge=1)  # H
    width: int = bounded(7, ge=1)  # W
    num_classes: int = bounded(0, ge=0)  # > 0: class-conditional
    # conditional: train with the "no label" class this often (> 0 enables guidance)
    label_dropout: float = bounded(0.0, ge=0, lt=1)


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


def check_guidance(config: PriorConfig, guidance: Guidance) -> None:
    """Refuse, with one line, a guidance weight W that a prior of ``config`` cannot sample with.

    W (each end of a ramp) must be finite and >= 0; W != 1 needs a conditional prior
    whose "no label" class was trained (``label_dropout`` > 0): otherwise l_u comes from
    an untrained embedding.
    """
    ends = guidance if isinstance(guidance, tuple) else (guidance,)
    if not all(math.isfinite(w) and w >= 0 for w in ends):
        raise UserError(
            f"guidance must be a finite number >= 0 (each end of a ramp), got "
            f"{guidance_record(guidance)}"
        )
    if guidance == 1.0:
        return
    if config.num_classes == 0:
        raise UserError("this prior was trained without labels; guidance other than 1 needs them")
    if config.label_dropout == 0:
        raise UserError(
            "this prior never trained its no-label class (model.label_dropout=0); guidance "
            "other than 1 needs it: train with prior.model.label_dropout=0.1, say"
        )


def guidance_at(guidance: Guidance, progress: float) -> float:
    """W at ``progress`` p of a grid's drawing: 0 at the first draw, 1 at the last."""
    if isinstance(guidance, tuple):
        start, end = guidance
        return start + (end - start) * progress
    return guidance


def guidance_record(guidance: Guidance) -> float | list[float]:
    """``guidance`` as JSON keeps it: a number, or [A, B] for a ramp (a tuple reads back as a
    list, and a record must compare equal to the one it was written from)."""
    return [float(w) for w in guidance] if isinstance(guidance, tuple) else float(guidance)


def guide(logits: torch.Tensor, guidance: float) -> torch.Tensor:
    """(2n, …) logits, the conditional rows then the no-label ones → (n, …): l_u + W·(l_c − l_u)."""
    cond, uncond = logits.chunk(2)
    return uncond + guidance * (cond - uncond)


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

    @property
    def label_rows(self) -> int:
        """Rows of a class embedding: the C classes, and the "no label" one (index C) when
        ``label_dropout`` trains it (without, the weights of older runs still fit)."""
        c = self.config
        return c.num_classes + (c.num_classes > 0 and c.label_dropout > 0)

    def drop_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """In training, each label replaced by "no label" (C) with probability ``label_dropout``.

        The mask comes from the global RNG, which the Trainer checkpoints, so a resumed
        run draws the same masks; nothing is drawn when p = 0 or outside training.
        """
        p = self.config.label_dropout
        if y is None or not self.training or p == 0:
            return y
        drop = torch.rand(y.shape[0], device=y.device) < p
        return y.masked_fill(drop, self.config.num_classes)

    def with_no_label(self, y: torch.Tensor | None, guidance: Guidance) -> torch.Tensor | None:
        """The labels a sampling batch runs with: (n,) as they are for W = 1, else (2n,), the
        labels then n times "no label" (see :func:`guide`)."""
        if y is None or guidance == 1.0:
            return y
        return torch.cat([y, torch.full_like(y, self.config.num_classes)])

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
        y = self.drop_labels(self._labels(batch.y, codes.shape[0]))
        logits = self(codes, y)  # (B, K, H, W)
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
        guidance: Guidance = 1.0,
    ) -> torch.Tensor:
        """``n`` code grids (n, H, W) long, drawn position by position in raster order.

        ``label``: a class (or (n,) classes) for a conditional prior; None draws
        classes uniformly. ``use_cache=False`` recomputes every step from the codes
        so far (the reference the cache is tested against). ``guidance`` W != 1 runs
        each step on 2n grids, labelled and unlabelled; a ramp (A, B) guides position t
        at A + (B − A)·t/(T − 1) (see the module docstring).
        """
        check_sampling(temperature, top_k)
        check_guidance(self.config, guidance)
        was = self.training
        self.eval()
        y = self._sample_labels(n, label, generator)
        yy = self.with_no_label(y, guidance)  # (n,) or (2n,)
        m = n if yy is None else yy.shape[0]
        flat = torch.zeros(m, self.length, dtype=torch.long)  # (m, T)
        cache = self.init_cache(m, yy) if use_cache else None
        for t in range(self.length):
            if cache is not None:
                logits, cache = self.step(flat[:, t - 1] if t else None, yy, t, cache)
            else:
                logits = self.prefix_logits(flat, yy, t)  # (m, K)
            if m != n:
                w = guidance_at(guidance, t / max(self.length - 1, 1))
                logits = guide(logits, w)  # (n, K)
            code = draw(logits, generator, temperature, top_k)  # (n,)
            flat[:, t] = code.repeat(m // n)  # the unlabelled copies go on from the same codes
        self.train(was)
        return flat[:n].view(n, *self.grid)
