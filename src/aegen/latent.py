"""Walking a continuous latent space: interpolation paths and the prior's quantile grid.

Used to *show* what a VAE's latent space does between and around data points
(the lecture's "overly smooth latent space": halfway between a shoe and a shirt
there is a plausible-looking hybrid).
"""

from __future__ import annotations

import torch

__all__ = ["lerp", "prior_quantile_grid", "slerp"]


def lerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Straight-line path from a to b: (steps, D) for a, b of shape (D,); ends included."""
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device).unsqueeze(1)  # (S, 1)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, steps: int, eps: float = 1e-7) -> torch.Tensor:
    """Spherical path from a to b (White 2016): (steps, D); ends included.

    Follows the great circle between the directions of a and b while the norm moves
    linearly, so intermediate points keep a norm typical of N(0, I) samples
    instead of shrinking towards the origin as a straight line does between two
    near-orthogonal high-dimensional vectors. Falls back to :func:`lerp` when a
    and b point the same way (the angle is then ~0).
    """
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device).unsqueeze(1)  # (S, 1)
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a, b) / (na * nb).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return lerp(a, b, steps)
    ua, ub = a / na.clamp_min(eps), b / nb.clamp_min(eps)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def prior_quantile_grid(
    n: int, low: float = 0.05, high: float = 0.95, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(n·n, 2) latent points on an n×n grid of N(0, 1) quantiles in each of two dims.

    Row-major, top row first with z2 decreasing downward (as on a plot), so
    ``save_grid(decode(grid), nrow=n)`` draws the 2-D manifold the decoder learned.
    Equal steps in probability, not in z: each cell holds the same prior mass.
    """
    q = torch.linspace(low, high, n, dtype=torch.float64)
    z = torch.special.ndtri(q).to(dtype)  # (n,) Φ⁻¹ of the quantiles
    z2, z1 = torch.meshgrid(z.flip(0), z, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
