"""A class-conditional diffusion model: a small U-Net, classifier-free guidance, a DDIM sampler.

The path
--------
Images x in [0, 1] are scaled to x0 = 2x − 1 in [−1, 1]. At time t ∈ [0, 1] the
forward (noising) process is the closed form

    x_t = α_t·x0 + σ_t·ε,   ε ~ N(0, I),   so   E[x_t] = α_t·x0,  Var[x_t] = σ_t²

with (α_t, σ_t) from ``schedule``:

- ``cosine``: α = cos(πt/2), σ = sin(πt/2) (variance preserving, ᾱ = α² = cos²(πt/2));
- ``linear``: the continuous DDPM schedule, β(t) = β_min + t·(β_max − β_min) with
  β_min = 0.1, β_max = 20 (DDPM's 1e-4 … 0.02 over 1000 steps), ᾱ_t = exp(−∫₀ᵗ β),
  α = √ᾱ, σ = √(1 − ᾱ);
- ``straight``: α = 1 − t, σ = t (the rectified-flow path).

The objective
-------------
The U-Net sees (x_t, t, label) and predicts one of

- ``eps``: the noise ε;
- ``v``: v = α·ε − σ·x0 (Salimans & Ho 2022);
- ``flow``: the path's velocity dx_t/dt = α̇·x0 + σ̇·ε; on the straight path that is
  ε − x0, the flow-matching (rectified-flow) objective.

The loss is the mean squared error between prediction and target, averaged over
pixels and batch; t ~ U(0, 1) per image. Any prediction converts back to a pair
(x̂0, ε̂) with x_t = α·x̂0 + σ·ε̂ (:func:`to_x0_eps`), which is all the sampler needs.

Labels and guidance
-------------------
With ``num_classes`` > 0 the label is embedded and added to the time embedding;
class ``num_classes`` is the null class ("no label"). In training each label is
replaced by the null class with probability ``p_uncond``, so one network is both
the conditional and the unconditional model. Sampling with guidance weight W uses

    pred = pred_uncond + W·(pred_cond − pred_uncond)

so W = 0 is the unconditional model, W = 1 the conditional one, W > 1 extrapolates
(classifier-free guidance, Ho & Salimans 2022).

The sampler
-----------
DDIM with η = 0 (Song et al. 2021): deterministic, from x = ε at t = 1 (the cosine
and straight paths start from t = 1 − 10⁻³, where α > 0) down to t = 0 on an evenly
spaced grid of ``steps`` steps,

    x_s = α_s·x̂0 + σ_s·ε̂   with (x̂0, ε̂) predicted at (x_t, t),

x̂0 clipped to [−1, 1] (and ε̂ recomputed from it). On the straight path this
update is exactly Euler's method on the flow ODE dx/dt = v̂, so one sampler serves
every objective. The last step lands on t = 0 where α = 1, σ = 0: the image is x̂0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..data.loader import Batch
from ..errors import UserError
from ..registry import register
from .base import Logs

__all__ = [
    "Diffusion",
    "DiffusionConfig",
    "Schedule",
    "UNet",
    "ddim",
    "to_x0_eps",
    "target_for",
]

Objective = Literal["eps", "v", "flow"]
ScheduleName = Literal["cosine", "linear", "straight"]
BETA_MIN, BETA_MAX = 0.1, 20.0  # the linear schedule's β(t) at t = 0 and t = 1
T_LAST = 1.0 - 1e-3  # where sampling starts on paths whose α reaches 0 at t = 1
SIGMA_FLOOR = 1e-6  # keeps 1/σ finite at t = 0


# --------------------------------------------------------------------------- the path


class Schedule:
    """(α_t, σ_t) and their time derivatives for one of the paths of the module docstring.

    Every method takes t as a tensor of any shape and returns tensors of that shape.
    """

    def __init__(self, name: str):
        if name not in ("cosine", "linear", "straight"):
            raise ValueError(f"unknown schedule {name!r}")
        self.name = name

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.name == "cosine":
            return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)
        if self.name == "straight":
            return 1.0 - t, t
        log_abar = -(BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t)  # log ᾱ_t
        return torch.exp(0.5 * log_abar), torch.sqrt(-torch.expm1(log_abar))

    def derivatives(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dα/dt, dσ/dt)."""
        alpha, sigma = self.alpha_sigma(t)
        if self.name == "cosine":
            return -0.5 * math.pi * sigma, 0.5 * math.pi * alpha
        if self.name == "straight":
            return -torch.ones_like(t), torch.ones_like(t)
        beta = BETA_MIN + t * (BETA_MAX - BETA_MIN)
        return -0.5 * beta * alpha, 0.5 * beta * alpha * alpha / sigma.clamp(min=SIGMA_FLOOR)

    @property
    def t_start(self) -> float:
        """Where sampling starts: 1, or just below it where α_1 = 0 (ε-predictions need α > 0)."""
        return 1.0 if self.name == "linear" else T_LAST


def target_for(
    objective: str, schedule: Schedule, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """What the network is trained to predict at (x0, ε, t); t broadcasts against x0."""
    if objective == "eps":
        return eps
    alpha, sigma = schedule.alpha_sigma(t)
    if objective == "v":
        return alpha * eps - sigma * x0
    d_alpha, d_sigma = schedule.derivatives(t)
    return d_alpha * x0 + d_sigma * eps


def to_x0_eps(
    objective: str, schedule: Schedule, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂0, ε̂) from a prediction at x_t: the inverse of :func:`target_for` given x_t = α x0 + σ ε."""
    alpha, sigma = schedule.alpha_sigma(t)
    if objective == "eps":
        return (x_t - sigma * pred) / alpha, pred
    if objective == "v":
        norm = alpha * alpha + sigma * sigma  # 1 on variance-preserving paths
        return (alpha * x_t - sigma * pred) / norm, (sigma * x_t + alpha * pred) / norm
    d_alpha, d_sigma = schedule.derivatives(t)
    det = alpha * d_sigma - sigma * d_alpha  # of [[α, σ], [α̇, σ̇]]: positive on every path
    return (d_sigma * x_t - sigma * pred) / det, (alpha * pred - d_alpha * x_t) / det


@torch.no_grad()
def ddim(denoise, x: torch.Tensor, schedule: Schedule, steps: int) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from noise ``x`` (B, …) at t = ``schedule.t_start`` to t = 0.

    ``denoise(x_t, t)`` with t of shape (B,) returns (x̂0, ε̂), each shaped like x.
    x̂0 is clipped to [−1, 1] and ε̂ recomputed from it, so the last step returns an
    image in [−1, 1].
    """
    times = torch.linspace(schedule.t_start, 0.0, steps + 1, dtype=torch.float64).tolist()
    view = (-1,) + (1,) * (x.ndim - 1)
    for t_now, t_next in zip(times[:-1], times[1:], strict=True):
        t = torch.full((x.shape[0],), t_now, device=x.device, dtype=x.dtype)
        x0, eps = denoise(x, t)
        x0_clipped = x0.clamp(-1.0, 1.0)
        a_t, s_t = (v.view(view) for v in schedule.alpha_sigma(t))
        # where x̂0 was clipped, the noise that goes with it (x_t stays α x̂0 + σ ε̂)
        eps = torch.where(x0_clipped == x0, eps, (x - a_t * x0_clipped) / s_t)
        a_s, s_s = schedule.alpha_sigma(torch.tensor(t_next, dtype=x.dtype))
        x = a_s * x0_clipped + s_s * eps  # (B, …)
    return x


# --------------------------------------------------------------------------- config


@dataclass
class DiffusionConfig:
    """The U-Net's size, the path and objective, the labels, and the sampler's defaults."""

    # convolution widths at 28×28, 14×14 and 7×7
    channels: tuple[int, ...] = bounded((32, 64, 64), ge=1, length=3)
    res_blocks: int = bounded(1, ge=1)  # residual blocks per resolution, on each side
    attention: bool = True  # one self-attention block at 7×7
    embed_dim: int = bounded(128, ge=1)  # width of the time (and label) embedding
    num_classes: int = bounded(10, ge=0)  # 0: unconditional (no labels, no guidance)
    p_uncond: float = bounded(0.1, ge=0, lt=1)  # training labels dropped to the null class
    objective: Objective = "v"
    schedule: ScheduleName = "cosine"
    sample_steps: int = bounded(25, ge=1)  # DDIM steps when the caller gives none
    guidance: float = bounded(1.0, ge=0)  # W when the caller gives none (1: conditional)

    def validate(self) -> None:
        check(
            self.num_classes > 0 or self.guidance == 1.0,
            "model.guidance needs labels: an unconditional model (model.num_classes=0) "
            "samples with guidance 1",
        )


# --------------------------------------------------------------------------- the U-Net


def _groups(channels: int) -> int:
    """GroupNorm groups: the largest of 8, 4, 2, 1 that divides ``channels``."""
    return math.gcd(channels, 8)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of 1000·t: (B,) → (B, dim), frequencies 1 … 1/10000 (Transformer style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / max(1, half))
    angles = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    return F.pad(emb, (0, dim - 2 * half))  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv3×3 → GroupNorm scaled and shifted by the embedding → SiLU →
    conv3×3, plus a skip.

    The embedding scales and shifts *after* the normalisation (as in improved DDPM):
    a shift added before a GroupNorm would be normalised away.
    """

    def __init__(self, c_in: int, c_out: int, embed_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(embed_dim, 2 * c_out)  # (scale, shift) per channel
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (its skip)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, c_out, 1, 1) each
        h = self.conv2(F.silu(self.norm2(h) * (1.0 + scale) + shift))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """One-head self-attention over the H·W positions, residual (used at 7×7: 49 tokens)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=-1)  # (B, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """28 → 14 → 7 and back, with skip connections: (x_t, t, label) → a (B, 1, 28, 28) prediction.

    ``y`` holds class indices in 0 … num_classes, num_classes being the null class;
    it is ignored when the model is unconditional.
    """

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        c1, c2, c3 = cfg.channels
        e, n = cfg.embed_dim, cfg.res_blocks
        self.embed_dim = e
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.label = nn.Embedding(cfg.num_classes + 1, e) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(1, c1, 3, padding=1)
        self.enc1 = nn.ModuleList(ResBlock(c1, c1, e) for _ in range(n))
        self.down1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # 28 → 14
        self.enc2 = nn.ModuleList(ResBlock(c1 if i == 0 else c2, c2, e) for i in range(n))
        self.down2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)  # 14 → 7
        self.mid1 = ResBlock(c2, c3, e)
        self.attn = SelfAttention(c3) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(c3, c3, e)
        self.up2 = nn.Conv2d(c3, c2, 3, padding=1)  # after 7 → 14 nearest upsampling
        self.dec2 = nn.ModuleList(ResBlock(2 * c2 if i == 0 else c2, c2, e) for i in range(n))
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)  # after 14 → 28
        self.dec1 = nn.ModuleList(ResBlock(2 * c1 if i == 0 else c1, c1, e) for i in range(n))
        self.norm_out = nn.GroupNorm(_groups(c1), c1)
        self.conv_out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # starts predicting 0
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(time_embedding(t, self.embed_dim))  # (B, E)
        if self.label is not None:
            emb = emb + self.label(y)
        h = self.conv_in(x)  # (B, c1, 28, 28)
        for block in self.enc1:
            h = block(h, emb)
        skip1 = h
        h = self.down1(h)  # (B, c1, 14, 14)
        for block in self.enc2:
            h = block(h, emb)
        skip2 = h  # (B, c2, 14, 14)
        h = self.down2(h)  # (B, c2, 7, 7)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)  # (B, c3, 7, 7)
        h = self.up2(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, c2, 14, 14)
        h = torch.cat([h, skip2], dim=1)
        for block in self.dec2:
            h = block(h, emb)
        h = self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, c1, 28, 28)
        h = torch.cat([h, skip1], dim=1)
        for block in self.dec1:
            h = block(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 1, 28, 28)


# --------------------------------------------------------------------------- the model


@register("diffusion", DiffusionConfig)
class Diffusion(nn.Module):
    """The diffusion model of the module docstring: ``loss(batch)`` to train, ``sample`` to draw.

    It neither encodes nor reconstructs: it is a generator only (no ``reconstruct``).
    """

    family: ClassVar[str] = "diffusion"
    registry_name: ClassVar[str]
    config_cls: ClassVar[type]
    train_defaults: ClassVar[dict] = {
        "epochs": 5,
        "batch_size": 128,
        "lr": 2e-3,
        "warmup_steps": 100,
    }

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.path = Schedule(config.schedule)
        self.unet = UNet(config)

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    # ------------------------------------------------------------ the forward process

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = α_t·x0 + σ_t·ε for x0 (B, 1, 28, 28) in [−1, 1] and t (B,)."""
        alpha, sigma = (v.view(-1, 1, 1, 1) for v in self.path.alpha_sigma(t))
        return alpha * x0 + sigma * eps

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The network's raw prediction (ε, v or the velocity, per ``objective``)."""
        return self.unet(x_t, t, y)

    # ------------------------------------------------------------ the objective

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """Mean squared error of the prediction, over pixels and batch, at t ~ U(0, 1).

        Training draws t, ε and the label drop from the global RNG (the trainer saves
        and restores it, so a resumed run draws the same); validation draws them from
        a fixed seed, so its loss compares across epochs.
        """
        c = self.config
        x0 = batch.x.float() * 2.0 - 1.0  # (B, 1, 28, 28) in [−1, 1]
        b, device = x0.shape[0], x0.device
        g = None if self.training else torch.Generator(device).manual_seed(0)
        t = torch.rand(b, generator=g, device=device)
        eps = torch.randn(x0.shape, generator=g, device=device)
        y = None
        if self.conditional:
            y = batch.y.long()
            if b and int(y.max()) >= c.num_classes:
                raise UserError(
                    f"label {int(y.max())} in the data, but model.num_classes={c.num_classes}; "
                    "set model.num_classes to the number of classes (0: unconditional)"
                )
            if self.training and c.p_uncond > 0:
                drop = torch.rand(b, device=device) < c.p_uncond
                y = torch.where(drop, torch.full_like(y, self.null_class), y)
        pred = self.predict(self.add_noise(x0, t, eps), t, y).float()
        target = target_for(c.objective, self.path, x0, eps, t.view(-1, 1, 1, 1))
        loss = F.mse_loss(pred, target)
        return loss, {}

    # ------------------------------------------------------------ sampling

    def sample_labels(
        self, n: int, labels: int | torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        """(n,) class indices: ``labels`` checked and broadcast, or uniform draws when None."""
        if not self.conditional:
            if labels is not None:
                raise UserError(
                    "this diffusion model was trained without labels; leave out the label"
                )
            return None
        k = self.config.num_classes
        if labels is None:
            gen_device = generator.device if generator is not None else "cpu"
            return torch.randint(k, (n,), generator=generator, device=gen_device)
        y = torch.as_tensor(labels, dtype=torch.long).expand(n).clone()
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise UserError(f"label must be a class of this model (0..{k - 1}), got {int(y.max())}")
        return y

    def guided(
        self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float
    ) -> torch.Tensor:
        """pred_uncond + W·(pred_cond − pred_uncond); W = 1 is one conditional pass."""
        if y is None or guidance == 1.0:
            return self.predict(x_t, t, y)
        null = torch.full_like(y, self.null_class)
        both = self.predict(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        labels: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1] by DDIM (η = 0) in ``steps`` steps.

        ``guidance`` W (default: the config's) and ``labels`` (a class, (n,) classes, or
        None: uniform draws from ``generator``) apply to class-conditional models. The
        generator draws the labels, then the starting noise; nothing else is random.
        """
        c = self.config
        steps = c.sample_steps if steps is None else steps
        guidance = c.guidance if guidance is None else guidance
        if steps < 1:
            raise UserError(f"steps must be at least 1, got {steps}")
        if not (guidance >= 0 and math.isfinite(guidance)):
            raise UserError(f"guidance must be a finite number >= 0, got {guidance}")
        if not self.conditional and guidance != 1.0:
            raise UserError("this diffusion model was trained without labels; guidance needs them")
        if self.conditional and guidance != 1.0 and c.p_uncond == 0:
            raise UserError(
                "this diffusion model never saw the null class (model.p_uncond=0); "
                "guidance other than 1 needs its unconditional prediction"
            )
        device = next(self.parameters()).device
        y = self.sample_labels(n, labels, generator)
        gen_device = generator.device if generator is not None else device
        x = torch.randn((n, 1, 28, 28), generator=generator, device=gen_device).to(device)
        y = y.to(device) if y is not None else None
        was = self.training
        self.eval()

        def denoise(x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pred = self.guided(x_t, t, y, guidance).float()
            tb = t.view(-1, 1, 1, 1)
            return to_x0_eps(c.objective, self.path, pred, x_t, tb)

        x0 = ddim(denoise, x, self.path, steps)
        self.train(was)
        return ((x0 + 1.0) * 0.5).clamp(0.0, 1.0)
