"""``aegen sample RUN_DIR --n N --out FILE.png``: new images from any run that samples."""

from __future__ import annotations

import argparse

import torch

from ..errors import UserError
from ..models.abilities import Samples
from ..registry import available, entry
from ..viz import save_grid
from ._common import load_model, output_file
from .argtypes import nonneg_int, positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw new images from a trained generative model (VAE, GAN, …)",
        description="Draw images from a run whose model samples (a VAE decodes z ~ N(0, T²I), "
        "a GAN generates from z ~ N(0, T²I)) and save them as a PNG grid. A temperature "
        "below 1 trades variety for typical-looking images.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of a model that samples")
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    model = load_model(args.run_dir)
    if getattr(model, "family", None) == "prior" or not isinstance(model, Samples):
        what = getattr(model, "registry_name", type(model).__name__)
        samplers = [n for n in available("model") if issubclass(entry(n).cls, Samples)]
        raise UserError(
            f"{args.run_dir}: a {what} run does not sample images; choose a run of "
            f"{', '.join(samplers)} (a VQ-VAE prior's images come from 'aegen generate')"
        )
    g = torch.Generator().manual_seed(args.seed)
    kw = {} if args.temperature == 1.0 else {"temperature": args.temperature}
    images = model.sample(args.n, generator=g, **kw)
    save_grid(out, images, nrow=args.nrow)
    print(f"wrote {out} ({args.n} samples, temperature {args.temperature:g}, seed {args.seed})")
    return 0
