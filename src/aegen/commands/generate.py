"""``aegen generate PRIOR_DIR --vqvae RUN_DIR --n N --out FILE.png``: stage 4, new images."""

from __future__ import annotations

import argparse

from ..pipelines.vq_prior import generate, prior_matches_vqvae
from ._common import output_file
from .argtypes import guidance_arg, nonneg_int, positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="sample code grids from a prior and decode them with the VQ-VAE (stage 4)",
        description="Sample N code grids from the prior in PRIOR_DIR, look them up in the "
        "codebook of the VQ-VAE it was trained with, decode, and save a PNG grid; the codes "
        "go beside it as FILE.npy (uint16, N×H×W).",
    )
    p.add_argument("prior_dir", metavar="PRIOR_DIR")
    p.add_argument("--vqvae", required=True, metavar="RUN_DIR")
    p.add_argument("--n", type=positive_int, default=100, help="number of images (default 100)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--label", type=nonneg_int, default=None, help="class to generate")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--top-k", type=positive_int, default=None, help="sample among the K likeliest")
    p.add_argument(
        "--guidance",
        type=guidance_arg,
        default=1.0,
        metavar="W|A:B",
        help="classifier-free guidance weight (1, the default: the conditional prior; 0: the "
        "unconditional one; above 1: more typical of the class), or A:B, rising from A at "
        "the first code drawn to B at the last; needs a prior trained with "
        "model.label_dropout > 0",
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument(
        "--no-cache", action="store_true", help="recompute every step (slower; same samples)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # the runs are checked before output_file makes --out's folder: a refusal leaves none
    prior_matches_vqvae(args.prior_dir, args.vqvae)
    out = output_file(args.out)
    generate(
        args.prior_dir,
        args.vqvae,
        args.n,
        out,
        seed=args.seed,
        label=args.label,
        temperature=args.temperature,
        top_k=args.top_k,
        use_cache=not args.no_cache,
        guidance=args.guidance,
    )
    print(f"wrote {out} and {out.with_suffix('.npy')} ({args.n} images)")
    return 0
