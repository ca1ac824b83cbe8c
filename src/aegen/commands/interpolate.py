"""``aegen interpolate RUN_DIR --out FILE.png``: walk a VAE's latent space between real images.

Each pair of test images gives two rows: the linear path between their
posterior means, then the spherical one; each row starts and ends with the real
images, so how far the decoder's endpoints are from them is visible too.
"""

from __future__ import annotations

import argparse

import torch

from ..data.loader import to_float
from ..errors import UserError
from ..latent import lerp, slerp
from ..viz import save_grid
from ._common import add_data_args, data_for_run, load_model, output_file
from .argtypes import nonneg_int, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "interpolate",
        help="decode linear and spherical paths between the latents of real test images",
        description="Pick pairs of test images, encode them to their posterior means μ and "
        "decode points along the straight line (odd rows) and the great circle (even rows) "
        "between them. Each row begins and ends with the real images.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a VAE run directory")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--pairs", type=positive_int, default=5, help="image pairs (default 5)")
    p.add_argument(
        "--steps", type=positive_int, default=10, help="decoded points per path, ends included"
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="which test images (default 0)")
    add_data_args(p, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    if args.steps < 2:
        raise UserError(f"--steps must be at least 2 (the two ends), got {args.steps}")
    model = load_model(args.run_dir, family="vae")
    test = data_for_run(args.run_dir, args).test
    if len(test) < 2:
        raise UserError("interpolation needs at least 2 test images")
    pairs = min(args.pairs, len(test) // 2)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[: 2 * pairs].view(pairs, 2)  # (P, 2)
    rows = []
    with torch.no_grad():
        for a, b in idx.tolist():
            x = to_float(test.x[[a, b]])  # (2, 1, 28, 28)
            mu = model.encode(x).float()  # (2, D)
            for path in (lerp, slerp):
                decoded = model.decode(path(mu[0], mu[1], args.steps))  # (S, 1, 28, 28)
                rows.append(torch.cat([x[:1], decoded, x[1:]]))
    save_grid(out, torch.cat(rows), nrow=args.steps + 2)
    print(f"wrote {out} ({idx.shape[0]} pairs; rows: linear, spherical; ends are the real images)")
    return 0
