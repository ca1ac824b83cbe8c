"""The probability primer: sampling, Gaussians, conditionals and KL divergences.

All functions work on tensors of any batch shape and in float64. KL divergences
are in nats; :func:`bits` converts.
"""

from __future__ import annotations

import math

import torch

__all__ = ["bits", "kl_gaussian", "kl_vae"]


def bits(nats: torch.Tensor | float) -> torch.Tensor | float:
    """Convert nats to bits (divide by ln 2)."""
    return nats / math.log(2.0)


def _tensor(t: torch.Tensor | float) -> torch.Tensor:
    """Tensors pass through; Python numbers become float64 tensors (no silent float32)."""
    return t if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=torch.float64)


def kl_gaussian(
    mu_p: torch.Tensor | float,
    sigma_p: torch.Tensor | float,
    mu_q: torch.Tensor | float,
    sigma_q: torch.Tensor | float,
) -> torch.Tensor:
    """D_KL(N(μp, σp²) ‖ N(μq, σq²)) element-wise, in nats (closed form).

    log(σq/σp) + (σp² + (μp − μq)²) / (2σq²) − ½
    """
    mu_p, sigma_p, mu_q, sigma_q = (_tensor(t) for t in (mu_p, sigma_p, mu_q, sigma_q))
    return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5


def kl_vae(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The VAE's KL term D_KL(N(μ, diag σ²) ‖ N(0, I)), summed over the last dim: (…,) in nats.

    −½ Σ (1 + log σ² − μ² − σ²), one value per sample; the caller decides how to
    reduce over the batch.
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
