"""A VAE's failure modes as numbers and pictures.

- **likelihood**: test ELBO and an importance-weighted (IWAE, k samples) estimate
  of log p(x), as NLL in nats per image and in bits per dimension (pixel);
- **posterior collapse**: active units — latent dims whose posterior mean moves
  with the input, Cov_x(E_q[z|x]) > 0.01 (Burda et al. 2016) — the KL per latent
  dimension (a bar chart), and a warning when most units are inactive;
- **blur / loss of detail**: a sharpness score, the variance of the Laplacian,
  of samples and reconstructions against the data (a ratio well below 1 is blur);
- for a 2-D latent, the manifold grid over the prior's quantiles and the test
  set's μ scattered by class.

:func:`write_vae_report` puts the numbers into the run's ``metrics.json``
(section ``"vae"``, and the IWAE NLL as the ``"likelihood"`` section that
``aegen eval`` also writes and ``aegen report`` compares) and the pictures into
``samples/``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.datasets import Dataset, Split
from ..data.loader import to_float
from ..files import ensure_dir
from ..latent import prior_quantile_grid
from ..prob import kl_vae
from .metrics import update_metrics_json

__all__ = [
    "ACTIVE_THRESHOLD",
    "active_units",
    "laplacian_variance",
    "likelihood_section",
    "plot_kl_per_dim",
    "vae_diagnostics",
    "write_vae_report",
]

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016: a unit is active if Cov_x(E[z_j|x]) > 0.01
NLL_K = 100  # importance samples for the test NLL
NLL_IMAGES: int | None = None  # test images the IWAE NLL averages over (None: all of them)
SHARPNESS_IMAGES = 1000
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """(N,) variance of the 3×3 Laplacian of each image (N, 1, H, W) in [0, 1].

    The classic focus measure (Pech-Pacheco et al. 2000): edges and texture give
    a large second derivative, blur flattens it. Valid convolution, so the border
    adds nothing.
    """
    lap = F.conv2d(images.float(), _LAPLACIAN.to(images.device))  # (N, 1, H-2, W-2)
    return lap.flatten(1).var(1)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> torch.Tensor:
    """(D,) bool: which latent dims are active, Var over images of μ_j (μ: (N, D)) > threshold."""
    return mu.var(0) > threshold


@torch.no_grad()
def vae_diagnostics(
    model: Any,
    split: Split,
    k: int = NLL_K,
    nll_images: int | None = NLL_IMAGES,
    sharpness_images: int = SHARPNESS_IMAGES,
    seed: int = 0,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Every VAE diagnostic on ``split`` (usually the test set), as a JSON-ready dict.

    All log-likelihoods are per image in nats; bits/dim divides by 784·ln 2.
    ``seed`` fixes the Monte Carlo draws, so the same model gives the same numbers.
    """
    model.eval()
    dev = next(model.parameters()).device  # the trained model may still be on a GPU
    g = torch.Generator().manual_seed(seed)
    n = len(split)
    mus, kl_dims, elbos, recons = [], [], [], []
    for start in range(0, n, batch_size):
        x = to_float(split.x[start : start + batch_size].to(dev))
        mu, logvar = (t.float() for t in model.encoder_params(x))  # (B, D)
        mus.append(mu)
        kl_dims.append(kl_vae(mu.unsqueeze(-1), logvar.unsqueeze(-1)))  # (B, D)
        elbo = model.elbo(x, generator=g)  # (B,)
        elbos.append(elbo)
        recons.append(-(elbo + kl_vae(mu, logvar)))  # −log p(x|z), one sample
    mu = torch.cat(mus)  # (N, D)
    kl_dim = torch.cat(kl_dims).mean(0)  # (D,) nats, mean over images
    active = active_units(mu)
    d = mu.shape[1]
    elbo_all = torch.cat(elbos)  # (N,)
    elbo = elbo_all.mean().item()

    m = n if nll_images is None else min(n, nll_images)
    ll = torch.cat(
        [
            model.log_likelihood(
                to_float(split.x[s : min(m, s + batch_size)].to(dev)), k=k, generator=g
            )
            for s in range(0, m, batch_size)
        ]
    )
    nll = -ll.mean().item()
    pixels = split.x[0].numel()

    s = min(n, sharpness_images)
    data_x = to_float(split.x[:s].to(dev))
    sharp_data = laplacian_variance(data_x).mean().item()
    sharp_samples = laplacian_variance(model.sample(s, generator=g)).mean().item()
    sharp_recon = laplacian_variance(model.reconstruct(data_x)).mean().item()

    n_active = int(active.sum())
    collapse = n_active < d / 2
    warnings = []
    if collapse:
        warnings.append(
            f"posterior collapse: only {n_active} of {d} latent units are active "
            f"(Cov_x E[z|x] > {ACTIVE_THRESHOLD}); the decoder ignores the rest. "
            "Try a smaller model.beta, KL warm-up (model.kl_warmup) or model.free_bits."
        )
    return {
        "split_images": n,
        "latent_dim": d,
        "active_units": n_active,
        "active_threshold": ACTIVE_THRESHOLD,
        "active": [bool(a) for a in active],
        "mu_variance": [float(v) for v in mu.var(0)],
        "kl_per_dim": [float(v) for v in kl_dim],
        "kl": float(kl_dim.sum()),
        "recon": torch.cat(recons).mean().item(),
        "elbo": elbo,
        "nelbo": -elbo,
        "nll": nll,
        "nll_bits_per_dim": nll / (pixels * math.log(2)),
        "nll_k": k,
        "nll_images": m,
        "elbo_nll_images": elbo_all[:m].mean().item(),  # the ELBO on the images the NLL used
        "sharpness": {
            "data": sharp_data,
            "samples": sharp_samples,
            "reconstructions": sharp_recon,
            "samples_vs_data": sharp_samples / sharp_data if sharp_data else float("nan"),
            "reconstructions_vs_data": sharp_recon / sharp_data if sharp_data else float("nan"),
            "images": s,
        },
        "posterior_collapse": collapse,
        "warnings": warnings,
    }


def likelihood_section(diag: dict[str, Any], data: Dataset, seed: int = 0) -> dict[str, Any]:
    """The ``metrics.json`` "likelihood" section that ``aegen eval`` writes and ``aegen report``
    compares, from :func:`vae_diagnostics`: the IWAE NLL in nats per image and bits/dim, on
    ``n`` test images with ``importance_samples`` draws each (the test ELBO alongside)."""
    return {
        "nll_nats": diag["nll"],
        "bits_per_dim": diag["nll_bits_per_dim"],
        "elbo_nats": diag["elbo_nll_images"],
        "n": diag["nll_images"],
        "importance_samples": diag["nll_k"],
        "seed": seed,
        "split": "test",
        "data": {
            "name": data.name,
            "fingerprint": data.fingerprint(),
            "test_images": len(data.test),
        },
    }


def plot_kl_per_dim(
    path: str | Path, kl_per_dim: list[float], active: list[bool], free_bits: float = 0.0
) -> Path:
    """Bar chart of the mean KL (nats) of each latent dim; inactive dims in grey."""
    from ..viz import TAB, bar_chart

    return bar_chart(
        path,
        kl_per_dim,
        [TAB["blue"] if a else TAB["gray"] for a in active],
        f"KL per latent dim: {sum(active)} of {len(active)} active (grey: inactive)",
        "latent dimension",
        "KL (nats)",
        hline=free_bits if free_bits > 0 else None,
        hline_label=f"free bits λ = {free_bits}",
    )


@torch.no_grad()
def write_latent_pictures(
    model: Any, data: Dataset, samples_dir: Path, grid: int = 20
) -> list[Path]:
    """For a 2-D latent: the decoded quantile grid and the test set's μ coloured by class."""
    from ..viz import save_grid, scatter_2d

    if model.config.latent_dim != 2:
        return []
    dev = next(model.parameters()).device
    z = prior_quantile_grid(grid).to(dev)
    manifold = save_grid(samples_dir / "manifold.png", model.decode(z), nrow=grid, scale=1)
    x = data.test.x
    mu = torch.cat(
        [model.encode(to_float(x[s : s + 1000].to(dev))).cpu() for s in range(0, len(x), 1000)]
    )
    scatter = scatter_2d(
        samples_dir / "latent_scatter.png",
        mu,
        data.test.y,
        data.classes,
        "test set: posterior means μ in the 2-D latent",
    )
    return [manifold, scatter]


def write_vae_report(
    model: Any,
    data: Dataset,
    run_dir: str | Path,
    k: int = NLL_K,
    nll_images: int | None = NLL_IMAGES,
) -> dict[str, float]:
    """Diagnostics on the test set into ``metrics.json`` ("vae") and pictures into ``samples/``.

    Prints the collapse warning on stderr when it fires. Returns the headline
    numbers (test ELBO, NLL, bits/dim, active units) for the caller to print.
    """
    out = Path(run_dir)
    samples = ensure_dir(out / "samples")
    diag = vae_diagnostics(model, data.test, k=k, nll_images=nll_images)
    diag["split"] = "test"
    update_metrics_json(out, {"vae": diag, "likelihood": likelihood_section(diag, data)})
    plot_kl_per_dim(
        samples / "kl_per_dim.png",
        diag["kl_per_dim"],
        diag["active"],
        getattr(model.config, "free_bits", 0.0),
    )
    write_latent_pictures(model, data, samples)
    for w in diag["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return {
        "test_elbo": diag["elbo"],
        "test_nll": diag["nll"],
        "test_bits_per_dim": diag["nll_bits_per_dim"],
        "active_units": float(diag["active_units"]),
    }
