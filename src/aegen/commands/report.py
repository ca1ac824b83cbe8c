"""``aegen report RUN_DIR... --out report.html``: one self-contained page about the runs."""

from __future__ import annotations

import argparse

from ..eval.report import run_directories, write_report
from ._common import output_file


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML page comparing runs",
        description="Write one HTML file (images embedded, no network resources) with a table "
        "comparing the runs' scores and, per run, its config, loss curves and pictures. "
        "Score them first with 'aegen eval RUN_DIR'.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="FILE.html")
    p.add_argument("--title", default="aegen report")
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to compare scores from different feature networks, sample counts or data "
        "(default: show them unmarked, with a warning)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out, suffix=".html")
    path = write_report(args.run_dirs, out, title=args.title, strict=args.strict)
    n = len(run_directories(args.run_dirs))  # a VQ pipeline directory is two runs
    print(f"wrote {path} ({n} run{'s' if n != 1 else ''})")
    return 0
