"""``aegen train MODEL --data D --out DIR``: train any registered model into a run directory."""

from __future__ import annotations

import argparse
import os
import sys

from .. import distributed
from ..registry import available
from ..runs import REPORTS, data_from_config, finish_run, make_run_config, train_run
from ..train import check_batch_size
from ._common import add_data_args, add_launch_args, add_train_args, refuse_with_resume
from .argtypes import nonneg_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a registered model. Models: " + ", ".join(available("model")) + ".",
    )
    p.add_argument("model", metavar="MODEL", help="registered model name (see aegen train --help)")
    add_data_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="run directory to write")
    add_train_args(p, "model.code_dim=2 or train.lr=3e-4")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (with --epochs N: extend it to N)",
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
    add_launch_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--report",
        choices=REPORTS,
        default="fast",
        help="after training: fast (default; a VAE's NLL on fewer draws and images), "
        "full (everything on the whole test set) or none (only metrics.csv)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    refuse_with_resume(
        args,
        {
            "--set": args.set,
            "--batch-size": args.batch_size,
            "--seed": args.seed,
            "--limit": args.limit,
            "--data": args.data,
            "--data-dir": args.data_dir,
            "--phased": args.phased,
        },
    )
    overrides = [*args.set, *([f"train.device={args.device}"] if args.device else [])]
    run_cfg = make_run_config(
        args.model,
        data=args.data,
        overrides=overrides,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        limit=args.limit,
        data_dir=args.data_dir,
    )
    phased = {"finetune_epochs": args.finetune_epochs} if args.phased else None
    if args.nproc > 1 and not distributed.context().world > 1 and "WORLD_SIZE" not in os.environ:
        check_batch_size(run_cfg.train.batch_size, None, args.nproc)
        data_from_config(run_cfg.data)  # a data error is reported here, once, not by every rank
        return distributed.launch(strip_option(args.argv, "--nproc"), args.nproc)
    ctx = distributed.setup(run_cfg.train.device)
    try:
        trained = train_run(
            run_cfg,
            args.out,
            resume=args.resume,
            progress=not args.quiet,
            phased=phased,
            epochs=args.epochs if args.resume else None,
        )
        if ctx.is_main:
            summary = finish_run(trained, report=args.report)
            if not summary:  # --report none: the last epoch's logged numbers
                summary = {k: v for k, v in trained.result.final.items() if isinstance(v, float)}
            shown = ", ".join(f"{k} {v:.4g}" for k, v in summary.items())
            print(
                f"trained {trained.config.model} into {trained.out_dir}: {shown}", file=sys.stderr
            )
    finally:
        distributed.teardown()
    return 0


def strip_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option`` and its value (``--opt V`` or ``--opt=V``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            out.append(a)
    return out
