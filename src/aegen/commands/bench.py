"""``aegen bench [--quick] [--json OUT]``: the benchmark suite (speed as ratios measured in one run)."""

from __future__ import annotations

import argparse

from ._common import output_file


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmark suite and print JSON (docs/performance.md)")
    p.add_argument(
        "--quick", action="store_true", help="every case at a small size (about a minute)"
    )
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="data set name or IDX directory (default fashion-mnist)",
    )
    p.add_argument("--json", metavar="OUT", default=None, help="also write the report to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench.suite import run_suite
    from ..data.datasets import load_data

    out = output_file(args.json, suffix=None) if args.json else None
    load_data(
        args.data, val_size=0, limit=16
    )  # a bad --data fails here, in one line, before any timing
    run_suite(quick=args.quick, data=args.data, json_path=out)
    return 0
