"""``aegen encode RUN_DIR --out CODES_DIR``: stage 2, every image as a grid of VQ-VAE code indices."""

from __future__ import annotations

import argparse

from ..pipelines.vq_prior import encode_run
from ._common import add_data_args, data_for_run


def add_parser(sub) -> None:
    p = sub.add_parser(
        "encode",
        help="encode a data set with a trained VQ-VAE into code grids (stage 2)",
        description="Write train/val/test code grids (uint16 .npy, N×H×W), their labels and "
        "meta.json (K, D, H, W, the VQ-VAE weights' SHA-256) into CODES_DIR.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a vqvae run directory")
    p.add_argument("--out", required=True, metavar="CODES_DIR", help="directory to create")
    add_data_args(p, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load

    load(args.run_dir, family="vqvae")  # the right kind of run before loading any data
    data = data_for_run(args.run_dir, args)
    meta = encode_run(args.run_dir, args.out, data=data, quiet=True)
    print(
        f"{args.out}: {meta['K']} codes on a {meta['H']}×{meta['W']} grid; test set uses "
        f"{meta['test_codes_used']} (perplexity {meta['test_perplexity']:.1f}, unigram entropy "
        f"{meta['test_unigram_entropy_bits']:.3f} bits/code)"
    )
    return 0
