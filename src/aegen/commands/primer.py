"""``aegen primer --out DIR``: the lecture's probability primer as figures and numbers."""

from __future__ import annotations

import argparse

from ..files import ensure_dir
from .argtypes import int_at_least, nonneg_int


def _samples(text: str) -> int:
    from ..pipelines.primer import MIN_SAMPLES

    return int_at_least(MIN_SAMPLES)(text)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "primer",
        help="the probability primer: pmf sampling, Gaussians, conditionals, KL (figures + primer.md)",
        description="Compute and draw every example of the lecture's probability primer: the "
        "cameraman pmf and sampling through its inverse CDF, 1-D and 2-D Gaussians with a "
        "conditional, and KL divergences in closed form and by Monte Carlo. Writes PNG figures, "
        "primer.json and primer.md into DIR (replacing files of those names).",
    )
    p.add_argument(
        "--out",
        default="runs/primer",
        metavar="DIR",
        help="output directory (default: runs/primer)",
    )
    p.add_argument(
        "--samples",
        type=_samples,
        default=1_000_000,
        metavar="N",
        help="draws behind each histogram and Monte Carlo estimate (default: 1000000)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--quiet", action="store_true", help="print only where the primer went")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipelines.primer import run_primer, summary_lines

    out = ensure_dir(args.out)  # a file or an unwritable place fails here, before any work
    result = run_primer(out, samples=args.samples, seed=args.seed)
    if not args.quiet:
        print("\n".join(summary_lines(result.numbers)))
    print(f"wrote {out / 'primer.md'} with {len(result.files) - 2} figures and primer.json")
    return 0
