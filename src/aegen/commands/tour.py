"""``aegen tour --out DIR [--budget quick|full]``: the whole lecture in one command and one report."""

from __future__ import annotations

import argparse

from .argtypes import nonneg_int


def add_parser(sub) -> None:
    from ..pipelines.tour import BUDGETS, PARTS

    p = sub.add_parser(
        "tour",
        help="run every part of the lecture on a budget and write one HTML report",
        description="Autoencoders, classification and semi-supervised learning, the probability "
        "primer, VAEs, VQ-VAE and its priors — trained, evaluated and drawn into DIR/report.html. "
        "Run it again with the same --out to resume where it stopped.",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="tour directory (resumed when it holds one)"
    )
    p.add_argument(
        "--budget",
        choices=list(BUDGETS),
        default="quick",
        help="quick: minutes on 2 cores; full: all images, more epochs (measured times: "
        "docs/tour.md); tiny: seconds, for tests",
    )
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="data set name or IDX directory (default fashion-mnist)",
    )
    p.add_argument("--data-dir", default=None, help="where the named data set's files are")
    p.add_argument(
        "--parts", default=None, metavar="P,P", help=f"only these parts, of: {', '.join(PARTS)}"
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars (the stage lines stay)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipelines.tour import run_tour

    parts = [s.strip() for s in args.parts.split(",") if s.strip()] if args.parts else None
    report = run_tour(
        args.out, args.budget, args.data, args.data_dir, args.seed, parts, progress=not args.quiet
    )
    print(f"report: {report}")
    return 0
