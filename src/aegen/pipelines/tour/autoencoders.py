"""Part I: autoencoders — PCA against an MLP and a convolutional AE at one code size,
denoising (Gaussian noise, input dropout), phased training, and the 3-D plane.

Every comparison gives both sides the same code size and the same optimizer steps
(epochs over the same images); each model's learning rate was chosen on the
validation split for its own reconstruction (docs/tour.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data.loader import to_float
from ...eval.metrics import psnr
from ...models.ae import corrupt
from ...plane import pca_basis, run_plane_demo
from ...viz import latent_scatter, save_grid
from .context import PartResult, Tour

KEY = "autoencoders"
TITLE = "Part I · Autoencoders"
INTRO = (
    "Can we learn interesting, hidden representations from unlabeled data? An encoder squeezes "
    "each image into a short code and a decoder rebuilds the image from it. Here: PCA against an "
    "MLP and a convolutional AE with the same code size, the denoising AE (noise, or a dropout "
    "layer on the input), phased training, and 3-D points that lie near a 2-D plane."
)


@dataclass(frozen=True)
class AEBudget:
    epochs: int  # the MLP AE beside PCA and phased training
    phased_epochs: int  # per layer pair; phased_epochs·pairs + finetune_epochs = epochs
    finetune_epochs: int
    conv_epochs: int  # the conv AE, the denoising AEs, and a plain MLP AE as long beside them
    plane_epochs: int
    minutes: float  # planned, for the time-left line


# an epoch of the conv AE costs many of the MLP AE (the costs per model: docs/tour.md),
# so the quick budget compares it with an MLP AE trained for as many steps
BUDGETS = {
    "tiny": AEBudget(
        4, phased_epochs=1, finetune_epochs=1, conv_epochs=1, plane_epochs=100, minutes=0.2
    ),
    "quick": AEBudget(
        4, phased_epochs=1, finetune_epochs=1, conv_epochs=2, plane_epochs=300, minutes=2.2
    ),
    "full": AEBudget(
        10, phased_epochs=2, finetune_epochs=4, conv_epochs=10, plane_epochs=400, minutes=14.0
    ),
}

CODE_DIM = 32
NOISE = {"gaussian": 0.3, "dropout": 0.5}  # σ of the Gaussian noise; share of pixels dropped
# learning rates picked on the validation split, each model for its own PSNR (docs/tour.md)
MLP = [f"model.code_dim={CODE_DIM}", "train.lr=5e-3", "train.warmup_steps=200"]
CONV = [
    f"model.code_dim={CODE_DIM}",
    "model.full_res_layers=false",
    "train.lr=4e-3",
    "train.warmup_steps=200",
    "train.grad_clip=1.0",
    "train.amp=auto",
    "train.channels_last=true",
]
SCORED = 2000  # test images behind the PCA and noisy-input PSNRs


def conv_run(t: Tour) -> Path:
    """Where Part I keeps the conv AE that the semi-supervised part reuses as its encoder."""
    return t.out / "1-autoencoders" / "ae-conv"


def train_conv(t: Tour) -> tuple[Path, torch.nn.Module]:
    b = BUDGETS[t.budget.name]
    return t.train(conv_run(t).parent, "ae-conv", "ae-conv", CONV, epochs=b.conv_epochs)


def _pca_reconstruct(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Test images (N, 1, 28, 28) rebuilt from their first k principal components."""
    mean, basis = pca_basis(train.flatten(1), k)  # (784,), (784, k)
    flat = (test.flatten(1) - mean) @ basis @ basis.T + mean
    return flat.clamp(0, 1).view_as(test)


def run(t: Tour, d: Path) -> PartResult:
    b, r = BUDGETS[t.budget.name], PartResult()
    data = t.data()
    mlp_dir, mlp = t.train(d, "ae-mlp", "ae-mlp", MLP, epochs=b.epochs)
    conv_dir, conv = train_conv(t)
    if b.conv_epochs == b.epochs:
        same_dir, same = mlp_dir, mlp
    else:
        key = f"ae-mlp-{b.conv_epochs}-epochs"
        same_dir, same = t.train(d, key, "ae-mlp", MLP, epochs=b.conv_epochs)
    dae = {
        kind: t.train(
            d,
            f"ae-mlp-denoising-{kind}",
            "ae-mlp",
            [*MLP, f"model.noise={kind}", f"model.noise_level={level}"],
            epochs=b.conv_epochs,
        )[1]
        for kind, level in NOISE.items()
    }
    phased_dir, _ = t.train(
        d,
        "ae-mlp-phased",
        "ae-mlp",
        MLP,
        epochs=b.phased_epochs,
        phased={"finetune_epochs": b.finetune_epochs},
    )
    rec = {}
    runs = {"mlp": mlp_dir, "conv": conv_dir, "phased": phased_dir, "mlp_at_conv": same_dir}
    for key, run_dir in runs.items():
        rec[key] = t.evaluate(run_dir, ("reconstruction",))["reconstruction"]
        if t.rel(run_dir) not in r.runs:
            r.runs.append(t.rel(run_dir))
        r.metrics[f"{key}_psnr"] = rec[key]["psnr"]
    r.metrics["conv_epochs"] = b.conv_epochs

    x = to_float(data.test.x[:SCORED])
    pca = _pca_reconstruct(to_float(data.train.x), x, CODE_DIM)
    r.metrics.update(code_dim=CODE_DIM, pca_psnr=float(psnr(pca, x).mean()))
    for key, label in (
        ("pca", f"PCA, {CODE_DIM} components"),
        ("mlp", f"MLP AE, {b.epochs} epochs"),
        ("mlp_at_conv", f"MLP AE, {b.conv_epochs} epochs"),
        ("conv", f"conv AE, {b.conv_epochs} epochs"),
    ):
        ssim = f" / SSIM {rec[key]['ssim']:.4f}" if key in rec else ""
        r.numbers.append((f"{label}: test PSNR", f"{r.metrics[f'{key}_psnr']:.2f} dB{ssim}"))
    r.numbers.append(
        (
            f"phased: {b.phased_epochs} epoch(s) per layer pair, then {b.finetune_epochs} end to end",
            f"{r.metrics['phased_psnr']:.2f} dB (end to end, {b.epochs} epochs: {r.metrics['mlp_psnr']:.2f} dB)",
        )
    )
    with torch.no_grad():
        rows = [x[:10], pca[:10], same.reconstruct(x[:10]), conv.reconstruct(x[:10])]
    save_grid(d / "pca_mlp_conv.png", torch.cat(rows), nrow=10)
    m = r.metrics
    r.figures.append(
        (
            t.rel(d / "pca_mlp_conv.png"),
            f"Rows: test images; rebuilt from {CODE_DIM} numbers each by PCA ({m['pca_psnr']:.2f} dB), "
            f"the MLP AE ({m['mlp_at_conv_psnr']:.2f} dB) and the conv AE ({m['conv_psnr']:.2f} dB), "
            f"both after {b.conv_epochs} epochs.",
        )
    )
    scatter = latent_scatter(d / "latent_scatter.png", conv, data)
    r.figures.append(
        (
            t.rel(scatter),
            "The conv AE's codes of the test set, first two principal components, coloured by "
            "class (no label was used in training).",
        )
    )

    # denoising: the same corrupted test images through the plain MLP AE and each denoising AE
    g = torch.Generator().manual_seed(t.seed)
    grid = [x[:10]]
    for kind, level in NOISE.items():
        noisy = corrupt(x, kind, level, g)
        with torch.no_grad():  # the plain AE trained as long as the denoising ones
            plain_out, dae_out = same.reconstruct(noisy), dae[kind].reconstruct(noisy)
        m[f"{kind}_plain_psnr"] = float(psnr(plain_out, x).mean())
        m[f"{kind}_dae_psnr"] = float(psnr(dae_out, x).mean())
        grid += [noisy[:10].clamp(0, 1), plain_out[:10], dae_out[:10]]
        what = (
            f"Gaussian noise σ = {level}"
            if kind == "gaussian"
            else f"{level:.0%} of pixels dropped"
        )
        r.numbers.append(
            (
                f"{what} → clean: plain AE vs denoising AE",
                f"{m[f'{kind}_plain_psnr']:.2f} vs {m[f'{kind}_dae_psnr']:.2f} dB",
            )
        )
    save_grid(d / "denoising.png", torch.cat(grid), nrow=10)
    r.figures.append(
        (
            t.rel(d / "denoising.png"),
            f"Rows: clean test images; with Gaussian noise (σ = {NOISE['gaussian']}), the plain AE's "
            f"output ({m['gaussian_plain_psnr']:.2f} dB), the denoising AE's ({m['gaussian_dae_psnr']:.2f} dB); "
            f"with {NOISE['dropout']:.0%} of pixels dropped, the plain AE's output "
            f"({m['dropout_plain_psnr']:.2f} dB), the input-dropout AE's ({m['dropout_dae_psnr']:.2f} dB).",
        )
    )

    plane = run_plane_demo(d / "plane", epochs=b.plane_epochs, seed=t.seed)
    m["plane_ratio"] = plane["ratio"]
    r.figures.append(
        (
            t.rel(d / "plane" / "plane.png"),
            "3-D points near a plane, and a linear 3→2→3 autoencoder's reconstructions: its test "
            f"error is {plane['ratio']:.4f} × the PCA optimum.",
        )
    )
    r.numbers.append(("plane: linear AE test MSE / PCA optimum", f"{plane['ratio']:.4f}"))
    return r
