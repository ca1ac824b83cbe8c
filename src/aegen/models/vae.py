"""Variational autoencoders: the lecture's probabilistic encoder and decoder.

The encoder maps an image x to a diagonal Gaussian q(z|x) = N(μ, diag σ²) (it
outputs μ and log σ²); a latent is drawn by reparameterization, z = μ + σ·ε with
ε ~ N(0, I), so gradients flow through the sample; the decoder maps z to the
parameters of p(x|z), either

- ``bernoulli``: one logit per pixel, log p(x|z) = −BCE(logits, x) summed over the
  784 pixels (on grey values this is the usual "Bernoulli" VAE loss; it is not a
  normalised density for non-binary pixels, as in pythae and PyTorch examples), or
- ``gaussian``: mean sigmoid(output), standard deviation σ either fixed
  (``sigma``) or one learned scalar (``decoder_var="learned"``, the calibrated
  σ-VAE decoder); log N(x; m, σ²) summed over pixels, a density in nats.

The prior is p(z) = N(0, I).

The loss, written once in :meth:`VAE.loss`
---------------------------------------------
Per image b, in nats::

    recon_b = −log p(x_b | z_b)            summed over pixels, one z_b ~ q(z|x_b)
    kl_bj   = D_KL(q(z_j|x_b) ‖ N(0, 1))   closed form, per latent dim j (aegen.prob.kl_vae)

    loss = mean_b recon_b + β_t · Σ_j max(λ, mean_b kl_bj)

i.e. per-sample sums averaged over the batch (never averaged over pixels, which
would silently weight the KL 784 times more). β_t is β times the KL warm-up
weight (linear or cyclical, driven by a step counter kept as a registered buffer,
so a resumed run continues the schedule exactly); λ is the free-bits floor per
latent dimension (``free_bits``, 0: off). With λ = 0 the KL part is
β_t · mean_b Σ_j kl_bj, the β-VAE objective; with β = 1 it is the negative ELBO.

With ``iwae_k > 1`` the model trains on the importance-weighted bound instead
(Burda et al. 2016): k latents per image, log w = log p(x|z) + β_t (log p(z) −
log q(z|x)), loss = −mean_b [logsumexp_k log w − log k].

In eval mode (validation) the loss is the plain objective at the target β, with
no warm-up and no free bits, so "best validation loss" compares like with like.
Every mode logs ``nelbo`` (recon + KL: the negative ELBO at β = 1) as well.
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
from ..nn import activation, mlp
from ..prob import gaussian_logpdf, kl_vae, log_normal_diag, log_std_normal
from ..registry import register
from .base import Autoencoder, Logs

__all__ = [
    "VAE",
    "VAEConv",
    "VAEConvConfig",
    "VAEMLP",
    "VAEMLPConfig",
    "kl_weight",
    "reparameterize",
]

Activation = Literal["relu", "gelu", "silu", "tanh", "sigmoid"]
IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 784
# Decoder chunk: at most this many images through the decoder at once when
# estimating log p(x) with k samples per image (bounds memory, not results).
_DECODE_CHUNK = 4096


# --------------------------------------------------------------------------- pieces


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I): a sample of q(z|x) that gradients flow through."""
    if generator is None:
        eps = torch.randn_like(mu)
    else:
        # drawn where the generator lives (usually the CPU), then moved: the same seed gives
        # the same ε whether the model runs on the CPU or a GPU
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=generator.device)
        eps = eps.to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_weight(step: torch.Tensor, cfg: VAEConfig) -> torch.Tensor:
    """The KL weight β_t at optimisation ``step`` (a tensor, so it compiles without graph breaks).

    - ``none``: β;
    - ``linear``: β·min(1, step / kl_warmup_steps);
    - ``cyclical`` (Fu et al. 2019): the step's position in a period of
      ``kl_warmup_steps``: β rises linearly over the first ``kl_cycle_ratio`` of
      each period, then holds; after ``kl_cycles`` periods it stays at β.
    """
    t = step.to(torch.float32)
    if cfg.kl_warmup == "none" or cfg.kl_warmup_steps == 0:
        return torch.full_like(t, cfg.beta)
    period = float(cfg.kl_warmup_steps)
    if cfg.kl_warmup == "linear":
        w = torch.clamp(t / period, max=1.0)
    else:
        ramp = cfg.kl_cycle_ratio * period
        w = torch.clamp(torch.remainder(t, period) / ramp, max=1.0)
        w = torch.where(t >= cfg.kl_cycles * period, torch.ones_like(w), w)
    return cfg.beta * w


# --------------------------------------------------------------------------- config


@dataclass
class VAEConfig:
    """What every VAE shares: the latent, the decoder's likelihood, and the objective."""

    latent_dim: int = bounded(16, ge=1)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    decoder_var: Literal["fixed", "learned"] = "fixed"  # gaussian only
    sigma: float = bounded(0.1, gt=0)  # the gaussian decoder's fixed σ (its initial σ when learned)
    beta: float = bounded(1.0, ge=0)  # weight of the KL term (β-VAE); 1 is the ELBO
    kl_warmup: Literal["none", "linear", "cyclical"] = "none"
    # linear: ramp length; cyclical: period, in optimiser steps
    kl_warmup_steps: int = bounded(0, ge=0)
    kl_cycles: int = bounded(4, ge=1)  # cyclical: number of periods before β stays at its target
    kl_cycle_ratio: float = bounded(0.5, gt=0, le=1)  # cyclical: fraction of a period ramping up
    free_bits: float = bounded(0.0, ge=0)  # λ: floor in nats on each dim's batch-mean KL (0: off)
    iwae_k: int = bounded(1, ge=1)  # >1: train on the importance-weighted bound with k samples

    def validate(self) -> None:
        check(
            self.kl_warmup == "none" or self.kl_warmup_steps > 0,
            f"model.kl_warmup={self.kl_warmup} needs model.kl_warmup_steps > 0",
        )
        check(
            self.iwae_k == 1 or self.free_bits == 0,
            "model.free_bits works on the ELBO's closed-form KL; it cannot be combined with model.iwae_k > 1",
        )
        check(
            self.likelihood == "gaussian" or self.decoder_var == "fixed",
            "model.decoder_var=learned needs model.likelihood=gaussian",
        )


# --------------------------------------------------------------------------- the model


class VAE(Autoencoder):
    """A VAE with the loss, likelihood and sampling written once; subclasses supply the nets.

    A subclass defines ``encoder_params(x) -> (μ, log σ²)``, each (B, latent_dim),
    and ``decode_logits(z) -> (B, 1, 28, 28)``: Bernoulli logits, or the
    pre-sigmoid Gaussian mean.
    """

    family: ClassVar[str] = "vae"
    config: VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        # optimiser steps taken: drives the KL warm-up and is saved with the weights
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        if config.likelihood == "gaussian" and config.decoder_var == "learned":
            self.log_sigma = nn.Parameter(torch.tensor(math.log(config.sigma)))

    # ------------------------------------------------------------ nets (subclass)

    def encoder_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------ the interface

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """μ of q(z|x): (B, latent_dim). The deterministic code of an image."""
        return self.encoder_params(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image in [0, 1]: (B, 1, 28, 28)."""
        return torch.sigmoid(self.decode_logits(z).float())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """μ: (B, latent_dim), differentiable."""
        return self.encode(x)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean at z = μ(x): the VAE's deterministic reconstruction, in [0, 1]."""
        return self.decode(self.encode(x)).clamp(0, 1)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1]: decoder means at z ~ N(0, temperature²·I)."""
        device = next(self.parameters()).device
        gen_device = generator.device if generator is not None else device
        z = temperature * torch.randn(
            (n, self.config.latent_dim), generator=generator, device=gen_device
        )
        z = z.to(device)  # (n, D); drawn where the generator lives, as in reparameterize
        return torch.cat([self.decode(c) for c in z.split(_DECODE_CHUNK)]).clamp(0, 1)

    # ------------------------------------------------------------ likelihood

    def decoder_sigma(self) -> torch.Tensor | float:
        """The Gaussian decoder's σ (a learned scalar or the fixed config value)."""
        if hasattr(self, "log_sigma"):
            # a floor at 1e-3 keeps a learned σ from collapsing onto constant pixels
            return self.log_sigma.clamp(min=math.log(1e-3)).exp()
        return self.config.sigma

    def log_px_given_z(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats, summed over pixels: (…,) for ``out`` of shape (…, 1, 28, 28).

        ``x`` (B, 1, 28, 28) broadcasts against ``out`` (k, B, 1, 28, 28) for k samples.
        """
        out = out.float()  # the sum over 784 pixels stays in float32 under bf16 autocast
        x = x.float().expand_as(out)
        if self.config.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
        else:
            sigma = torch.as_tensor(self.decoder_sigma(), dtype=out.dtype, device=out.device)
            ll = gaussian_logpdf(x, torch.sigmoid(out), sigma)
        return ll.flatten(-3).sum(-1)

    def _log_weights(
        self,
        x: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        k: int,
        beta: torch.Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """k importance samples per image from q(z|x) = N(μ, σ²): (log w, log p(x|z)), each (k, B).

        log w = log p(x|z) + β (log p(z) − log q(z|x)) with z ~ q(z|x).
        """
        b, d = mu.shape
        mu_k, logvar_k = mu.expand(k, b, d), logvar.expand(k, b, d)
        z = reparameterize(mu_k, logvar_k, generator)  # (k, B, D)
        out = self.decode_logits(z.reshape(k * b, d)).view(k, b, *IMAGE_SHAPE)
        log_px = self.log_px_given_z(x, out)  # (k, B)
        log_ratio = log_std_normal(z) - log_normal_diag(z, mu_k, logvar_k)  # (k, B)
        return log_px + beta * log_ratio, log_px

    @torch.no_grad()
    def log_likelihood(
        self, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B,) importance-weighted estimate of log p(x) in nats (the IWAE bound with k samples).

        log p(x) ≥ E[logsumexp_k log w_k − log k], w = p(x|z) p(z) / q(z|x), z ~ q(z|x);
        k = 1 is a one-sample ELBO estimate, and the bound tightens as k grows.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        mu, logvar = (t.float() for t in self.encoder_params(x))  # (B, D) each
        per = max(1, _DECODE_CHUNK // max(1, x.shape[0]))  # samples per decoder pass
        log_w = torch.cat(
            [
                self._log_weights(x, mu, logvar, min(per, k - s), generator=generator)[0]
                for s in range(0, k, per)
            ]
        )  # (k, B)
        return torch.logsumexp(log_w, 0) - math.log(k)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,) ELBO in nats: one-sample log p(x|z) minus the closed-form KL."""
        mu, logvar = (t.float() for t in self.encoder_params(x))
        z = reparameterize(mu, logvar, generator)
        return self.log_px_given_z(x, self.decode_logits(z)) - kl_vae(mu, logvar)

    # ------------------------------------------------------------ the objective

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        c = self.config
        x = batch.x
        if self.training:
            beta = kl_weight(self.step, c)
            self.step += 1
        else:
            beta = torch.tensor(c.beta)
        mu, logvar = (t.float() for t in self.encoder_params(x))  # (B, D) each
        kl_dim = kl_vae(mu.unsqueeze(-1), logvar.unsqueeze(-1))  # (B, D): one KL per dim
        kl = kl_dim.sum(-1)  # (B,)
        if c.iwae_k > 1 and self.training:
            log_w, log_px = self._log_weights(x, mu, logvar, c.iwae_k, beta)  # (k, B) each
            loss = -(torch.logsumexp(log_w, 0) - math.log(c.iwae_k)).mean()
            recon = -log_px.mean(0)  # (B,)
        else:
            z = reparameterize(mu, logvar)  # (B, D)
            recon = -self.log_px_given_z(x, self.decode_logits(z))  # (B,) nats
            if c.free_bits > 0 and self.training:
                kl_term = kl_dim.mean(0).clamp(min=c.free_bits).sum()
            else:
                kl_term = kl.mean()
            loss = recon.mean() + beta * kl_term
        logs: Logs = {
            "recon": recon.mean().detach(),
            "kl": kl.mean().detach(),
            "nelbo": (recon + kl).mean().detach(),
            "beta": beta.detach(),
            # units whose μ varies across this batch (a per-batch view of active units)
            "active_units": (mu.detach().var(0) > 0.01).sum().float(),
        }
        if hasattr(self, "log_sigma"):
            logs["sigma"] = torch.as_tensor(self.decoder_sigma()).detach()
        return loss, logs


# --------------------------------------------------------------------------- MLP


@dataclass
class VAEMLPConfig(VAEConfig):
    """784 → hidden … → (μ, log σ²) of latent_dim; the decoder mirrors it to 784 logits."""

    hidden: tuple[int, ...] = bounded((512,), ge=1, min_length=1)
    activation: Activation = "relu"


@register("vae-mlp", VAEMLPConfig)
class VAEMLP(VAE):
    """The lecture's MLP VAE (default 784-512-16, as pythae's default MLP VAE)."""

    # bf16 autocast (where the CPU has it) and fused AdamW make a step cheaper; torch.compile
    # saves less per step than its compile time costs at this budget (measured: docs/vae.md).
    train_defaults: ClassVar[dict] = {"epochs": 20, "batch_size": 128, "amp": "auto", "fused": True}

    def __init__(self, config: VAEMLPConfig):
        super().__init__(config)
        d, hidden = config.latent_dim, list(config.hidden)
        self.encoder = mlp([NUM_PIXELS, *hidden], config.activation, last_act=True)
        self.to_params = nn.Linear(hidden[-1], 2 * d)  # μ and log σ² from one matmul
        self.decoder = mlp([d, *reversed(hidden), NUM_PIXELS], config.activation)

    def encoder_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x.flatten(1))  # (B, hidden[-1])
        mu, logvar = self.to_params(h).chunk(2, dim=-1)  # (B, D) each
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)


# --------------------------------------------------------------------------- convolutional


@dataclass
class VAEConvConfig(VAEConfig):
    """Strided convolutions 28 → 14 → 7, a linear map to (μ, log σ²); the decoder mirrors it."""

    channels: tuple[int, ...] = bounded((32, 64), ge=1, length=2)  # width at 14×14 and at 7×7
    activation: Activation = "relu"


@register("vae-conv", VAEConvConfig)
class VAEConv(VAE):
    """Convolutional VAE: two stride-2 convolutions down, two transposed convolutions up."""

    # bf16 autocast makes a step cheaper; channels_last and fused AdamW measured no gain
    # for this model (docs/vae.md)
    train_defaults: ClassVar[dict] = {"epochs": 10, "batch_size": 128, "amp": "auto"}

    def __init__(self, config: VAEConvConfig):
        super().__init__(config)
        c1, c2 = config.channels
        act, d = config.activation, config.latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), activation(act),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), activation(act),  # (B, c2, 7, 7)
            nn.Flatten(),  # (B, c2·49)
        )  # fmt: skip
        self.to_params = nn.Linear(c2 * 49, 2 * d)
        self.from_latent = nn.Sequential(nn.Linear(d, c2 * 49), activation(act))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), activation(act),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28) logits
        )  # fmt: skip
        self.c2 = c2

    def encoder_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_params(self.encoder(x)).chunk(2, dim=-1)  # (B, D) each
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, self.c2, 7, 7)  # (B, c2, 7, 7)
        return self.decoder(h)
