"""A small DCGAN-style generative adversarial network for 28×28 images.

Two networks play a game (Goodfellow et al. 2014):

- the generator G maps a latent z ~ N(0, I) to an image: a linear map to 7×7,
  two stride-2 transposed convolutions (7 → 14 → 28) with batch norm and ReLU
  between them, and a sigmoid, so images are in [0, 1];
- the discriminator D maps an image (rescaled to [−1, 1]) to one score: two
  stride-2 convolutions (28 → 14 → 7) with leaky ReLU and a linear layer.

The objective, per batch of B real images x and B latents z (means over the batch)
-------------------------------------------------------------------------------
``hinge`` (the default; Lim & Ye 2017, Miyato et al. 2018)::

    L_D = mean relu(1 − D(x)) + mean relu(1 + D(G(z)))
    L_G = −mean D(G(z))

``nonsaturating`` (Goodfellow et al.'s practical variant; D(·) is a logit)::

    L_D = mean softplus(−D(x)) + mean softplus(D(G(z)))      (= BCE with labels 1 / 0)
    L_G = mean softplus(−D(G(z)))                          (= −log σ(D(G(z))))

Either is stabilised by spectral normalisation of every D layer
(``spectral_norm``, on by default: D is then ≈1-Lipschitz, one power iteration
per forward, almost free on a CPU) and/or the R1 penalty
(``r1_gamma`` > 0: L_D += γ/2 · mean ‖∇ₓ D(x)‖² on real images; a second
backward pass, so it costs a D step about twice).

Training: :meth:`GAN.training_phases` gives the trainer two phases, stepped in
order on every batch, each with its own Adam: D (G's images detached, so G's
weights get no gradient) then G (D's weights frozen while the graph is built, so
D gets no gradient). ``loss(batch)`` is what validation reports: L_D, with L_G and
the mean D scores as logs. A GAN's validation loss is not a quality measure (it
measures the balance of the two players); score samples with ``aegen eval``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import bounded
from ..data.loader import Batch
from ..registry import register
from .abilities import TrainingPhase
from .base import Logs

__all__ = ["GAN", "GANConfig", "Discriminator", "Generator"]


@dataclass
class GANConfig:
    """G: latent → 7×7 → 14×14 → 28×28; D mirrors it. Both share the widths ``channels``."""

    latent_dim: int = bounded(64, ge=1)
    channels: tuple[int, ...] = bounded((32, 64), ge=1, length=2)  # width at 14×14 and at 7×7
    objective: Literal["hinge", "nonsaturating"] = "hinge"
    spectral_norm: bool = True  # on every layer of D
    r1_gamma: float = bounded(0.0, ge=0)  # weight γ of the R1 penalty on real images (0: off)
    beta1: float = bounded(0.5, ge=0, lt=1)  # Adam's β₁ of both players (DCGAN's 0.5)
    beta2: float = bounded(0.999, ge=0, lt=1)
    d_lr_scale: float = bounded(1.0, gt=0)  # D's learning rate is train.lr × this (TTUR)


class Generator(nn.Module):
    """z (B, latent_dim) → logits (B, 1, 28, 28)."""

    def __init__(self, config: GANConfig):
        super().__init__()
        c1, c2 = config.channels
        self.c2 = c2
        self.fc = nn.Linear(config.latent_dim, c2 * 49)
        self.up = nn.Sequential(
            nn.BatchNorm2d(c2), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),  # (B, c1, 14, 14)
            nn.BatchNorm2d(c1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.fc(z).view(-1, self.c2, 7, 7))


class Discriminator(nn.Module):
    """Images (B, 1, 28, 28) in [0, 1] → scores (B,) (a logit for the non-saturating loss)."""

    def __init__(self, config: GANConfig):
        super().__init__()
        c1, c2 = config.channels
        sn = spectral_norm if config.spectral_norm else (lambda m: m)
        self.net = nn.Sequential(
            sn(nn.Conv2d(1, c1, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # (B, c1, 14, 14)
            sn(nn.Conv2d(c1, c2, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # (B, c2, 7, 7)
            nn.Flatten(),
            sn(nn.Linear(c2 * 49, 1)),  # (B, 1)
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1).squeeze(1)  # [0, 1] → [−1, 1], as G's data is centred


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter of ``module`` requires grad while the block builds its graph."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@register("gan", GANConfig)
class GAN(nn.Module):
    """Generator + discriminator, trained by the one Trainer through two phases (D, then G)."""

    family: ClassVar[str] = "gan"
    registry_name: ClassVar[str]
    config_cls: ClassVar[type]
    # DCGAN's learning rate; a constant schedule, as GANs are usually trained
    train_defaults: ClassVar[dict] = {
        "epochs": 5,
        "batch_size": 64,
        "lr": 2e-4,
        "schedule": "constant",
    }

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    # ------------------------------------------------------------ sampling

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's output before its sigmoid: (B, 1, 28, 28)."""
        return self.generator(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latents z (B, latent_dim)."""
        return torch.sigmoid(self.generator(z).float())

    def latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents z ~ N(0, I): drawn where ``generator`` lives, then moved to the model."""
        device = next(self.parameters()).device
        gen_device = generator.device if generator is not None else device
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=gen_device)
        return z.to(device)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1] from z ~ N(0, temperature²·I) (below 1: the
        'truncation trick', less variety, more typical images)."""
        return self.decode(temperature * self.latents(n, generator)).clamp(0, 1)

    # ------------------------------------------------------------ the objective

    def d_loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """L_D on real images ``batch.x`` and as many generated ones (plus R1 when γ > 0)."""
        x = batch.x
        with torch.no_grad():  # G gets no gradient from D's step
            fake = torch.sigmoid(self.generator(self.latents(x.shape[0])))
        r1 = self.config.r1_gamma > 0 and torch.is_grad_enabled()
        if r1:
            x = x.detach().requires_grad_(True)
        real_score, fake_score = self.discriminator(x).float(), self.discriminator(fake).float()
        if self.config.objective == "hinge":
            loss = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
        else:
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        logs: Logs = {"d_real": real_score.mean().detach(), "d_fake": fake_score.mean().detach()}
        if r1:
            (grad,) = torch.autograd.grad(real_score.sum(), x, create_graph=True)
            penalty = grad.float().pow(2).flatten(1).sum(1).mean()  # mean ‖∇ₓ D(x)‖²
            loss = loss + 0.5 * self.config.r1_gamma * penalty
            logs["r1"] = penalty.detach()
        return loss, logs

    def g_loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """L_G on as many generated images as ``batch`` has real ones."""
        with frozen(self.discriminator):  # D gets no gradient from G's step
            score = self.discriminator(self.decode(self.latents(batch.x.shape[0]))).float()
        if self.config.objective == "hinge":
            loss = -score.mean()
        else:
            loss = F.softplus(-score).mean()
        return loss, {}

    def training_phases(self) -> list[TrainingPhase]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return [
            TrainingPhase(
                "d", list(self.discriminator.parameters()), self.d_loss, betas, c.d_lr_scale
            ),
            TrainingPhase("g", list(self.generator.parameters()), self.g_loss, betas),
        ]

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """Validation: L_D as the loss, L_G and the mean D scores as logs."""
        d, logs = self.d_loss(batch)
        g, _ = self.g_loss(batch)
        return d, {"d_loss": d.detach(), "g_loss": g.detach(), **logs}
