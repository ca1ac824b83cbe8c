"""``aegen semisup --fractions F,… --seeds N --out DIR``: the semi-supervised grid, resumable."""

from __future__ import annotations

import argparse
import time

from ..classify import ClassifyConfig
from ..config import from_dict
from ..data.datasets import load_data
from ..errors import UserError
from ..pipelines.semisup import COLUMNS, run_semisup
from ._common import add_data_args
from .argtypes import nonneg_int, positive_float, positive_int
from .classify import UNLABELED_ARGS, add_unlabeled_args


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one fraction")
    for v in values:
        if not 0 < v <= 1:
            raise argparse.ArgumentTypeError(f"every fraction must be in (0, 1], got {v:g}")
    return _once(values, text)


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got {text!r}")
    return _once(names, text)


def _once(values: list, text: str) -> list:
    """``values`` when none is repeated: a repeat would train and count the same cells twice."""
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"a value is repeated in {text!r}")
    return values


def add_parser(sub) -> None:
    p = sub.add_parser(
        "semisup",
        help="semi-supervised grid: AE features vs scratch over label fractions and seeds",
        description="Train each autoencoder once without labels, then classifiers for every "
        "label fraction, seed and mode (" + ", ".join(c.name for c in COLUMNS) + "). "
        "Writes results.csv, results.md, accuracy_vs_labels.png and confusion_best.png; "
        "run it again with the same --out to resume (cells already done are skipped).",
    )
    add_data_args(p)
    p.add_argument("--fractions", type=_fractions, default=[0.01, 0.05, 0.2, 1.0], metavar="F,…")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--models", type=_names, default=["ae-mlp", "ae-conv"], metavar="M,…")
    p.add_argument("--columns", type=_names, default=None, metavar="C,…", help="default: all")
    p.add_argument("--ae-epochs", type=positive_int, default=None, metavar="N")
    p.add_argument("--epochs", type=positive_int, default=None, help="classifier epochs")
    p.add_argument("--min-steps", type=nonneg_int, default=None, metavar="N")
    p.add_argument(
        "--head-steps", type=nonneg_int, default=None, metavar="N", help="head-only warm-up steps"
    )
    p.add_argument("--recon-weight", type=positive_float, default=None, help="joint mode")
    add_unlabeled_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    base_values = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "min_steps": args.min_steps,
            "recon_weight": args.recon_weight,
            "head_steps": args.head_steps,
            **{k: getattr(args, k) for k in UNLABELED_ARGS},
        }.items()
        if v is not None
    }
    base = from_dict(ClassifyConfig, base_values)  # the documented budget unless overridden
    columns = COLUMNS
    if args.columns:
        known = {c.name: c for c in COLUMNS}
        unknown = [c for c in args.columns if c not in known]
        if unknown:
            raise UserError(f"unknown column {unknown[0]!r}; choose from {', '.join(known)}")
        columns = tuple(known[c] for c in args.columns)
    data = load_data(args.data, args.data_dir, limit=args.limit or 0)
    t0 = time.perf_counter()
    rows = run_semisup(
        args.out,
        data,
        args.fractions,
        args.seeds,
        models=args.models,
        ae_epochs=args.ae_epochs,
        base=base,
        columns=columns,
        progress=not args.quiet,
    )
    print(
        f"semisup: {len(rows)} cells in {args.out} ({(time.perf_counter() - t0) / 60:.1f} min this run)"
    )
    print(f"  {args.out}/results.md, results.csv, accuracy_vs_labels.png, confusion_best.png")
    return 0
