"""A normalizing flow (Glow-style, multi-scale): an exact likelihood and exact sampling.

A flow is one invertible map f from an image to a standard-normal vector of the
same size; its density follows from the change of variables,

    log p(y) = log N(f(y); 0, I) + log |det ∂f/∂y|,

so training maximises the likelihood itself, not a bound on it, and a sample is
f⁻¹(ε) with ε ~ N(0, I). What makes it affordable is that every piece of f has a
log-determinant that costs no more than the piece itself.

The pieces, in order (shapes for one 28×28 grey image):

- **dequantization**: the 8-bit image x ∈ {0..255} becomes y = (x + u)/256 with
  u ~ U[0, 1)⁷⁸⁴, so a density over [0, 1]⁷⁸⁴ can be fitted to discrete data;
- **logit pre-transform**: z = logit(α + (1 − 2α)·y), which maps the unit cube to
  ℝ⁷⁸⁴ (α keeps the ends finite); its log-determinant is counted;
- **scale 1**: squeeze (1, 28, 28) → (4, 14, 14), then ``steps`` flow steps, each
  actnorm → invertible 1×1 convolution → affine coupling (Kingma & Dhariwal 2018);
  then half the channels, (2, 14, 14), are factored out: they leave the flow as
  ε₁ = (z₁ − μ(h))/σ(h), a Gaussian whose mean and scale a zero-initialised
  convolution predicts from the kept half h (Glow's learned split prior);
- **scale 2**: squeeze the kept (2, 14, 14) → (8, 7, 7), ``steps`` more flow steps;
  the result is the last part of ε. 7×7 is odd, so there is no third scale.

ε is the concatenation (B, 784) of the factored-out parts and the last one; the
whole map y → ε is one bijection (:meth:`Flow.forward`, :meth:`Flow.inverse`),
so the brute-force Jacobian of ``forward`` checks every log-determinant at once.

Units
-----
:meth:`Flow.log_likelihood` is log P(x) in nats of the *discrete* image, the
uniform-dequantization lower bound (Theis et al. 2016)::

    log P(x) ≥ E_u[log p(y)] − 784·log 256,   y = (x + u)/256

(with k noise draws, log mean_k p(y_k) − 784·log 256, a tighter bound, as an
importance-weighted bound with a uniform proposal). Bits/dim is −log₂ P(x)/784:
8 for the uniform model over 256 levels; smaller is better. It is the same unit
as the VAE's IWAE bound and a prior's bits/code, but not the same quantity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..data.loader import Batch
from ..registry import register
from .base import Logs

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "Flow",
    "FlowConfig",
    "FlowStep",
    "InvConv1x1",
    "SplitPrior",
    "dequantize",
    "soft_clamp",
    "squeeze",
    "unsqueeze",
]

IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 784
LEVELS = 256  # 8-bit grey values
COUPLING_LOG_SCALE = 2.0  # |log s| of one coupling stays below this (soft, via tanh)
PRIOR_LOG_SCALE = 4.0  # |log σ| of a split prior stays below this


# --------------------------------------------------------------------------- pieces


def soft_clamp(v: torch.Tensor, bound: float) -> torch.Tensor:
    """bound·tanh(v/bound): ≈ v near 0, never beyond ±bound (keeps exp(v) finite)."""
    return bound * torch.tanh(v / bound)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, 4C, H/2, W/2): each 2×2 patch becomes 4 channels (volume preserving)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`squeeze`: (B, 4C, H, W) → (B, C, 2H, 2W)."""
    b, c4, h, w = x.shape
    x = x.view(b, c4 // 4, 2, 2, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images in [0, 1] (k/255) → y = (k + u)/256 in [0, 1), u ~ U[0, 1) per pixel.

    Pixels that are not exact multiples of 1/255 are rounded to the nearest level first.
    """
    levels = (x * (LEVELS - 1)).round().clamp(0, LEVELS - 1)
    if generator is None:
        u = torch.rand_like(levels)
    else:  # drawn where the generator lives, so a seed means the same on CPU and GPU
        u = torch.rand(levels.shape, generator=generator, device=generator.device)
        u = u.to(device=levels.device, dtype=levels.dtype)
    return (levels + u) / LEVELS


class ActNorm(nn.Module):
    """y = (x + b)·exp(log s) per channel; initialised from the first training batch so its
    output has zero mean and unit variance per channel (Glow's data-dependent init).

    Whether that has happened is a buffer, saved with the weights, so a resumed run
    does not initialise twice. Under DDP the batch statistics are averaged over ranks.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        moments = torch.stack([x.mean((0, 2, 3)), (x * x).mean((0, 2, 3))])  # (2, C)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(moments)
            moments /= dist.get_world_size()
        mean, sq = moments
        std = (sq - mean * mean).clamp(min=0).sqrt()
        self.bias.copy_(-mean.view_as(self.bias))
        self.log_scale.copy_(-torch.log(std + 1e-6).view_as(self.log_scale))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(x)
        h, w = x.shape[2:]
        logdet = (h * w * self.log_scale.sum()).expand(x.shape[0])  # (B,)
        return (x + self.bias) * self.log_scale.exp(), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvConv1x1(nn.Module):
    """An invertible 1×1 convolution (a learned channel mixing), LU-parametrised.

    W = P·L·(U + diag(sign·exp(log s))) with P a fixed permutation, L unit lower
    and U strictly upper triangular: log|det W| = Σ log s, exactly and cheaply,
    and W stays invertible whatever the optimiser does. Starts as a random rotation.
    """

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> torch.Tensor:
        """W, (C, C)."""
        eye = torch.eye(self.log_s.shape[0], dtype=self.log_s.dtype, device=self.log_s.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        h, wd = x.shape[2:]
        logdet = (h * wd * self.log_s.sum()).expand(x.shape[0])  # (B,)
        return F.conv2d(x, w[:, :, None, None]), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


def _zero_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """A 3×3 convolution that starts at zero, so the layer it feeds starts as the identity."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class AffineCoupling(nn.Module):
    """Split the channels in halves (a, b); b ← b·exp(log s(a)) + t(a), a passes unchanged.

    The Jacobian is triangular, log|det| = Σ log s. s and t come from a small
    conv net (3×3 → 1×1 → zero-initialised 3×3, Glow's), log s soft-clamped to
    ±2 so one step cannot blow a value up. Starts as the identity.
    """

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.c_a = channels // 2
        c_b = channels - self.c_a
        self.net = nn.Sequential(
            nn.Conv2d(self.c_a, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 1), nn.ReLU(),
            _zero_conv(width, 2 * c_b),
        )  # fmt: skip

    def _scale_shift(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, t = self.net(a).chunk(2, dim=1)  # (B, c_b, H, W) each
        return soft_clamp(raw, COUPLING_LOG_SCALE), t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[:, : self.c_a], x[:, self.c_a :]
        log_s, t = self._scale_shift(a)
        return torch.cat([a, b * log_s.exp() + t], 1), log_s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        a, b = y[:, : self.c_a], y[:, self.c_a :]
        log_s, t = self._scale_shift(a)
        return torch.cat([a, (b - t) * torch.exp(-log_s)], 1)


class FlowStep(nn.Module):
    """One step of flow: actnorm → invertible 1×1 convolution → affine coupling."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [ActNorm(channels), InvConv1x1(channels), AffineCoupling(channels, width)]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


class SplitPrior(nn.Module):
    """Factors out half the channels: z₁ given the kept half h is N(μ(h), σ(h)²).

    Forward returns ε₁ = (z₁ − μ)/σ, standard normal under the model, with
    log|det| = −Σ log σ; inverse rebuilds z₁ = μ + σ·ε₁. Zero-initialised: N(0, I).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.c_keep = channels // 2
        self.net = _zero_conv(self.c_keep, 2 * (channels - self.c_keep))

    def _params(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.net(h).chunk(2, dim=1)
        return mu, soft_clamp(raw, PRIOR_LOG_SCALE)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) → kept h (B, C/2, H, W), ε₁ (B, C/2, H, W), log|det| (B,)."""
        h, z1 = x[:, : self.c_keep], x[:, self.c_keep :]
        mu, log_sigma = self._params(h)
        return h, (z1 - mu) * torch.exp(-log_sigma), -log_sigma.flatten(1).sum(1)

    def inverse(self, h: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self._params(h)
        return torch.cat([h, mu + log_sigma.exp() * eps], 1)


# --------------------------------------------------------------------------- config


@dataclass
class FlowConfig:
    """A Glow-style multi-scale flow for 28×28 grey images (see the module docstring)."""

    n_scales: int = bounded(
        2, ge=1, le=2, note=" (28×28 squeezes to 14×14, then 7×7, which cannot be halved)"
    )
    steps: int = bounded(4, ge=1)  # flow steps (actnorm, 1×1 conv, coupling) per scale
    channels: tuple[int, ...] = bounded((64, 64), ge=1, min_length=1)  # coupling width per scale
    alpha: float = bounded(0.05, gt=0, lt=0.5)  # the logit pre-transform's margin

    def validate(self) -> None:
        check(
            len(self.channels) == self.n_scales,
            f"model.channels needs one width per scale: model.n_scales={self.n_scales}, "
            f"got {len(self.channels)} widths {self.channels}",
        )


# --------------------------------------------------------------------------- the model


@register("flow", FlowConfig)
class Flow(nn.Module):
    """The multi-scale flow: ``forward(y) -> (ε, log|det|)``, ``inverse(ε) -> y``, its
    loss in bits/dim, exact samples and the dequantized log-likelihood.

    Not an autoencoder: it has no code smaller than the image and does not
    reconstruct (its inverse is exact), so it offers no ``encode``/``reconstruct``.
    """

    family: ClassVar[str] = "flow"
    registry_name: ClassVar[str]
    config_cls: ClassVar[type]
    # fp32 (the loss turns autocast off anyway: 784 log-determinant terms and exp/log in a
    # chain of invertible maps do not survive bf16); 20 epochs of Fashion-MNIST
    train_defaults: ClassVar[dict] = {"epochs": 20, "batch_size": 64, "grad_clip": 50.0}

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList()
        self.priors = nn.ModuleList()
        # the shapes of ε's parts, in the order forward emits them
        self.eps_shapes: list[tuple[int, int, int]] = []
        c, size = IMAGE_SHAPE[0], IMAGE_SHAPE[1]
        for i in range(config.n_scales):
            c, size = 4 * c, size // 2  # squeeze
            self.scales.append(
                nn.ModuleList(FlowStep(c, config.channels[i]) for _ in range(config.steps))
            )
            if i < config.n_scales - 1:
                self.priors.append(SplitPrior(c))
                self.eps_shapes.append((c - c // 2, size, size))
                c = c // 2
        self.eps_shapes.append((c, size, size))

    # ------------------------------------------------------------ the bijection

    def _logit(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y ∈ [0, 1] → logit(α + (1 − 2α)y), and its log|det| (B,)."""
        a = self.config.alpha
        s = a + (1 - 2 * a) * y
        log_s, log_1ms = torch.log(s), torch.log1p(-s)
        logdet = (math.log(1 - 2 * a) - log_s - log_1ms).flatten(1).sum(1)
        return log_s - log_1ms, logdet

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, 1, 28, 28) in [0, 1] → ε (B, 784) and log|det ∂ε/∂y| (B,) in nats."""
        h, logdet = self._logit(y)
        parts = []
        for i, steps in enumerate(self.scales):
            h = squeeze(h)  # (B, 4C, H/2, W/2)
            for step in steps:
                h, ld = step(h)
                logdet = logdet + ld
            if i < len(self.priors):
                h, eps, ld = self.priors[i](h)  # keep half, factor out half
                parts.append(eps.flatten(1))
                logdet = logdet + ld
        parts.append(h.flatten(1))
        return torch.cat(parts, 1), logdet

    def inverse(self, eps: torch.Tensor) -> torch.Tensor:
        """ε (B, 784) → y (B, 1, 28, 28), the exact inverse of :meth:`forward`
        (values in [0, 1] for ε from the model's range; not clamped here)."""
        sizes = [c * h * w for c, h, w in self.eps_shapes]
        parts = list(eps.split(sizes, dim=1))
        h = parts[-1].view(-1, *self.eps_shapes[-1])
        for i in reversed(range(len(self.scales))):
            if i < len(self.priors):
                h = self.priors[i].inverse(h, parts[i].view(-1, *self.eps_shapes[i]))
            for step in reversed(self.scales[i]):
                h = step.inverse(h)
            h = unsqueeze(h)
        a = self.config.alpha
        return (torch.sigmoid(h) - a) / (1 - 2 * a)

    # ------------------------------------------------------------ likelihood

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) log p(y) in nats, the model's density over [0, 1]⁷⁸⁴."""
        eps, logdet = self(y)
        log_normal = -0.5 * (eps * eps).sum(1) - 0.5 * eps.shape[1] * math.log(2 * math.pi)
        return log_normal + logdet

    @torch.no_grad()
    def log_likelihood(
        self, x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B,) lower bound on log P(x) in nats of the 8-bit images ``x`` (values k/255).

        log mean over k dequantization draws of p(y) / 256⁷⁸⁴; k = 1 is the plain
        variational bound, larger k tightens it (importance sampling with a uniform
        proposal). Divide by 784·ln 2 and negate for bits/dim.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        x = x.float()
        logs = torch.stack([self.log_density(dequantize(x, generator)) for _ in range(k)])
        return torch.logsumexp(logs, 0) - math.log(k) - x[0].numel() * math.log(LEVELS)

    # ------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1]: f⁻¹(ε), ε ~ N(0, temperature²·I), quantized to
        the 256 grey levels the model is a distribution over (values k/255)."""
        device = next(self.parameters()).device
        gen_device = generator.device if generator is not None else device
        eps = torch.randn((n, NUM_PIXELS), generator=generator, device=gen_device).to(device)
        y = self.inverse(temperature * eps)  # (n, 1, 28, 28)
        levels = torch.floor(y * LEVELS).clamp(0, LEVELS - 1)
        return levels / (LEVELS - 1)

    # ------------------------------------------------------------ the objective

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """Mean negative log-likelihood in bits/dim of the batch, one dequantization draw."""
        x = batch.x
        with torch.autocast(x.device.type, enabled=False):
            y = dequantize(x.float())  # the trainer's seeded RNG: resumes exactly
            log_px = self.log_density(y) - NUM_PIXELS * math.log(LEVELS)  # (B,) nats
        bits_per_dim = -log_px / (NUM_PIXELS * math.log(2))
        loss = bits_per_dim.mean()
        logs: Logs = {"bits_per_dim": loss.detach(), "nll": -log_px.mean().detach()}
        return loss, logs
