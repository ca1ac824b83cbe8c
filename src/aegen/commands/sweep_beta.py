"""``aegen sweep-beta --out DIR``: train a VAE at several β and draw the rate–distortion curve."""

from __future__ import annotations

import argparse
import sys

from ..pipelines.beta_sweep import DEFAULT_BETAS, parse_betas, plan_sweep, run_sweep
from ._common import add_data_args, add_train_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep-beta",
        help="train a VAE at several β; draw rate (KL) against distortion (reconstruction)",
        description="Train one VAE run per β into OUT/beta-<β>/, then write OUT/sweep.json, "
        "OUT/rate_distortion.png and OUT/samples_by_beta.png. Run it again to resume.",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", default="vae-mlp", help="vae-mlp (default) or vae-conv")
    p.add_argument(
        "--betas",
        default=",".join(f"{b:g}" for b in DEFAULT_BETAS),
        help="comma-separated β values (default %(default)s)",
    )
    add_data_args(p)
    add_train_args(p, "model.latent_dim=2, for every run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runs = plan_sweep(
        args.model,
        parse_betas(args.betas),
        args.set,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        limit=args.limit,
        data_dir=args.data_dir,
    )
    summary = run_sweep(args.out, runs, progress=not args.quiet)
    print(f"{'β':>6} {'rate':>8} {'distortion':>10} {'-ELBO':>8} {'active':>7}")
    for p in summary["points"]:
        print(
            f"{p['beta']:>6g} {p['rate']:>8.2f} {p['distortion']:>10.2f} "
            f"{-p['elbo']:>8.2f} {p['active_units']:>4}/{p['latent_dim']}"
        )
    print(f"figure: {args.out}/rate_distortion.png (nats per test image)", file=sys.stderr)
    return 0
