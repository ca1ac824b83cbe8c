"""The lecture's first intuition: data in 3-D that lies (nearly) on a 2-D plane.

A linear autoencoder 3 → 2 → 3 trained with squared error learns the same
subspace as PCA (Baldi & Hornik, 1989), so its reconstruction error can reach,
but never beat, the error of projecting onto the top two principal components.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import TrainConfig
from .data.datasets import Dataset, Split
from .registry import build_model
from .train import Trainer, seed_everything

__all__ = [
    "make_plane_data",
    "pca_basis",
    "pca_reconstruction_mse",
    "plane_figure",
    "run_plane_demo",
]


def make_plane_data(n: int = 3000, noise: float = 0.05, seed: int = 0) -> Dataset:
    """Points a·u + b·v + c + noise in 3-D: a tilted plane with spread 2:1 and small normal noise."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    u, v, normal = basis[:, 0], basis[:, 1], basis[:, 2]
    coeffs = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [2.0, 1.0], dtype=torch.float64
    )
    offset = torch.tensor([1.0, -0.5, 0.5], dtype=torch.float64)
    pts = (
        coeffs[:, :1] * u
        + coeffs[:, 1:] * v
        + offset
        + noise * torch.randn(n, 1, generator=g, dtype=torch.float64) * normal
    )
    x = pts.float()
    y = torch.zeros(n, dtype=torch.int64)
    n_val, n_test = n // 10, n // 5
    return Dataset(
        name="plane",
        train=Split(x[n_val + n_test :], y[n_val + n_test :]),
        val=Split(x[:n_val], y[:n_val]),
        test=Split(x[n_val : n_val + n_test], y[n_val : n_val + n_test]),
        classes=["point"],
        source="generated in code",
    )


def pca_basis(train: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (D,) and the top-k principal directions (D, k) of rows ``train`` (N, D)."""
    mean = train.double().mean(0)
    _, _, vt = torch.linalg.svd(train.double() - mean, full_matrices=False)
    return mean.to(train.dtype), vt[:k].T.to(train.dtype)


def pca_reconstruction_mse(train: torch.Tensor, test: torch.Tensor, k: int) -> float:
    """Mean squared error per coordinate of projecting ``test`` onto ``train``'s top-k PCs."""
    mean, basis = pca_basis(train.double(), k)
    recon = (test.double() - mean) @ basis @ basis.T + mean
    return float((recon - test.double()).pow(2).mean())


def plane_figure(path: str | Path, points: torch.Tensor, recon: torch.Tensor, model) -> Path:
    """3-D scatter: the points, the plane the AE decodes its 2-D code space to, and reconstructions."""
    from .viz import figure, save_figure

    fig = figure(11, 5)
    p = points.numpy()
    r = recon.numpy()
    with torch.no_grad():
        z = model.encode(points)
        lo, hi = z.min(0).values, z.max(0).values
        a, b = torch.meshgrid(
            torch.linspace(lo[0], hi[0], 12), torch.linspace(lo[1], hi[1], 12), indexing="ij"
        )
        surf = model.decode(torch.stack([a.flatten(), b.flatten()], 1)).reshape(12, 12, 3).numpy()
    for i, (title, show_recon) in enumerate(
        [
            ("3-D points and the learned plane", False),
            ("reconstructions: points projected onto it", True),
        ]
    ):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=3, alpha=0.35, color="tab:blue", label="data")
        ax.plot_surface(surf[..., 0], surf[..., 1], surf[..., 2], alpha=0.25, color="tab:orange")
        if show_recon:
            ax.scatter(r[:, 0], r[:, 1], r[:, 2], s=3, color="tab:red", label="reconstruction")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def run_plane_demo(
    out_dir: str | Path | None = None, epochs: int = 200, seed: int = 0, progress: bool = False
) -> dict[str, float]:
    """Train the linear 3 → 2 → 3 AE and compare its test MSE with the PCA optimum."""
    data = make_plane_data(seed=seed)
    seed_everything(seed)
    model = build_model(
        "ae-mlp", input_dim=3, hidden=(), code_dim=2, linear=True, output="linear", recon_loss="mse"
    )
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=3e-2, schedule="cosine", seed=seed)
    Trainer(model, cfg, None, progress=progress).fit(data)
    model.eval()
    with torch.no_grad():
        recon = model(data.test.x)
    ae_mse = float((recon.double() - data.test.x.double()).pow(2).mean())
    pca_mse = pca_reconstruction_mse(data.train.x, data.test.x, 2)
    result = {"ae_test_mse": ae_mse, "pca_test_mse": pca_mse, "ratio": ae_mse / pca_mse}
    if out_dir is not None:
        from .files import atomic_write_json, ensure_dir

        out = ensure_dir(out_dir)
        plane_figure(out / "plane.png", data.test.x, recon, model)
        atomic_write_json(out / "plane.json", result)
    return result
