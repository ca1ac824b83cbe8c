"""``aegen features train --data D --out DIR``: the domain feature network FID and KID use.

``aegen features info DIR`` shows its hash, accuracy and data.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..data.datasets import load_data
from ..eval.features import default_features_dir, load_features, train_features
from ._common import add_data_args
from .argtypes import ArgParser, nonneg_int, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "features",
        help="train or inspect the domain feature network used by FID/KID",
        description="The domain feature network: a small CNN classifier whose penultimate "
        "layer embeds images for FID, KID and precision/recall.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=ArgParser)
    actions.required = True

    t = actions.add_parser(
        "train",
        help="train a feature network",
        description="Train a feature network on a data set's training images and record its "
        "test accuracy and SHA-256 in DIR/features.json.",
    )
    add_data_args(t)
    t.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="directory to write (default: the place aegen eval looks, "
        "~/.cache/aegen/features/<data>)",
    )
    t.add_argument("--epochs", type=positive_int, default=None, help="default 8")
    t.add_argument("--seed", type=nonneg_int, default=0)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=run_train)

    i = actions.add_parser("info", help="show a feature network's hash, accuracy and data")
    i.add_argument("dir", metavar="DIR")
    i.set_defaults(func=run_info)


def run_train(args: argparse.Namespace) -> int:
    data = load_data(args.data, args.data_dir, val_size=5000, limit=args.limit or 0)
    out = args.out or default_features_dir(data.name)
    feats = train_features(data, out, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    print(
        f"feature network in {feats.directory}: test accuracy {feats.info['test_accuracy']:.4f} "
        f"on {data.name}, sha256 {feats.sha256[:16]}…"
    )
    if args.out is None:
        print("aegen eval finds it there by default", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    feats = load_features(args.dir)
    print(json.dumps({**feats.info, "dir": str(feats.directory)}, indent=2))
    return 0
