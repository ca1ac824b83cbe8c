"""Scores for images in [0, 1]: reconstruction, sample quality, and the metrics.json file.

Reconstruction: MSE (mean over pixels and images), PSNR (per image, peak 1.0,
then averaged: the convention of most image-restoration papers) and SSIM (Wang
et al. 2004, Gaussian window σ = 1.5, per image then averaged).

Samples, all on features of the domain network (:mod:`aegen.eval.features`):
FID and KID through torchmetrics, and precision/recall of the sample manifold
(Kynkäänniemi et al. 2019), and class coverage: the histogram of the domain
network's labels of the samples (:func:`class_coverage`). Features are computed once and handed to
torchmetrics through an identity "feature module", so FID, KID and
precision/recall see the very same vectors.

``metrics.json`` holds one section per kind of score; :data:`SCHEMA` says which
keys each section must have, and :func:`check_metrics` enforces it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import Split
from ..data.loader import to_float
from ..errors import CheckpointError
from ..files import atomic_write_json

__all__ = [
    "SCHEMA",
    "check_metrics",
    "class_coverage",
    "frechet_distance",
    "kernel_distance",
    "knn_radii",
    "mse_per_image",
    "precision_recall",
    "psnr",
    "read_metrics_json",
    "reconstruction_metrics",
    "ssim",
    "update_metrics_json",
]

METRICS_JSON = "metrics.json"


def read_metrics_json(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json`` (empty when there is none yet, or it is not JSON: it is
    written again whole).

    A metrics.json that is valid JSON but not an object, or a directory in its place, is
    refused (CheckpointError): merging into it would fail after the work was done, or
    write over what someone put there.
    """
    p = Path(run_dir) / METRICS_JSON
    if p.exists() and not p.is_file():
        raise CheckpointError(f"{p} is not a file; move it away")
    if not p.is_file():
        return {}
    try:
        metrics = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{p}: expected a JSON object, got {type(metrics).__name__}")
    return metrics


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


def _gaussian_taps(size: int, sigma: float) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian weights, float64."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """(B,) structural similarity of each image pair (B, 1, H, W), in [-1, 1]; 1 when equal.

    Local means, variances and covariance come from a Gaussian window (σ = 1.5,
    11×11) applied where it fits inside the image ("valid"), and the SSIM map is
    averaged over those positions; the same numbers as scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``. Float64 throughout.
    """
    x, y = x.double(), y.double()
    if x.ndim == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    g = _gaussian_taps(win_size, sigma).to(x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5, H, W)
    # the 2-D Gaussian is separable: filter the columns, then the rows
    m = F.conv2d(stacked, g.view(1, 1, -1, 1).expand(5, 1, -1, 1), groups=5)  # (B, 5, H-10, W)
    m = F.conv2d(m, g.view(1, 1, 1, -1).expand(5, 1, 1, -1), groups=5)  # (B, 5, H-10, W-10)
    mx, my, exx, eyy, exy = m.unbind(1)
    vx, vy, cxy = exx - mx * mx, eyy - my * my, exy - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def reconstruction_metrics(
    model: torch.nn.Module,
    split: Split,
    batch_size: int = 1000,
    corrupt_fn=None,
    with_ssim: bool = False,
) -> dict[str, float]:
    """Test MSE and mean PSNR (and mean SSIM) of ``model.reconstruct`` over ``split``.

    ``corrupt_fn(x)`` corrupts the inputs (the target stays clean): how a
    denoising autoencoder is judged.
    """
    model.eval()
    se, ps, ss, n = 0.0, 0.0, 0.0, 0
    for start in range(0, len(split), batch_size):
        x = to_float(split.x[start : start + batch_size])
        inp = corrupt_fn(x) if corrupt_fn is not None else x
        r = model.reconstruct(inp)
        se += mse_per_image(r, x).sum().item()
        ps += psnr(r, x).sum().item()
        if with_ssim:
            ss += ssim(r, x).sum().item()
        n += x.shape[0]
    out = {"mse": se / n, "psnr": ps / n}
    if with_ssim:
        out["ssim"] = ss / n
    return out


# --------------------------------------------------------------------------- sample scores


class _GivenFeatures(nn.Module):
    """The identity, as torchmetrics' "feature module": the features are already computed."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _check_features(real: torch.Tensor, fake: torch.Tensor, least: int = 2) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be (N, F) with equal F, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if min(real.shape[0], fake.shape[0]) < least:
        raise ValueError(f"need at least {least} feature vectors on each side")


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID: the Fréchet distance between Gaussians fitted to two feature sets (N, F) and (M, F).

    ``‖μr − μf‖² + tr(Σr + Σf − 2 (Σr Σf)^½)``, computed by torchmetrics in float64.
    It is biased upwards for small N; compare FIDs at equal sample counts only.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_features(real, fake)
    metric = FrechetInceptionDistance(feature=_GivenFeatures(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and spread of the unbiased MMD² with the cubic polynomial kernel over subsets.

    Kernel ``(f·g / F + 1)³``; ``subsets`` random subsets of ``min(subset_size, N // 2, M // 2)``
    vectors on each side (at most half of each set, so that the subsets differ and the
    spread says something; a subset as large as its set is that set every time and its
    spread is rounding noise), drawn from a generator seeded with ``seed`` (torchmetrics
    draws them from the global RNG, which is saved and restored around it). Unlike
    FID it is unbiased, so it can be compared across sample counts and can be
    slightly negative for equal distributions.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_features(real, fake)
    size = max(2, min(subset_size, real.shape[0] // 2, fake.shape[0] // 2))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=_GivenFeatures(real.shape[1]), subsets=subsets, subset_size=size
        )
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _pairwise_chunks(a: torch.Tensor, b: torch.Tensor, chunk: int):
    """Yield (start, distances (c, M)) for row chunks of ``a`` against all of ``b``."""
    for s in range(0, a.shape[0], chunk):
        yield s, torch.cdist(a[s : s + chunk], b)


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 1000) -> torch.Tensor:
    """(N,) distance from each vector to its k-th nearest neighbour among the others."""
    if not 1 <= k < features.shape[0]:
        raise ValueError(f"k must be in [1, {features.shape[0] - 1}], got {k}")
    out = torch.empty(features.shape[0], dtype=features.dtype)
    for s, d in _pairwise_chunks(features, features, chunk):
        # the k+1 smallest include the vector itself at distance 0
        out[s : s + d.shape[0]] = d.topk(k + 1, dim=1, largest=False).values[:, -1]
    return out


def _inside(
    query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int
) -> torch.Tensor:
    """(Q,) whether each query vector lies in at least one ball (centre, radius)."""
    out = torch.empty(query.shape[0], dtype=torch.bool)
    for s, d in _pairwise_chunks(query, centres, chunk):
        out[s : s + d.shape[0]] = (d <= radii[None, :]).any(1)
    return out


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of samples against real data.

    Each set's manifold is the union of balls around its vectors reaching their
    k-th nearest neighbour. Precision: the fraction of samples inside the real
    manifold (are samples realistic?). Recall: the fraction of real vectors inside
    the sample manifold (is all of the data covered?).
    """
    _check_features(real, fake, least=k + 1)
    real, fake = real.double(), fake.double()
    precision = _inside(fake, real, knn_radii(real, k, chunk), chunk).double().mean()
    recall = _inside(real, fake, knn_radii(fake, k, chunk), chunk).double().mean()
    return float(precision), float(recall)


def class_coverage(
    predicted: torch.Tensor, num_classes: int, min_share: float | None = None
) -> dict[str, Any]:
    """How evenly samples spread over the classes a classifier sees in them (mode coverage).

    ``predicted`` (N,) are class indices (the domain network's labels of N samples).
    Returns the histogram (counts per class), ``covered``: the fraction of classes
    holding at least ``min_share`` of the samples (default half a fair share,
    1 / (2K)), and the histogram's entropy in nats (log K for a uniform spread,
    0 when every sample is one class: a collapsed generator).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if predicted.numel() == 0:
        raise ValueError("class coverage needs at least one sample")
    threshold = 0.5 / num_classes if min_share is None else float(min_share)
    counts = torch.bincount(predicted.long().flatten(), minlength=num_classes).double()
    share = counts / counts.sum()
    nz = share[share > 0]
    return {
        "histogram": [int(c) for c in counts.tolist()],
        "covered": float((share >= threshold).double().mean()),
        "min_share": threshold,
        "entropy_nats": float(-(nz * nz.log()).sum()),
        "max_entropy_nats": float(torch.log(torch.tensor(float(num_classes), dtype=torch.float64))),
    }


# --------------------------------------------------------------------------- metrics.json schema

# section → {key: type} it must have; OPTIONAL: keys that, when present, must have the type.
_NUM = (int, float)
SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "reconstruction": {"mse": _NUM, "psnr": _NUM, "split": str, "n": int},
    "samples": {
        "fid": _NUM,
        "kid_mean": _NUM,
        "kid_std": _NUM,
        "precision": _NUM,
        "recall": _NUM,
        "k": int,
        "n_samples": int,
        "n_real": int,
        "seed": int,
        "features": dict,
    },
    "likelihood": {"n": int},
    "eval": {"aegen_version": str, "seed": int, "data": dict},
    "class_accuracy": {
        "per_class": list,
        "mean": _NUM,
        "n_per_class": int,
        "test_accuracy": _NUM,
        "features": dict,
    },
}
# a VQ-VAE's own test reconstructions, scored as samples (aegen pipeline vqvae)
SCHEMA["ceiling"] = SCHEMA["samples"]
OPTIONAL: dict[str, dict[str, type | tuple[type, ...]]] = {
    "reconstruction": {"ssim": _NUM},
    "samples": {"class_coverage": dict},
    "ceiling": {"class_coverage": dict},
    "likelihood": {"nll_nats": _NUM, "bits_per_dim": _NUM, "bits_per_code": _NUM},
}
# a likelihood section says at least one of these (a prior's is in bits per code)
_LIKELIHOOD_KEYS = ("nll_nats", "bits_per_dim", "bits_per_code")


def _check_type(where: str, section: str, key: str, value: Any, kind: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CheckpointError(f"{where}: {section}.{key} has the wrong type ({value!r})")


def check_metrics(metrics: Any, where: str = METRICS_JSON) -> dict[str, Any]:
    """Return ``metrics`` if it follows :data:`SCHEMA`, else raise CheckpointError naming the key.

    Unknown sections and extra keys are allowed (other tools may add their own);
    a known section must have its keys, with the right types, and sample scores
    must name the feature network they were measured with.
    """
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{where}: expected a JSON object")
    for section, keys in SCHEMA.items():
        if section not in metrics:
            continue
        body = metrics[section]
        if not isinstance(body, dict):
            raise CheckpointError(f"{where}: section {section!r} is not an object")
        for key, kind in keys.items():
            if key not in body:
                raise CheckpointError(f"{where}: {section}.{key} is missing")
            _check_type(where, section, key, body[key], kind)
        for key, kind in OPTIONAL.get(section, {}).items():
            if key in body:
                _check_type(where, section, key, body[key], kind)
    if "likelihood" in metrics and not any(k in metrics["likelihood"] for k in _LIKELIHOOD_KEYS):
        raise CheckpointError(f"{where}: likelihood has none of {', '.join(_LIKELIHOOD_KEYS)}")
    for section in ("samples", "ceiling"):
        sha = metrics.get(section, {}).get("features", {}).get("sha256")
        if section in metrics and not isinstance(sha, str):
            raise CheckpointError(f"{where}: {section}.features.sha256 is missing")
    return metrics
