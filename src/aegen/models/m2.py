"""The semi-supervised VAE of Kingma et al. 2014 ("M2"): a class y and a style z.

Generative model p(y) p(z) p(x|y,z): y is categorical (uniform over the classes),
z ~ N(0, I) is the style, and the decoder gives Bernoulli logits for x, as the
project's VAEs. Inference: a classifier q(y|x) and a Gaussian encoder q(z|x,y).

For a labeled image (x, y), in nats::

    ELBO(x, y) = E_q(z|x,y)[log p(x|y,z)] + log p(y) − KL(q(z|x,y) ‖ N(0, I))

(one reparameterised z, the KL in closed form with :func:`aegen.prob.kl_vae`). For an
unlabeled image y is summed out under q(y|x)::

    ELBO(x) = Σ_y q(y|x) ELBO(x, y) + H(q(y|x))

and the loss of a batch whose labels are −1 where unknown is::

    mean_labeled [−ELBO(x, y) + α · CE(q(y|x), y)] + λ · mean_unlabeled [−ELBO(x)]

(λ = ``unlabeled_weight``, 1 in the paper; 0 leaves the labeled-only model).

Each part is a per-image mean, so α weighs the classifier's cross-entropy against
one image's −ELBO (a few hundred nats on Fashion-MNIST); the paper writes the
objective as sums over the data set with α = 0.1 · N. Only the α term and the
unlabeled term reach q(y|x): the labeled ELBO does not depend on it. The same z
noise serves every class of an unlabeled image, so ELBO(x) is exactly the
q-weighted sum of the labeled ELBOs plus the entropy (the tests check this).

The networks are small strided convolutions (28 → 14 → 7, as ``vae-conv``) and no
batch norm: labeled and unlabeled batches have different statistics, a known cause
of M2 reproductions falling short. The class enters the encoder and the decoder as
a learned vector per class added to their first linear layer, so the ten classes
of an unlabeled image share one pass of the convolutional trunk.

The Autoencoder interface: ``encode(x)`` is the code [μ(x, ŷ), q(y|x)] with ŷ the
most likely class, ``decode(code)`` reads [z, y] with y one-hot (or any weights
over the classes); ``features(x)`` are the classifier's logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..data.loader import Batch
from ..nn import activation
from ..prob import kl_vae
from ..registry import register
from .base import Autoencoder, Logs
from .vae import Activation, reparameterize

__all__ = ["M2", "M2Config", "every_class", "style_grid"]


@dataclass
class M2Config:
    """Sizes of the three networks, the classifier weight α and the KL warm-up."""

    latent_dim: int = bounded(16, ge=1)  # the style z
    num_classes: int = bounded(10, ge=2)
    channels: tuple[int, ...] = bounded((32, 64), ge=1, length=2)  # width at 14×14 and 7×7
    hidden: int = bounded(256, ge=1)  # the classifier's hidden layer
    activation: Activation = "relu"
    alpha: float = bounded(50.0, ge=0)  # weight of the labeled cross-entropy (per image)
    unlabeled_weight: float = bounded(1.0, ge=0)  # weight of the unlabeled −ELBO (0: labeled only)
    kl_warmup_steps: int = bounded(0, ge=0)  # linear ramp of the KL weight from 0 to 1

    def validate(self) -> None:
        check(self.num_classes <= 1000, f"num_classes must be at most 1000, got {self.num_classes}")


def _conv_trunk(c1: int, c2: int, act: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, c1, 4, stride=2, padding=1), activation(act),  # (B, c1, 14, 14)
        nn.Conv2d(c1, c2, 4, stride=2, padding=1), activation(act),  # (B, c2, 7, 7)
        nn.Flatten(),  # (B, c2·49)
    )  # fmt: skip


@register("m2", M2Config)
class M2(Autoencoder):
    """Kingma et al.'s M2: classifier q(y|x), encoder q(z|x,y), decoder p(x|y,z)."""

    family: ClassVar[str] = "m2"
    config: M2Config

    def __init__(self, config: M2Config):
        super().__init__(config)
        c1, c2 = config.channels
        act, d, k = config.activation, config.latent_dim, config.num_classes
        self.classifier = nn.Sequential(
            _conv_trunk(c1, c2, act),
            nn.Linear(c2 * 49, config.hidden), activation(act),
            nn.Linear(config.hidden, k),  # (B, K) logits of q(y|x)
        )  # fmt: skip
        self.encoder = _conv_trunk(c1, c2, act)
        self.to_params = nn.Linear(c2 * 49, 2 * d)  # the x part of (μ, log σ²)
        self.class_params = nn.Embedding(k, 2 * d)  # … plus one vector per class
        self.from_latent = nn.Sequential(nn.Linear(d + k, c2 * 49), activation(act))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), activation(act),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28) logits
        )  # fmt: skip
        self.c2 = c2
        # optimiser steps taken: drives the KL warm-up and is saved with the weights
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------ the three networks

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y|x): (B, K)."""
        return self.classifier(x).float()

    def style_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x,y) for every class y: each (K, B, D)."""
        h = self.to_params(self.encoder(x)).float()  # (B, 2D)
        both = h[None] + self.class_params.weight.float()[:, None, :]  # (K, B, 2D)
        mu, logvar = both.chunk(2, dim=-1)
        return mu, logvar

    def decode_logits(self, code: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits (B, 1, 28, 28) from codes [z, y] (B, D + K)."""
        h = self.from_latent(code).view(-1, self.c2, 7, 7)  # (B, c2, 7, 7)
        return self.decoder(h)

    def _one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.config.num_classes).float()

    # ------------------------------------------------------------ the interface

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[μ(x, ŷ), q(y|x)]: (B, D + K), with ŷ the classifier's most likely class."""
        probs = self.class_logits(x).softmax(-1)  # (B, K)
        mu, _ = self.style_params(x)  # (K, B, D)
        best = probs.argmax(-1)
        mu_best = mu[best, torch.arange(x.shape[0], device=x.device)]  # (B, D)
        return torch.cat([mu_best, probs], dim=-1)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(code).float())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits (B, K)."""
        return self.class_logits(x)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        label: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1]: decoder means at y, z ~ N(0, T²·I).

        ``label`` fixes the class (an int, or (n,) classes); None draws it from p(y).
        """
        c, dev = self.config, next(self.parameters()).device
        gen_dev = generator.device if generator is not None else dev
        z = temperature * torch.randn((n, c.latent_dim), generator=generator, device=gen_dev)
        if label is None:
            y = torch.randint(c.num_classes, (n,), generator=generator, device=gen_dev)
        else:
            y = torch.as_tensor(label, dtype=torch.long, device=gen_dev).expand(n)
        if y.min() < 0 or y.max() >= c.num_classes:
            raise ValueError(f"label must be in [0, {c.num_classes}), got {y.tolist()}")
        code = torch.cat([z, self._one_hot(y)], dim=-1).to(dev)
        return self.decode(code).clamp(0, 1)

    # ------------------------------------------------------------ the bound

    def kl_weight(self) -> torch.Tensor:
        """1, or the linear warm-up's weight at this step while training."""
        steps = self.config.kl_warmup_steps
        if not self.training or steps == 0:
            return torch.ones(())
        return torch.clamp(self.step.float() / steps, max=1.0)

    def labeled_elbo(
        self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ELBO(x, y), log p(x|y,z), KL) per image, each (B,), in nats.

        ``eps`` (B, D) is the reparameterisation noise (None: drawn from the global RNG).
        """
        mu, logvar = self.style_params(x)  # (K, B, D)
        rows = torch.arange(x.shape[0], device=x.device)
        return self._elbo(x, y, mu[y, rows], logvar[y, rows], eps)

    def _elbo(self, x, y, mu, logvar, eps):
        if eps is None:
            z = reparameterize(mu, logvar)
        else:
            z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.decode_logits(torch.cat([z, self._one_hot(y)], dim=-1)).float()
        log_px = -F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
        log_px = log_px.flatten(1).sum(-1)  # (B,)
        kl = kl_vae(mu, logvar)  # (B,)
        log_py = -math.log(self.config.num_classes)
        return log_px + log_py - self.kl_weight() * kl, log_px, kl

    def unlabeled_elbo(
        self, x: torch.Tensor, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ELBO(x) = Σ_y q(y|x) ELBO(x, y) + H(q(y|x)), q(y|x)): (B,) and (B, K).

        One noise draw ``eps`` (B, D) serves every class.
        """
        b, k = x.shape[0], self.config.num_classes
        logits = self.class_logits(x)  # (B, K)
        q = logits.softmax(-1)
        entropy = -(q * logits.log_softmax(-1)).sum(-1)  # (B,)
        mu, logvar = self.style_params(x)  # (K, B, D)
        if eps is None:
            eps = torch.randn_like(mu[0])
        ys = torch.arange(k, device=x.device).repeat_interleave(b)  # (K·B,) class-major
        elbo, _, _ = self._elbo(
            x.repeat(k, 1, 1, 1),
            ys,
            mu.reshape(k * b, -1),
            logvar.reshape(k * b, -1),
            eps.repeat(k, 1),
        )
        per_class = elbo.view(k, b).T  # (B, K)
        return (q * per_class).sum(-1) + entropy, q

    # ------------------------------------------------------------ the objective

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """M2's loss on a batch whose labels are −1 where unknown (module docstring)."""
        x, y = batch.x, batch.y
        known = y >= 0
        zero = x.new_zeros(()).float()
        loss, logs = zero, {}
        if known.any():
            xl, yl = x[known], y[known]
            elbo, log_px, kl = self.labeled_elbo(xl, yl)
            ce = F.cross_entropy(self.class_logits(xl), yl)
            loss = loss + (-elbo).mean() + self.config.alpha * ce
            logs.update({"nelbo_labeled": (-elbo).mean().detach(), "ce": ce.detach()})
            logs["recon"] = (-log_px).mean().detach()
            logs["kl"] = kl.mean().detach()
        if (~known).any():
            elbo_u, q = self.unlabeled_elbo(x[~known])
            loss = loss + self.config.unlabeled_weight * (-elbo_u).mean()
            logs["nelbo_unlabeled"] = (-elbo_u).mean().detach()
            logs["confidence"] = q.max(-1).values.mean().detach()
        if self.training:
            self.step += 1
        return loss, logs


@torch.no_grad()
def style_grid(
    model: M2, n_styles: int, generator: torch.Generator | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """ "Same style, every class": (n_styles · K, 1, 28, 28), row r = style z_r, column = class.

    Save it with ``nrow=K`` to see one style per row.
    """
    c, dev = model.config, next(model.parameters()).device
    gen_dev = generator.device if generator is not None else dev
    z = temperature * torch.randn((n_styles, c.latent_dim), generator=generator, device=gen_dev)
    return every_class(model, z.to(dev))


@torch.no_grad()
def every_class(model: M2, styles: torch.Tensor) -> torch.Tensor:
    """Styles (S, D) each decoded in every class: (S · K, 1, 28, 28) in [0, 1], style-major."""
    k, dev = model.config.num_classes, styles.device
    z = styles.float().repeat_interleave(k, dim=0)  # (S·K, D): each style K times
    y = torch.arange(k, device=dev).repeat(styles.shape[0])  # 0…K−1, 0…K−1, …
    code = torch.cat([z, F.one_hot(y, k).float()], dim=-1)
    return model.decode(code).clamp(0, 1)
