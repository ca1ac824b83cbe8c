"""``aegen sample RUN_DIR --n N --out FILE.png``: new images from any run whose model samples.

The sampling flags (``--temperature``, ``--steps``, ``--guidance``, ``--label``) go
to the model only when given, and only to a model whose ``sample`` takes them: a VAE
takes a temperature, the diffusion model steps, guidance and labels. A flag the
model cannot use is an error, not silently ignored. On an M2 run (``aegen classify …
--mode m2``) ``--every-class`` draws styles and decodes each of them as every class.
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
from .argtypes import nonneg_float, nonneg_int, positive_float, positive_int

# flag → the names a model's sample() may give that argument
SAMPLE_FLAGS = {
    "temperature": ("temperature",),
    "steps": ("steps",),
    "guidance": ("guidance",),
    "label": ("labels", "label"),
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw new images from a trained generative model (VAE, diffusion, …)",
        description="Draw images from the model of a run directory and save them as a PNG "
        "grid. VAE: decoder means at z ~ N(0, T²I), --temperature T below 1 trades variety "
        "for typical-looking images. Diffusion: --steps DDIM steps, --guidance W "
        "(0: unconditional, 1: conditional, above 1: stronger), --label C (default: "
        "random classes).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory whose model samples")
    p.add_argument("--n", type=positive_int, default=100, help="number of images (default 100)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument(
        "--temperature",
        type=positive_float,
        default=None,
        metavar="T",
        help="VAE: standard deviation of the latent draws (default 1: the prior)",
    )
    p.add_argument(
        "--steps", type=positive_int, default=None, metavar="S", help="diffusion: sampler steps"
    )
    p.add_argument(
        "--guidance",
        type=nonneg_float,
        default=None,
        metavar="W",
        help="diffusion: classifier-free guidance weight (0: unconditional, 1: conditional)",
    )
    p.add_argument(
        "--label", type=nonneg_int, default=None, metavar="C", help="class of every image"
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--nrow", type=positive_int, default=10, help="images per row (default 10)")
    p.add_argument(
        "--every-class",
        action="store_true",
        help="m2 runs: one row per style (N / classes of them), one column per class",
    )
    p.set_defaults(func=run)


def samplers() -> list[str]:
    """Registered models whose class samples (priors sample through ``aegen generate``)."""
    return [n for n in available("model") if callable(getattr(entry(n).cls, "sample", None))]


def sample_kwargs(model: torch.nn.Module, args: argparse.Namespace) -> dict:
    """The given sampling flags as keyword arguments of ``model.sample``; a flag it lacks is an error."""
    accepted = inspect.signature(model.sample).parameters
    kwargs = {}
    for flag, names in SAMPLE_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        name = next((n for n in names if n in accepted), None)
        if name is None:
            what = getattr(model, "registry_name", type(model).__name__)
            raise UserError(f"--{flag} does not apply to a {what} model; leave it out")
        kwargs[name] = value
    return kwargs


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    model = load_model(args.run_dir)
    if not isinstance(model, Samples) or model.family == "prior":
        raise UserError(
            f"{args.run_dir}: is a {model.family} run ({model.registry_name}), which does not "
            f"sample images here; sample needs a run of {', '.join(samplers())} "
            "(a prior's images come from 'aegen generate')"
        )
    n_classes = getattr(model.config, "num_classes", None)
    if args.label is not None and n_classes and args.label >= n_classes:
        raise UserError(f"--label must be below {n_classes}, got {args.label}")
    g = torch.Generator().manual_seed(args.seed)
    nrow = args.nrow
    if args.every_class:
        if not isinstance(model, M2):
            raise UserError("--every-class needs an m2 run (aegen classify … --mode m2)")
        if args.label is not None:
            raise UserError("--every-class draws every class; leave --label out")
        temperature = 1.0 if args.temperature is None else args.temperature
        images = style_grid(model.eval(), max(1, args.n // n_classes), g, temperature=temperature)
        kwargs, nrow = {"temperature": temperature}, n_classes
    else:
        kwargs = sample_kwargs(model, args)
        images = model.eval().sample(args.n, generator=g, **kwargs)
    save_grid(out, images, nrow=nrow)
    shown = "".join(f", {k} {v:g}" for k, v in kwargs.items())
    print(f"wrote {out} ({len(images)} samples{shown}, seed {args.seed})")
    return 0
