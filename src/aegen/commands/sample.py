"""``aegen sample RUN_DIR --n N --out FILE.png``: new images from a VAE's prior.

On an M2 run (``aegen classify … --mode m2``) ``--label C`` draws class C, and
``--every-class`` draws styles and decodes each of them as every class.
"""

from __future__ import annotations

import argparse

import torch

from ..errors import UserError
from ..models.m2 import M2, style_grid
from ..viz import save_grid
from ._common import load_model, output_file
from .argtypes import nonneg_int, positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw new images from a trained VAE (decoder means at z ~ N(0, T²I))",
        description="Decode latents drawn from the prior N(0, T²I) of a VAE run and save them "
        "as a PNG grid. A temperature below 1 trades variety for typical-looking images.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a VAE run directory (vae-mlp, vae-conv)")
    p.add_argument("--n", type=positive_int, default=100, help="number of images (default 100)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument(
        "--temperature",
        type=positive_float,
        default=1.0,
        metavar="T",
        help="standard deviation of the latent draws (default 1: the prior)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--nrow", type=positive_int, default=10, help="images per row (default 10)")
    p.add_argument(
        "--label", type=nonneg_int, default=None, metavar="C", help="m2 runs: draw class C"
    )
    p.add_argument(
        "--every-class",
        action="store_true",
        help="m2 runs: one row per style (N / classes of them), one column per class",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    model = load_model(args.run_dir, family=("vae", M2.family))
    g = torch.Generator().manual_seed(args.seed)
    nrow = args.nrow
    if not isinstance(model, M2):
        if args.label is not None or args.every_class:
            raise UserError("--label and --every-class need an m2 run (aegen classify --mode m2)")
        images = model.sample(args.n, generator=g, temperature=args.temperature)
    elif args.every_class:
        k = model.config.num_classes
        images = style_grid(model, max(1, args.n // k), generator=g, temperature=args.temperature)
        nrow = k
    else:
        if args.label is not None and args.label >= model.config.num_classes:
            raise UserError(f"--label must be below {model.config.num_classes}, got {args.label}")
        images = model.sample(args.n, g, args.temperature, label=args.label)
    save_grid(out, images, nrow=nrow)
    print(f"wrote {out} ({args.n} samples, temperature {args.temperature:g}, seed {args.seed})")
    return 0
