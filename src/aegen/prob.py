"""The probability primer: sampling, Gaussians, conditionals and KL divergences.

What the lecture's generative half rests on, written out so it can be read and
checked: drawing integers from any pmf through its inverse CDF, Gaussians in one
and several dimensions (sampling, densities, the conditional of a 2-D Gaussian),
and KL divergences in closed form and by Monte Carlo.

All functions work on tensors of any batch shape; Python numbers and lists
become float64 tensors (never silent float32). Densities are per unit of ``x``;
log densities and KL divergences are in nats, and :func:`bits` converts.
Functions that check their input (pmfs, covariances) raise ``ValueError`` with
a message that says what is wrong; they are for the primer, tests and analysis,
not for a training loop's hot path (the checks synchronise). :func:`kl_gaussian`
and :func:`kl_vae` check nothing, so models can call them every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = [
    "MCEstimate",
    "LOG_2PI",
    "bits",
    "check_pmf",
    "cholesky_factor",
    "conditional_gaussian",
    "empirical_pmf",
    "gaussian_logpdf",
    "gaussian_pdf",
    "kl_categorical",
    "kl_categorical_mc",
    "kl_gaussian",
    "kl_gaussian_mc",
    "kl_vae",
    "kl_vae_mc",
    "log_normal_diag",
    "log_std_normal",
    "mvn_logpdf",
    "mvn_pdf",
    "pmf_inverse_cdf",
    "sample_gaussian",
    "sample_mvn",
    "sample_pmf",
]

PMF_ATOL = 1e-5  # how far from 1 a pmf's total may be (float32 round-off over many bins)
LOG_2PI = math.log(2.0 * math.pi)

Number = float | int
TensorLike = torch.Tensor | Number | Sequence


def bits(nats: torch.Tensor | float) -> torch.Tensor | float:
    """Convert nats to bits (divide by ln 2)."""
    return nats / math.log(2.0)


def _tensor(t: TensorLike) -> torch.Tensor:
    """Floating tensors pass through; numbers, lists and integer tensors become float64."""
    if isinstance(t, torch.Tensor):
        return t if t.is_floating_point() else t.to(torch.float64)
    return torch.as_tensor(t, dtype=torch.float64)


# ----------------------------------------------------------------------------- pmfs


def check_pmf(pmf: TensorLike, name: str = "pmf") -> torch.Tensor:
    """Return ``pmf`` as a float64 tensor (…, K) after checking it is a pmf over its last dim.

    Finite, non-negative, and each row sums to 1 within :data:`PMF_ATOL`; else a
    ``ValueError`` that says which rule failed.
    """
    p = _tensor(pmf).to(torch.float64)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(
            f"{name} must have at least one outcome along its last dim, got shape {tuple(p.shape)}"
        )
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} has non-finite entries (nan or inf)")
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries (smallest {p.min().item():.3g})")
    total = p.sum(-1)
    worst = (total - 1).abs().max().item()
    if worst > PMF_ATOL:
        raise ValueError(
            f"{name} must sum to 1 over its last dim; off by {worst:.3g} "
            "(divide counts by their total first)"
        )
    return p


def empirical_pmf(values: torch.Tensor, k: int) -> torch.Tensor:
    """The histogram of integer ``values`` in [0, k) as a float64 pmf (k,): counts / total."""
    v = values.reshape(-1).long()
    if v.numel() == 0:
        raise ValueError("empirical_pmf needs at least one value")
    if v.min() < 0 or v.max() >= k:
        raise ValueError(f"values must lie in [0, {k}), got [{v.min().item()}, {v.max().item()}]")
    return torch.bincount(v, minlength=k).to(torch.float64) / v.numel()


def pmf_inverse_cdf(pmf: TensorLike, u: torch.Tensor) -> torch.Tensor:
    """Map numbers ``u`` in [0, 1) to outcomes through the pmf's inverse CDF: (…, n) long.

    The outcome for ``u`` is the smallest k with F(k) > u, where F(k) = Σ_{j≤k} p(j):
    the unit interval is cut into pieces of length p(k), one per outcome, and ``u``
    picks the piece it falls in. Where p is large the CDF is steep and many
    evenly spaced u land on few outcomes (space compressed); where p is small they
    spread out (space stretched). An outcome of zero mass owns an empty piece and
    is never returned.

    ``pmf`` is (K,) with ``u`` of any shape, or (…, K) with ``u`` (…, n) whose
    leading dims match (each row of u uses its row of the pmf).
    """
    p = check_pmf(pmf)
    u = _tensor(u).to(torch.float64)
    if (u < 0).any() or (u >= 1).any():
        raise ValueError("u must lie in [0, 1)")
    k = p.shape[-1]
    cdf = torch.cumsum(p, dim=-1)  # (…, K), non-decreasing
    # Round-off can leave F(K−1) a hair below 1, so a u just under 1 would fall off the
    # end; set F to exactly 1 from the last outcome with mass on, so every u < 1 lands
    # on an outcome with mass. (Adding a zero mass leaves F exactly unchanged, so zero-
    # mass outcomes elsewhere keep their empty pieces.)
    idx = torch.arange(k, device=p.device)
    last = torch.where(p > 0, idx, -1).amax(dim=-1, keepdim=True)  # (…, 1)
    cdf = torch.where(idx >= last, torch.ones((), dtype=cdf.dtype, device=cdf.device), cdf)
    if p.ndim > 1:
        u = u.expand(*p.shape[:-1], u.shape[-1]).contiguous()
    # right=True: the first index whose F is strictly greater than u
    return torch.searchsorted(cdf, u, right=True)


def sample_pmf(pmf: TensorLike, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` outcomes from a pmf over its last dim: (…, n) long in [0, K).

    The lecture's method: draw u ~ Uniform[0, 1) (a familiar distribution we can
    sample), then transform it through the inverse CDF (:func:`pmf_inverse_cdf`).
    Not ``torch.multinomial``: this is the transform written out.
    """
    p = check_pmf(pmf)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    u = torch.rand(
        *p.shape[:-1], n, generator=generator, dtype=torch.float64, device=p.device
    )  # (…, n) uniform in [0, 1)
    return pmf_inverse_cdf(p, u)


# ------------------------------------------------------------------------ Gaussians


def sample_gaussian(
    mean: TensorLike,
    std: TensorLike,
    shape: int | Sequence[int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw from N(mean, std²) as the lecture writes it: g = m + s · randn(shape).

    ``shape`` is the shape of the noise; ``mean`` and ``std`` broadcast against
    it (for n draws of a batch of Gaussians, pass ``(n, *mean.shape)``).
    """
    m, s = _tensor(mean), _tensor(std)
    if not (torch.isfinite(s).all() and (s >= 0).all()):
        raise ValueError("std must be finite and >= 0")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dtype = torch.promote_types(m.dtype, s.dtype)
    eps = torch.randn(shape, generator=generator, dtype=dtype, device=m.device)
    return m + s * eps


def gaussian_logpdf(x: TensorLike, mean: TensorLike, std: TensorLike) -> torch.Tensor:
    """log N(x; mean, std²) element-wise, in nats: −½((x−m)/s)² − log s − ½ log 2π."""
    x, m, s = _tensor(x), _tensor(mean), _tensor(std)
    z = (x - m) / s
    return -0.5 * z**2 - torch.log(s) - 0.5 * LOG_2PI


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dim, in nats, from log σ² (a VAE's encoder
    output): −½ Σ ((z−μ)² e^(−log σ²) + log σ² + log 2π). Same value as summing
    :func:`gaussian_logpdf` with σ = exp(½ log σ²), without forming σ."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def log_std_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim, in nats: a VAE prior's log density."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def gaussian_pdf(x: TensorLike, mean: TensorLike, std: TensorLike) -> torch.Tensor:
    """N(x; mean, std²) element-wise: exp(−½((x−m)/s)²) / (s√(2π))."""
    return torch.exp(gaussian_logpdf(x, mean, std))


def cholesky_factor(cov: TensorLike, name: str = "covariance") -> torch.Tensor:
    """The lower-triangular L with L Lᵀ = cov (…, D, D), after checking cov is symmetric positive definite.

    A ``ValueError`` says what is wrong: shape, non-finite entries, asymmetry, or
    not positive definite (with its smallest eigenvalue).
    """
    c = _tensor(cov)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2] or c.shape[-1] == 0:
        raise ValueError(f"{name} must be a square (…, D, D) matrix, got shape {tuple(c.shape)}")
    if not torch.isfinite(c).all():
        raise ValueError(f"{name} has non-finite entries (nan or inf)")
    scale = c.abs().amax().clamp_min(torch.finfo(c.dtype).tiny)
    asym = (c - c.mT).abs().amax()
    if asym > 1e3 * torch.finfo(c.dtype).eps * scale:
        raise ValueError(f"{name} is not symmetric (largest |Σ − Σᵀ| entry is {asym.item():.3g})")
    L, info = torch.linalg.cholesky_ex(c)
    if (info != 0).any():
        smallest = torch.linalg.eigvalsh(c).amin().item()
        raise ValueError(
            f"{name} is not positive definite (smallest eigenvalue {smallest:.3g}); "
            "a covariance needs every eigenvalue > 0"
        )
    return L


def sample_mvn(
    mean: TensorLike, cov: TensorLike, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``n`` points from N(mean, cov): (n, …, D).

    With the Cholesky factor L (L Lᵀ = Σ) and ε ~ N(0, I), x = μ + L ε has
    covariance L I Lᵀ = Σ: the 1-D ``m + s · randn`` in several dimensions.
    ``mean`` is (…, D), ``cov`` (…, D, D); their batch dims broadcast.
    """
    m = _tensor(mean)
    L = cholesky_factor(cov)
    d = L.shape[-1]
    if m.ndim == 0 or m.shape[-1] != d:
        raise ValueError(
            f"mean must end in dim {d} to match the covariance, got shape {tuple(m.shape)}"
        )
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    batch = torch.broadcast_shapes(m.shape[:-1], L.shape[:-2])
    dtype = torch.promote_types(m.dtype, L.dtype)
    eps = torch.randn(n, *batch, d, 1, generator=generator, dtype=dtype, device=m.device)
    return m + (L.to(dtype) @ eps).squeeze(-1)  # (n, …, D)


def mvn_logpdf(x: TensorLike, mean: TensorLike, cov: TensorLike) -> torch.Tensor:
    """log N(x; mean, cov) over the last dim, in nats: (…,).

    −½ (D log 2π + log det Σ + (x−μ)ᵀ Σ⁻¹ (x−μ)), with both terms from the Cholesky
    factor: log det Σ = 2 Σ log Lᵢᵢ, and (x−μ)ᵀ Σ⁻¹ (x−μ) = ‖L⁻¹(x−μ)‖².
    """
    x, m = _tensor(x), _tensor(mean)
    L = cholesky_factor(cov)
    d = L.shape[-1]
    diff = (x - m).unsqueeze(-1)  # (…, D, 1)
    if diff.shape[-2] != d:
        raise ValueError(f"x and mean must end in dim {d} to match the covariance")
    batch = torch.broadcast_shapes(diff.shape[:-2], L.shape[:-2])
    L = L.expand(*batch, d, d)
    z = torch.linalg.solve_triangular(L, diff.expand(*batch, d, 1), upper=False)  # (…, D, 1)
    maha = (z.squeeze(-1) ** 2).sum(-1)
    logdet = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (d * LOG_2PI + logdet + maha)


def mvn_pdf(x: TensorLike, mean: TensorLike, cov: TensorLike) -> torch.Tensor:
    """N(x; mean, cov) over the last dim: (…,)."""
    return torch.exp(mvn_logpdf(x, mean, cov))


def conditional_gaussian(
    mean: TensorLike, cov: TensorLike, x: TensorLike
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of p(y | x) for a 2-D Gaussian over (x, y), any covariance.

    With Σ = [[Σxx, Σxy], [Σyx, Σyy]]:
    E[y | x] = μy + Σyx / Σxx · (x − μx) and Var[y | x] = Σyy − Σyx² / Σxx.
    The conditional is the joint's slice at x, p(x, y) as a function of y, divided
    by the marginal p(x) = N(x; μx, Σxx) so that it integrates to 1. For a
    diagonal Σ it does not depend on x. ``mean`` (…, 2), ``cov`` (…, 2, 2) and
    ``x`` (…) broadcast.
    """
    m, c, x = _tensor(mean), _tensor(cov), _tensor(x)
    # promote as whole tensors: m[..., 1] alone is 0-dim and would not lift a float32 x
    dtype = torch.promote_types(torch.promote_types(m.dtype, c.dtype), x.dtype)
    m, c, x = m.to(dtype), c.to(dtype), x.to(dtype)
    if m.ndim == 0 or m.shape[-1] != 2:
        raise ValueError(
            f"conditional_gaussian is for 2-D Gaussians: mean must be (…, 2), got {tuple(m.shape)}"
        )
    cholesky_factor(c)  # checks shape, symmetry and positive definiteness
    if c.shape[-1] != 2:
        raise ValueError(
            f"conditional_gaussian is for 2-D Gaussians: cov must be (…, 2, 2), got {tuple(c.shape)}"
        )
    sxx, syx, syy = c[..., 0, 0], c[..., 1, 0], c[..., 1, 1]
    cond_mean = m[..., 1] + syx / sxx * (x - m[..., 0])
    cond_var = syy - syx**2 / sxx
    # the variance never depends on x, but callers expect one value per x
    cond_mean, cond_var = torch.broadcast_tensors(cond_mean, cond_var)
    return cond_mean, cond_var


# ------------------------------------------------------------------ KL divergences


def kl_categorical(p: TensorLike, q: TensorLike) -> torch.Tensor:
    """D_KL(P ‖ Q) = Σᵢ P(i) ln(P(i) / Q(i)) over the last dim, in nats: (…,).

    Terms with P(i) = 0 count 0 (0 ln 0 = 0); an outcome with P(i) > 0 but
    Q(i) = 0 makes the divergence +inf (Q calls impossible what P does).
    """
    p, q = check_pmf(p, "p"), check_pmf(q, "q")
    # xlogy(a, b) = a·ln b with 0·ln(anything) = 0
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


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


# ------------------------------------------------------- Monte Carlo KL estimators


class MCEstimate(NamedTuple):
    """A Monte Carlo estimate: the sample mean and its standard error (std / √n), same shape."""

    value: torch.Tensor
    stderr: torch.Tensor


def _mc(log_ratio: torch.Tensor, dim: int) -> MCEstimate:
    """KL(P ‖ Q) = E_P[ln p(x) − ln q(x)], estimated by averaging log ratios at x ~ P along ``dim``."""
    n = log_ratio.shape[dim]
    if n < 2:
        raise ValueError(f"a Monte Carlo estimate needs n >= 2 samples, got {n}")
    return MCEstimate(log_ratio.mean(dim), log_ratio.std(dim) / math.sqrt(n))


def kl_categorical_mc(
    p: TensorLike, q: TensorLike, n: int, generator: torch.Generator | None = None
) -> MCEstimate:
    """Monte Carlo D_KL(P ‖ Q) over the last dim: draw i ~ P (:func:`sample_pmf`), average ln P(i)/Q(i)."""
    p, q = check_pmf(p, "p"), check_pmf(q, "q")
    p, q = torch.broadcast_tensors(p, q)
    i = sample_pmf(p, n, generator)  # (…, n)
    log_ratio = torch.log(p.gather(-1, i)) - torch.log(q.gather(-1, i))  # (…, n)
    return _mc(log_ratio, dim=-1)


def kl_gaussian_mc(
    mu_p: TensorLike,
    sigma_p: TensorLike,
    mu_q: TensorLike,
    sigma_q: TensorLike,
    n: int,
    generator: torch.Generator | None = None,
) -> MCEstimate:
    """Monte Carlo D_KL(N(μp, σp²) ‖ N(μq, σq²)) element-wise: x ~ P, average ln p(x) − ln q(x)."""
    mu_p, sigma_p, mu_q, sigma_q = (_tensor(t) for t in (mu_p, sigma_p, mu_q, sigma_q))
    batch = torch.broadcast_shapes(mu_p.shape, sigma_p.shape, mu_q.shape, sigma_q.shape)
    x = sample_gaussian(mu_p, sigma_p, (n, *batch), generator)  # (n, …)
    log_ratio = gaussian_logpdf(x, mu_p, sigma_p) - gaussian_logpdf(x, mu_q, sigma_q)
    return _mc(log_ratio, dim=0)


def kl_vae_mc(
    mu: torch.Tensor, logvar: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> MCEstimate:
    """Monte Carlo estimate of :func:`kl_vae`: z = μ + σ ε (the reparameterisation), average
    ln q(z) − ln N(z; 0, I) summed over the last dim: (…,) in nats."""
    mu, logvar = _tensor(mu), _tensor(logvar)
    std = torch.exp(0.5 * logvar)
    z = sample_gaussian(mu, std, (n, *torch.broadcast_shapes(mu.shape, std.shape)), generator)
    log_ratio = (gaussian_logpdf(z, mu, std) - gaussian_logpdf(z, 0.0, 1.0)).sum(-1)  # (n, …)
    return _mc(log_ratio, dim=0)
