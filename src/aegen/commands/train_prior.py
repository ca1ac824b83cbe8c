"""``aegen train-prior CODES_DIR --prior NAME --out DIR``: stage 3, an autoregressive prior over codes."""

from __future__ import annotations

import argparse
import os

from .. import distributed
from ..pipelines.vq_prior import load_codes, prior_score_line, train_prior
from ..registry import available
from ._common import add_launch_args, add_train_args, refuse_with_resume
from .train import strip_option


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-prior",
        help="train an autoregressive prior on a codes directory (stage 3)",
        description="Train a prior over the code grids of CODES_DIR (made by 'aegen encode'). "
        "Priors: " + ", ".join(available("prior")) + ".",
    )
    p.add_argument("codes_dir", metavar="CODES_DIR")
    p.add_argument("--prior", required=True, choices=available("prior"))
    p.add_argument("--out", required=True, metavar="DIR", help="run directory to write")
    add_train_args(p, "model.d_model=64 or train.lr=3e-4")
    p.add_argument(
        "--unconditional",
        action="store_true",
        help="ignore the labels (default: class-conditional)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (with --epochs N: extend it to N)",
    )
    add_launch_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    refuse_with_resume(
        args,
        {
            "--set": args.set,
            "--batch-size": args.batch_size,
            "--seed": args.seed,
            "--unconditional": args.unconditional,
        },
    )
    overrides = [*args.set, *([f"train.device={args.device}"] if args.device else [])]
    if args.nproc > 1 and not distributed.context().world > 1 and "WORLD_SIZE" not in os.environ:
        load_codes(
            args.codes_dir
        )  # a bad codes directory is reported here, once, not by every rank
        return distributed.launch(strip_option(args.argv, "--nproc"), args.nproc)
    ctx = distributed.setup(args.device or "auto")
    try:
        trained = train_prior(
            args.codes_dir,
            args.prior,
            args.out,
            overrides=overrides,
            conditional=not args.unconditional,
            resume=args.resume,
            progress=not args.quiet,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
        )
    finally:
        distributed.teardown()
    if not ctx.is_main:
        return 0
    print(f"{args.out}: {prior_score_line(trained.metrics)}")
    return 0
