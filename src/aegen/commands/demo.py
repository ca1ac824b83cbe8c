"""``aegen demo``: the first thing to run — a convolutional AE on Fashion-MNIST in about 3 minutes.

``aegen demo plane`` shows the lecture's opening intuition instead: 3-D points
on a 2-D plane, found by a linear autoencoder as well as PCA finds it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..runs import finish_run, make_run_config, train_run
from ..viz import latent_scatter, plot_curves
from ._common import add_data_args
from .argtypes import positive_int

# A small, fast configuration: bf16 autocast and channels_last are what make it fit
# in about three minutes on two CPU cores (see docs/performance.md).
DEMO_MODEL = "ae-conv"
DEMO_OVERRIDES = [
    "model.code_dim=16",
    "train.amp=auto",
    "train.channels_last=true",
    "train.lr=2e-3",
]
DEMO_EPOCHS = 3


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small convolutional AE on Fashion-MNIST (or: demo plane)",
        description="Train a small convolutional autoencoder and write reconstructions, a latent "
        "scatter, metrics and the checkpoint. 'aegen demo plane' shows a linear AE finding "
        "the 2-D plane that 3-D points lie on.",
    )
    p.add_argument(
        "which",
        nargs="?",
        choices=["ae", "plane"],
        default="ae",
        help="ae (default): conv AE on images; plane: the 3-D plane example",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run directory (default: runs/demo-<time> or runs/plane-<time>)",
    )
    p.add_argument("--epochs", type=positive_int, default=None)
    add_data_args(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.which == "plane":
        from ..plane import run_plane_demo

        out = Path(args.out or f"runs/plane-{stamp}")
        result = run_plane_demo(out, epochs=args.epochs or 200, progress=not args.quiet)
        print(
            f"linear AE test MSE {result['ae_test_mse']:.5f} vs PCA optimum {result['pca_test_mse']:.5f} "
            f"(ratio {result['ratio']:.4f})"
        )
        print(f"figure: {out / 'plane.png'}")
        return 0

    out = Path(args.out or f"runs/demo-{stamp}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose another --out")
    cfg = make_run_config(
        DEMO_MODEL,
        data=args.data,
        overrides=DEMO_OVERRIDES,
        epochs=args.epochs or DEMO_EPOCHS,
        limit=args.limit,
        data_dir=args.data_dir,
    )
    t0 = time.perf_counter()
    trained = train_run(cfg, out, progress=not args.quiet)
    summary = finish_run(trained)
    samples = out / "samples"
    latent_scatter(samples / "latent_scatter.png", trained.model, trained.data)
    plot_curves(
        samples / "loss.png",
        trained.result.history,
        ["train_loss", "val_loss"],
        title="reconstruction loss (MSE)",
        logy=True,
    )
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"\ntrained {DEMO_MODEL} on {trained.data.name} in {minutes:.1f} min; run directory: {out}"
    )
    for name in ("reconstructions.png", "latent_scatter.png", "loss.png"):
        print(f"  {samples / name}")
    print(f"  {out / 'metrics.csv'}\n  {out / 'model.safetensors'}")
    print(
        f"test MSE {summary['test_mse']:.5f}, PSNR {summary['test_psnr']:.2f} dB", file=sys.stdout
    )
    return 0
