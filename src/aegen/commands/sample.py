"""``aegen sample RUN_DIR --n N --out FILE.png``: new images from any model that samples."""

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
        help="draw new images from a trained generative model (a VAE, a flow, …)",
        description="Draw images from a run whose model samples (a VAE decodes z ~ N(0, T²I); "
        "a flow inverts ε ~ N(0, T²I)) and save them as a PNG grid. A temperature below 1 "
        "trades variety for typical-looking images.",
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help=f"a run of a model that samples ({', '.join(samplers())})",
    )
    p.add_argument("--n", type=positive_int, default=100, help="number of images (default 100)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument(
        "--temperature",
        type=positive_float,
        default=1.0,
        metavar="T",
        help="standard deviation of the latent draws (default 1: the model itself)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--nrow", type=positive_int, default=10, help="images per row (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    model = load_model(args.run_dir)
    if not isinstance(model, Samples):
        raise UserError(
            f"{args.run_dir}: is a {model.family} run ({model.registry_name}), which does not "
            f"sample; this needs a run of {', '.join(samplers())}"
        )
    g = torch.Generator().manual_seed(args.seed)
    kw = {} if args.temperature == 1.0 else {"temperature": args.temperature}
    images = model.sample(args.n, generator=g, **kw)
    save_grid(out, images, nrow=args.nrow)
    print(f"wrote {out} ({args.n} samples, temperature {args.temperature:g}, seed {args.seed})")
    return 0


def samplers() -> list[str]:
    """Registered models whose class samples (priors sample through ``aegen generate``)."""
    return [n for n in available("model") if callable(getattr(entry(n).cls, "sample", None))]
