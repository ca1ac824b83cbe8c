"""``aegen train-prior CODES_DIR --prior NAME --out DIR``: stage 3, an autoregressive prior over codes."""

from __future__ import annotations

import argparse

from ..cli import nonneg_int, positive_int
from ..pipelines.vq_prior import train_prior
from ..registry import available


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
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--seed", type=nonneg_int, default=None)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. model.d_model=64 or train.lr=3e-4 (repeatable)",
    )
    p.add_argument(
        "--unconditional",
        action="store_true",
        help="ignore the labels (default: class-conditional)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    trained = train_prior(
        args.codes_dir,
        args.prior,
        args.out,
        overrides=args.set,
        conditional=not args.unconditional,
        resume=args.resume,
        progress=not args.quiet,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    m = trained.metrics
    print(
        f"{args.out}: test NLL {m['test_nll_bits']:.3f} bits/code; unigram entropy of the test "
        f"codes {m['test_unigram_entropy_bits']:.3f} bits/code "
        f"({100 * m['reduction_vs_unigram']:.1f}% lower)"
    )
    return 0
