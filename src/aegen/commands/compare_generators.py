"""``aegen compare-generators --minutes M --out DIR``: every generator family at equal CPU time."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..eval.evaluate import MIN_SAMPLES
from ..pipelines.generators import FAMILIES, compare_generators
from ._common import add_data_args
from .argtypes import int_at_least, nonneg_int, positive_float


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare-generators",
        help="train VAE, VQ-VAE + prior, GAN, flow, diffusion for the same minutes; score them all",
        description="Train each generator family for the same wall-clock minutes into DIR/<family>, "
        "score all with the same feature network, and write DIR/generators.json, .md and .html. "
        "Run it again after an interruption: finished families are skipped, an interrupted one "
        "resumes.",
    )
    add_data_args(p)
    p.add_argument("--minutes", type=positive_float, required=True, metavar="M",
                   help="training minutes per family (the VQ family splits them between its stages)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--families", default=",".join(FAMILIES), metavar="A,B,…",
                   help=f"comma-separated, from {', '.join(FAMILIES)} (default: all)")  # fmt: skip
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--eval-n", type=int_at_least(MIN_SAMPLES), default=10_000, metavar="N",
                   help="samples scored per family (and test images they meet)")  # fmt: skip
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    if not families:
        raise UserError("--families is empty")
    s = compare_generators(
        args.out,
        args.minutes,
        families,
        data=args.data or "fashion-mnist",
        data_dir=args.data_dir,
        limit=args.limit or 0,
        seed=args.seed,
        eval_n=args.eval_n,
        progress=not args.quiet,
    )
    for fam, row in s["families"].items():
        print(f"{fam}: FID {row['fid']:.2f}, {s['actions'][fam]}; {row['caption']}")
    print(f"table: {args.out}/generators.md; page: {args.out}/generators.html")
    return 0
