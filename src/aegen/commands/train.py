"""``aegen train MODEL --data D --out DIR``: train any registered model into a run directory."""

from __future__ import annotations

import argparse
import sys

from ..cli import nonneg_int, positive_int
from ..registry import available
from ..runs import finish_run, make_run_config, train_run
from ._common import add_data_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a registered model. Models: " + ", ".join(available("model")) + ".",
    )
    p.add_argument("model", metavar="MODEL", help="registered model name (see aegen train --help)")
    add_data_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="run directory to write")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--seed", type=nonneg_int, default=None)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. model.code_dim=2 or train.lr=3e-4 (repeatable)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    p.add_argument(
        "--phased",
        action="store_true",
        help="ae-mlp: greedy layer-wise training, --epochs per layer pair",
    )
    p.add_argument(
        "--finetune-epochs",
        type=nonneg_int,
        default=0,
        metavar="N",
        help="with --phased: end-to-end epochs after the phases",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_cfg = make_run_config(
        args.model,
        data=args.data,
        overrides=args.set,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        limit=args.limit,
        data_dir=args.data_dir,
    )
    phased = {"finetune_epochs": args.finetune_epochs} if args.phased else None
    trained = train_run(
        run_cfg, args.out, resume=args.resume, progress=not args.quiet, phased=phased
    )
    summary = finish_run(trained)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in summary.items())
    print(f"trained {trained.config.model} into {trained.out_dir}: {shown}", file=sys.stderr)
    return 0
