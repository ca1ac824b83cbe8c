"""``aegen sample RUN_DIR --n N --out FILE.png``: new images from any model that samples.

Options a model's ``sample`` takes (``--label`` for class-conditional models) are
passed only to models that take them; asked of another model they are an error.
On an M2 run (``aegen classify … --mode m2``) ``--every-class`` draws styles and
decodes each of them as every class.
"""

from __future__ import annotations

import argparse
import inspect

import torch

from ..errors import UserError
from ..models.abilities import Samples
from ..models.m2 import M2, style_grid
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
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run of a model that samples")
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
    p.add_argument(
        "--label",
        type=nonneg_int,
        default=None,
        metavar="C",
        help="class-conditional models: class C",
    )
    p.add_argument(
        "--every-class",
        action="store_true",
        help="m2 runs: one row per style (N / classes of them), one column per class",
    )
    p.set_defaults(func=run)


def samplers() -> list[str]:
    """Registered models whose class samples (priors sample through ``aegen generate``)."""
    return [n for n in available("model") if callable(getattr(entry(n).cls, "sample", None))]


def sample_options(model: torch.nn.Module, asked: dict[str, object]) -> dict[str, object]:
    """The options in ``asked`` (flag name → value, None: not given) as keywords of
    ``model.sample``; one the model's ``sample`` does not take is a UserError."""
    takes = inspect.signature(model.sample).parameters
    kw = {}
    for flag, value in asked.items():
        if value is None:
            continue
        name = flag.lstrip("-").replace("-", "_")
        if name not in takes:
            raise UserError(f"{flag} does not apply to a {model.registry_name} run")
        kw[name] = value
    return kw


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    model = load_model(args.run_dir)
    if not isinstance(model, Samples):
        raise UserError(
            f"{args.run_dir}: is a {model.family} run ({model.registry_name}), which does not "
            f"sample; this needs a run of {', '.join(samplers())}"
        )
    g = torch.Generator().manual_seed(args.seed)
    nrow = args.nrow
    n_classes = getattr(model.config, "num_classes", None)
    if args.label is not None and n_classes and args.label >= n_classes:
        raise UserError(f"--label must be below {n_classes}, got {args.label}")
    if args.every_class:
        if not isinstance(model, M2):
            raise UserError("--every-class needs an m2 run (aegen classify … --mode m2)")
        images = style_grid(
            model, max(1, args.n // n_classes), generator=g, temperature=args.temperature
        )
        nrow = n_classes
    else:
        kw = sample_options(model, {"--label": args.label})
        if args.temperature != 1.0:
            kw["temperature"] = args.temperature
        images = model.sample(args.n, generator=g, **kw)
    save_grid(out, images, nrow=nrow)
    print(
        f"wrote {out} ({len(images)} samples, temperature {args.temperature:g}, seed {args.seed})"
    )
    return 0
