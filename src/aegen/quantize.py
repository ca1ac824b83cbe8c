"""Vector quantization: snap each encoder vector to its nearest codebook row.

The lecture's picture: a codebook of K prototype vectors of length D; an encoder
output of shape (B, D, H, W) is read as B·H·W vectors, each replaced by the
nearest codebook row, giving indices (B, H, W) in [0, K) and a quantized map of
the same shape as the input.

- :func:`nearest_code` finds the nearest rows by the expanded squared distance
  ‖z‖² − 2 z·e + ‖e‖² (one matrix product instead of a B·H·W × K × D tensor),
  a chunk of rows at a time so memory stays bounded.
- :class:`VectorQuantizer` adds what training needs: the codebook and commitment
  losses (β = 0.25), the straight-through gradient, optional EMA codebook updates
  with Laplace smoothing, restarts of dead codes from the current batch's encoder
  outputs, k-means initialisation from the first training batch, and the
  perplexity and number of codes used.

- Options users of VQ libraries expect: ``cosine=True`` compares directions only
  (encoder vectors and codes are unit length, the distance is 2 − 2·cos); and
  ``rotation_trick=True`` replaces the straight-through gradient by the rotation
  trick (Fifty et al., 2024): the encoder vector e is carried to its code q by the
  rotation and rescaling that maps e onto q, held constant in the backward pass, so
  the gradient reaching the encoder keeps the angle between e and q instead of
  being copied unchanged.
- :class:`FiniteScalarQuantizer` (FSQ, Mentzer et al., 2023): no codebook to learn
  or collapse; each of a few projected dimensions is bounded and rounded to one of
  L levels, and the K = ∏L codes are the grid points.

What it does not do: product/residual quantization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FiniteScalarQuantizer",
    "QuantizerOutput",
    "VectorQuantizer",
    "code_usage",
    "entropy_bits",
    "kmeans",
    "nearest_code",
    "rotate_to",
    "squared_distances",
]


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, K) squared Euclidean distances between rows of ``z`` (N, D) and ``codebook`` (K, D).

    Expanded as ‖z‖² − 2 z·e + ‖e‖²: a matrix product, no (N, K, D) intermediate.
    """
    z2 = z.pow(2).sum(1, keepdim=True)  # (N, 1)
    e2 = codebook.pow(2).sum(1)  # (K,)
    return torch.addmm(z2 + e2, z, codebook.t(), alpha=-2.0)  # (N, K)


def nearest_code(z: torch.Tensor, codebook: torch.Tensor, chunk_size: int = 8192) -> torch.Tensor:
    """Indices of the nearest codebook rows: ``z`` (…, D), ``codebook`` (K, D) → (…) long.

    Computed ``chunk_size`` vectors at a time, so memory is O(chunk_size · K)
    whatever the batch. Ties go to the lower index.

    >>> e = torch.tensor([[1.0, 1.0], [3.0, 1.0], [2.0, 3.0]])
    >>> nearest_code(torch.tensor([[0.8, 1.2], [2.9, 0.8], [2.1, 2.7]]), e).tolist()
    [0, 1, 2]
    """
    if z.shape[-1] != codebook.shape[1]:
        raise ValueError(
            f"vectors of size {z.shape[-1]} against a codebook of size {codebook.shape[1]}"
        )
    flat = z.reshape(-1, z.shape[-1])  # (N, D)
    out = torch.empty(flat.shape[0], dtype=torch.long, device=z.device)
    for start in range(0, flat.shape[0], chunk_size):
        chunk = flat[start : start + chunk_size]
        out[start : start + chunk_size] = squared_distances(chunk, codebook).argmin(1)
    return out.view(z.shape[:-1])


def code_usage(indices: torch.Tensor, num_codes: int) -> tuple[float, int]:
    """(perplexity, codes used) of a set of indices.

    Perplexity is exp of the entropy of the empirical code frequencies: K when all
    codes are used equally, 1 when one code is used for everything.
    """
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * p.clamp_min(1e-30).log()).sum()  # nats
    return float(entropy.exp()), int((counts > 0).sum())


def entropy_bits(indices: torch.Tensor, num_codes: int) -> float:
    """Entropy in bits of the empirical (unigram) frequencies of ``indices``."""
    perplexity, _ = code_usage(indices, num_codes)
    return math.log2(perplexity)


def kmeans(
    x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on rows of ``x`` (N, D) → (centres (k, D), counts (k,)).

    Seeded by k-means++ (each next centre drawn with probability ∝ its squared
    distance to the nearest centre so far), which avoids most bad local optima;
    an empty cluster keeps its previous centre. With N < k some centres repeat.
    """
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = (x - x[first]).pow(2).sum(1)  # (N,) squared distance to the nearest centre
    for _ in range(1, k):
        total = d2.sum()
        if total > 0:
            i = int(torch.multinomial(d2 / total, 1, generator=generator))
        else:  # every point is already a centre
            i = int(torch.randint(n, (1,), generator=generator))
        centres.append(x[i])
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    c = torch.stack(centres)  # (k, D)
    counts = torch.zeros(k, dtype=x.dtype)
    for _ in range(iters):
        idx = nearest_code(x, c)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, idx, x)
        filled = counts > 0
        c[filled] = sums[filled] / counts[filled, None]
    return c, counts


def rotate_to(e: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The rotation trick: ``q``'s value, with the gradient of a fixed rotation of ``e``.

    ``e`` and ``q`` are (N, D) rows. Returns λ·R·e where R rotates the direction of e
    onto that of q (the Householder-based form R = I − 2rrᵀ + 2q̂êᵀ with r the unit
    bisector of ê and q̂) and λ = ‖q‖/‖e‖; R and λ are held constant (no gradient), so
    the gradient w.r.t. e is (λR)ᵀ times the incoming one. The value equals q up to
    rounding; callers that need q exactly add ``(q - out).detach()``.
    """
    e_norm = e.detach().norm(dim=1, keepdim=True).clamp_min(eps)
    q_norm = q.detach().norm(dim=1, keepdim=True).clamp_min(eps)
    e_hat, q_hat = e.detach() / e_norm, q.detach() / q_norm
    r = F.normalize(e_hat + q_hat, dim=1, eps=eps)
    rotated = (
        e - 2 * r * (r * e).sum(1, keepdim=True) + 2 * q_hat * (e_hat * e).sum(1, keepdim=True)
    )
    return rotated * (q_norm / e_norm)


@dataclass
class QuantizerOutput:
    """What :meth:`VectorQuantizer.forward` returns.

    ``quantized`` has the input's shape and the values of ``codebook[indices]``
    exactly; its gradient flows straight through to the input. ``loss`` is what
    to add to the reconstruction loss (commitment, plus the codebook loss
    unless the codebook is updated by EMA); both terms are means over all
    B·D·H·W elements.
    """

    quantized: torch.Tensor  # (B, D, H, W)
    indices: torch.Tensor  # (B, H, W) long
    loss: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: float
    codes_used: int


class VectorQuantizer(nn.Module):
    """A K × D codebook with the VQ-VAE losses, straight-through gradient and code care.

    ``num_codes`` K, ``dim`` D; ``beta`` weighs the commitment loss
    β‖z − sg[e]‖² that keeps the encoder near its codes. Without EMA the codebook
    is a parameter learned by the codebook loss ‖sg[z] − e‖²; with ``ema=True`` it
    is a buffer set to exponential moving averages of the vectors assigned to each
    code (decay ``decay``), the counts Laplace-smoothed with ``eps`` so a rarely
    used code does not divide by ~0.

    During training only:

    - k-means initialisation (``kmeans_init``): the first training batch's
      encoder vectors are clustered into the initial codebook, so no code starts
      far from the data;
    - dead-code restarts (``restart_threshold`` > 0): each code's usage is an
      EMA (decay ``usage_decay``, short: a code the encoder has left behind is
      noticed within a few dozen steps) of how many vectors per batch picked it;
      codes whose usage falls below ``restart_threshold`` times the mean usage
      (vectors per batch / K) are moved onto randomly chosen encoder vectors of
      the current batch (the most recent outputs there are, and no extra state
      to resume).

    The codebook is always called ``codebook`` in the state dict, with or without EMA.
    """

    def __init__(
        self,
        num_codes: int = 256,
        dim: int = 64,
        beta: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        restart_threshold: float = 0.05,
        usage_decay: float = 0.9,
        cosine: bool = False,
        rotation_trick: bool = False,
    ):
        super().__init__()
        self.cosine, self.rotation_trick = cosine, rotation_trick
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.ema, self.decay, self.eps = ema, decay, eps
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.restart_threshold, self.usage_decay = restart_threshold, usage_decay
        init = torch.empty(num_codes, dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if cosine:
            init = F.normalize(init, dim=1)
        # with EMA the optimiser must leave the codebook alone: requires_grad=False
        self.codebook = nn.Parameter(init, requires_grad=not ema)
        # persistent state, so a resumed run continues exactly
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("usage", torch.zeros(num_codes))  # EMA of vectors per batch
        if ema:
            # count 1 and sum = the initial code: the EMA starts at the initial codebook
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())

    # ------------------------------------------------------------------ lookups

    def codes(self) -> torch.Tensor:
        """The (K, D) code vectors in use: the codebook, unit rows when ``cosine``
        (the codebook loss may move learned rows off the sphere; they are read normalised)."""
        return F.normalize(self.codebook, dim=1) if self.cosine else self.codebook

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of ``indices`` (B, H, W) as a (B, D, H, W) map."""
        return F.embedding(indices, self.codes()).permute(0, 3, 1, 2)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices (B, H, W) of an encoder map ``z`` (B, D, H, W)."""
        flat = z.detach().float().permute(0, 2, 3, 1)  # (B, H, W, D)
        if self.cosine:
            flat = F.normalize(flat, dim=-1)
        with torch.autocast(z.device.type, enabled=False):
            return nearest_code(flat, self.codes().detach().float())

    # ------------------------------------------------------------------ forward

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize an encoder map ``z`` (B, D, H, W).

        In training mode the codebook is updated (EMA, restarts) *after* this
        batch is quantized, so ``quantized`` holds the codebook as it was before.
        """
        # Distances and losses in float32 even under bf16 autocast: a bf16 matmul
        # picks a different nearest code often enough to matter.
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            if self.cosine:  # directions only: unit vectors against unit codes
                z = F.normalize(z, dim=1)
            flat = z.detach().permute(0, 2, 3, 1).reshape(-1, self.dim)  # (B·H·W, D)
            if self.training and not bool(self.initialized):
                self._kmeans_init(flat)
            idx = nearest_code(flat, self.codes().detach())  # (B·H·W,)
            b, _, h, w = z.shape
            indices = idx.view(b, h, w)
            zq = self.lookup(indices)  # (B, D, H, W), a copy: later in-place updates leave it be
            commitment = F.mse_loss(z, zq.detach())
            codebook_loss = z.new_zeros(()) if self.ema else F.mse_loss(zq, z.detach())
            if self.rotation_trick:
                # the value is exactly zq; the gradient is that of λR·z (see rotate_to)
                e = z.permute(0, 2, 3, 1).reshape(-1, self.dim)
                rot = rotate_to(e, zq.detach().permute(0, 2, 3, 1).reshape(-1, self.dim))
                rot = rot.view(b, h, w, self.dim).permute(0, 3, 1, 2)
                quantized = zq.detach() + (rot - rot.detach())
            else:
                # Straight-through: the value is exactly zq (z − sg[z] is exactly 0), and
                # the gradient w.r.t. z is the decoder's gradient w.r.t. zq, unchanged.
                quantized = zq.detach() + (z - z.detach())
            perplexity, used = code_usage(idx, self.num_codes)
            if self.training:
                self._update(flat, idx)
        return QuantizerOutput(
            quantized=quantized,
            indices=indices,
            loss=codebook_loss + self.beta * commitment,
            codebook_loss=codebook_loss.detach(),
            commitment_loss=commitment.detach(),
            perplexity=perplexity,
            codes_used=used,
        )

    # ------------------------------------------------------------------ training-time care

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        centres, counts = kmeans(flat, self.num_codes, self.kmeans_iters)
        if self.cosine:
            centres = F.normalize(centres, dim=1)
        self.codebook.data.copy_(centres)
        self.usage.copy_(counts)  # a code no vector chose is dead from the start
        if self.ema:
            self.ema_count.copy_(counts)
            self.ema_sum.copy_(centres * counts[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """EMA codebook step and dead-code restarts, from this batch's assignments."""
        counts = torch.bincount(idx, minlength=self.num_codes).to(flat.dtype)  # (K,)
        mean = flat.shape[0] / self.num_codes  # vectors per code if all were used equally
        if self.usage.sum() == 0:  # no k-means init: every code starts at the mean
            self.usage.fill_(mean)
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        if self.ema:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)  # (K, D)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
            means = self.ema_sum / smoothed[:, None]
            self.codebook.data.copy_(F.normalize(means, dim=1) if self.cosine else means)
        if self.restart_threshold > 0:
            dead = (self.usage < self.restart_threshold * mean).nonzero().squeeze(1)
            if dead.numel():
                pick = torch.randint(flat.shape[0], (dead.numel(),))
                fresh = flat[pick]  # (n_dead, D): recent encoder outputs
                self.codebook.data[dead] = fresh
                self.usage[dead] = mean  # a few dozen batches to prove itself
                if self.ema:
                    self.ema_count[dead] = 1.0
                    self.ema_sum[dead] = fresh

    def extra_repr(self) -> str:
        return (
            f"num_codes={self.num_codes}, dim={self.dim}, beta={self.beta}, ema={self.ema}, "
            f"decay={self.decay}, restart_threshold={self.restart_threshold}, "
            f"cosine={self.cosine}, rotation_trick={self.rotation_trick}"
        )


class FiniteScalarQuantizer(nn.Module):
    """Finite scalar quantization (Mentzer et al., 2023): a grid instead of a codebook.

    An encoder vector of size ``dim`` (D) is projected to d = len(``levels``) numbers;
    number i is squashed into a range with ``levels[i]`` integer points and rounded to
    the nearest (straight-through), then scaled into [−1, 1]; the d rounded numbers,
    projected back to D, are the quantized vector. The K = ∏ levels grid points are the
    codes; index = the point's mixed-radix number. Nothing can collapse or die (every
    point stays reachable), there is no codebook or commitment loss, and no k-means
    or restarts are needed. ``levels=(4, 4, 4, 4)`` gives the lecture's K = 256.
    """

    def __init__(self, levels: tuple[int, ...] = (4, 4, 4, 4), dim: int = 64, eps: float = 1e-3):
        super().__init__()
        if len(levels) < 1 or any(int(n) < 2 for n in levels):
            raise ValueError(f"FSQ levels must each be at least 2, got {tuple(levels)}")
        self.levels = tuple(int(n) for n in levels)
        self.dim, self.eps = dim, eps
        self.num_codes = math.prod(self.levels)
        d = len(self.levels)
        self.project_in = nn.Linear(dim, d)
        self.project_out = nn.Linear(d, dim)
        lv = torch.tensor(self.levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor((1, *self.levels[:-1])), 0)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    # the grid: integers in [−⌊L/2⌋, ⌈L/2⌉ − 1] per dimension, scaled by ⌊L/2⌋ into [−1, 1]
    def _bound(self, u: torch.Tensor) -> torch.Tensor:
        half_l = (self._levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(u + shift) * half_l - offset

    def _scaled(self, u: torch.Tensor) -> torch.Tensor:
        """(N, d) projections → rounded grid values in [−1, 1], straight-through."""
        b = self._bound(u)
        rounded = b + (b.round() - b).detach()
        return rounded / (self._levels // 2)

    def _to_index(self, scaled: torch.Tensor) -> torch.Tensor:
        digits = (scaled.detach() * (self._levels // 2)).round() + self._levels // 2
        return (digits.long() * self._basis).sum(-1)

    def grid_of(self, indices: torch.Tensor) -> torch.Tensor:
        """(…) indices → (…, d) grid values in [−1, 1]."""
        digits = (indices.long()[..., None] // self._basis) % self._levels.long()
        return (digits - self._levels.long() // 2).float() / (self._levels // 2)

    def codes(self) -> torch.Tensor:
        """The (K, D) vectors the decoder sees for each code: the projected grid points."""
        return self.project_out(
            self.grid_of(torch.arange(self.num_codes, device=self._levels.device))
        )

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``indices`` (B, H, W) as a (B, D, H, W) map."""
        return self.project_out(self.grid_of(indices)).permute(0, 3, 1, 2)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Grid indices (B, H, W) of an encoder map ``z`` (B, D, H, W)."""
        with torch.autocast(z.device.type, enabled=False):
            u = self.project_in(z.detach().float().permute(0, 2, 3, 1))
            return self._to_index(self._scaled(u))

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(z.device.type, enabled=False):
            u = self.project_in(z.float().permute(0, 2, 3, 1))  # (B, H, W, d)
            scaled = self._scaled(u)
            indices = self._to_index(scaled)  # (B, H, W)
            quantized = self.project_out(scaled).permute(0, 3, 1, 2)  # (B, D, H, W)
        perplexity, used = code_usage(indices, self.num_codes)
        zero = z.new_zeros((), dtype=torch.float32)
        return QuantizerOutput(
            quantized=quantized,
            indices=indices,
            loss=zero,
            codebook_loss=zero,
            commitment_loss=zero,
            perplexity=perplexity,
            codes_used=used,
        )

    def extra_repr(self) -> str:
        return f"levels={self.levels}, dim={self.dim}, num_codes={self.num_codes}"
