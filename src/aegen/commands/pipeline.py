"""``aegen pipeline vqvae --out DIR --prior NAME``: the four VQ-VAE stages, resumable."""

from __future__ import annotations

import argparse

from ..eval.evaluate import MIN_SAMPLES, EvalOptions
from ..pipelines.vq_prior import prior_score_line, run_pipeline
from ..pipelines.vq_scores import score_lines, shown
from ..registry import available
from ._common import add_data_args
from .argtypes import guidance_arg, nonneg_int, positive_int, temperature_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pipeline",
        help="train a VQ-VAE, encode, train a prior, sample: into one directory, resumable",
        description="Run the lecture's four stages into DIR/vqvae, DIR/codes, DIR/prior and "
        "DIR/samples, then score the samples beside their ceiling (the VQ-VAE's own test "
        "reconstructions) and, for a conditional prior, against their labels. Run the same "
        "command again after an interruption: finished stages are skipped, an interrupted "
        "training resumes.",
    )
    p.add_argument("which", choices=["vqvae"], help="the pipeline to run")
    add_data_args(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--prior", default="transformer", choices=available("prior"))
    p.add_argument("--vqvae-epochs", type=positive_int, default=None)
    p.add_argument("--prior-epochs", type=positive_int, default=None)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--n", type=positive_int, default=100, help="images to sample (default 100)")
    p.add_argument(
        "--temperature",
        type=temperature_arg,
        default=None,
        metavar="T|auto",
        help="sampling temperature; auto (the default): of 0.8 to 1.2, the one with the lowest "
        "FID on validation images, or the highest within 5 %% of it, when there is a feature "
        "network (else 1)",
    )
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument(
        "--guidance",
        type=guidance_arg,
        default=None,
        metavar="W|A:B",
        help="classifier-free guidance weight of the samples and their scores (1: the "
        "conditional prior; 0: unconditional), or A:B, rising from A at the first code "
        "drawn to B at the last; default for a conditional prior, which the pipeline "
        "trains with prior.model.label_dropout=0.1: 2, and 1.5:3.5 for maskgit; else 1",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STAGE.KEY=VALUE",
        help="override, e.g. vqvae.model.num_codes=128 or prior.train.lr=5e-4 (repeatable)",
    )
    p.add_argument("--unconditional", action="store_true", help="a prior without labels")
    p.add_argument(
        "--features",
        default=None,
        metavar="DIR",
        help="feature network from 'aegen features train' to score with "
        "(default: ~/.cache/aegen/features/<data>; without one, scoring is skipped)",
    )
    p.add_argument(
        "--eval-n",
        type=nonneg_int,
        default=EvalOptions.n,
        metavar="N",
        help=f"images to score, and test images to compare them with; 0: no scores, "
        f"else at least {MIN_SAMPLES} (default {EvalOptions.n})",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    s = run_pipeline(
        args.out,
        prior=args.prior,
        data=args.data,
        data_dir=args.data_dir,
        limit=args.limit,
        overrides=args.set,
        vqvae_epochs=args.vqvae_epochs,
        prior_epochs=args.prior_epochs,
        seed=args.seed,
        n=args.n,
        temperature=args.temperature,
        top_k=args.top_k,
        conditional=not args.unconditional,
        progress=not args.quiet,
        features_dir=args.features,
        eval_n=args.eval_n,
        guidance=args.guidance,
    )
    c, pr = s["codes"], s["prior"]
    print(
        f"VQ-VAE test MSE {shown(s['vqvae'].get('mse'), '.5f')}; codes used on test "
        f"{c['test_codes_used']}/{c['K']} (perplexity {c['test_perplexity']:.1f}); {args.prior} "
        f"{prior_score_line(pr)}; samples: {s['samples']} (temperature {s['temperature']}, "
        f"guidance {s['guidance']})"
    )
    for line in score_lines(s.get("scores", {})):
        print(line)
    return 0
