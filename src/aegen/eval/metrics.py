"""Reconstruction metrics on images in [0, 1].

PSNR is computed per image (peak 1.0) and then averaged, the convention of most
image-restoration papers; MSE is the mean over pixels and images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data.datasets import Split
from ..data.loader import to_float
from ..files import atomic_write_json

__all__ = [
    "mse_per_image",
    "psnr",
    "read_metrics_json",
    "reconstruction_metrics",
    "update_metrics_json",
]

METRICS_JSON = "metrics.json"


def read_metrics_json(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json`` (empty when there is none yet)."""
    p = Path(run_dir) / METRICS_JSON
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def update_metrics_json(run_dir: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` (top-level sections) into the run's ``metrics.json``, atomically."""
    metrics = {**read_metrics_json(run_dir), **updates}
    atomic_write_json(Path(run_dir) / METRICS_JSON, metrics)
    return metrics


def mse_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared error of each image pair."""
    return (x.float() - y.float()).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0, eps: float = 1e-12) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB of each image pair."""
    return 10.0 * torch.log10(peak**2 / mse_per_image(x, y).clamp_min(eps))


@torch.no_grad()
def reconstruction_metrics(
    model: torch.nn.Module,
    split: Split,
    batch_size: int = 1000,
    corrupt_fn=None,
) -> dict[str, float]:
    """Test MSE and mean PSNR of ``model.reconstruct`` over ``split``.

    ``corrupt_fn(x)`` corrupts the inputs (the target stays clean): how a
    denoising autoencoder is judged.
    """
    model.eval()
    se, ps, n = 0.0, 0.0, 0
    for start in range(0, len(split), batch_size):
        x = to_float(split.x[start : start + batch_size])
        inp = corrupt_fn(x) if corrupt_fn is not None else x
        r = model.reconstruct(inp)
        se += mse_per_image(r, x).sum().item()
        ps += psnr(r, x).sum().item()
        n += x.shape[0]
    return {"mse": se / n, "psnr": ps / n}
