"""``aegen eval RUN_DIR``: score a run and merge the scores into RUN_DIR/metrics.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checkpoint import load, load_config
from ..errors import UserError
from ..eval.evaluate import SECTIONS, EvalOptions, evaluate_run
from ..eval.features import find_features
from ..eval.metrics import METRICS_JSON, read_metrics_json, update_metrics_json
from ..eval.steps import check_steps_model, scores_by_steps
from ..files import ensure_dir, ensure_writable_file
from ..viz import save_grid
from ._common import add_data_args, data_for_run
from .argtypes import nonneg_int, positive_float, positive_int

SCORED_SAMPLES = "scored_samples.png"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score a run: MSE/PSNR/SSIM, FID/KID/precision/recall, NLL",
        description="Score a run directory and merge the scores into its metrics.json: "
        "reconstruction (MSE, PSNR, SSIM) for models that reconstruct; FID, KID and "
        "precision/recall on domain features for models that sample; NLL in nats and "
        "bits/dim for models with a likelihood.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_data_args(p, default=None)
    p.add_argument(
        "--features",
        default=None,
        metavar="DIR",
        help="feature network from 'aegen features train' (default: ~/.cache/aegen/features/<data>)",
    )
    p.add_argument(
        "--n",
        type=positive_int,
        default=EvalOptions.n,
        help="samples to draw and test images to compare them with: more is slower "
        f"and less noisy (default {EvalOptions.n})",
    )
    p.add_argument(
        "--kid-subsets",
        type=positive_int,
        default=EvalOptions.kid_subsets,
        help=f"random subsets KID averages over (default {EvalOptions.kid_subsets})",
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of every random draw")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="sampling temperature")
    p.add_argument(
        "--nll-images",
        type=positive_int,
        default=EvalOptions.nll_images,
        help=f"test images for the likelihood (default {EvalOptions.nll_images})",
    )
    p.add_argument(
        "--iwae-k",
        type=positive_int,
        default=EvalOptions.iwae_k,
        help=f"importance samples per image for the likelihood (default {EvalOptions.iwae_k})",
    )
    p.add_argument(
        "--vqvae", default=None, metavar="DIR", help="prior runs: the VQ-VAE run that decodes it"
    )
    p.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        default=None,
        help="compute only this kind of score (repeatable; default: all the run supports)",
    )
    p.add_argument(
        "--steps",
        type=step_counts,
        default=None,
        metavar="S1,S2,…",
        help="diffusion: also score samples at each of these sampler step counts "
        "(FID against steps, section samples_by_steps)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def step_counts(text: str) -> list[int]:
    """A comma-separated list of step counts, each at least 1: "5,10,25"."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected step counts like 5,10,25, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"step counts must be at least 1, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    d = Path(args.run_dir)
    own_data = "data" in load_config(d)  # a run directory, or one clear line
    ensure_writable_file(d / METRICS_JSON)
    read_metrics_json(d)  # one the scores cannot be merged into is refused before scoring
    options = EvalOptions(
        n=args.n,
        seed=args.seed,
        kid_subsets=args.kid_subsets,
        temperature=args.temperature,
        nll_images=args.nll_images,
        iwae_k=args.iwae_k,
        vqvae_dir=args.vqvae,
    )
    options.check()
    # a prior has no data of its own: its images are the VQ-VAE's, scored on that one's data
    data = data_for_run(d if own_data or not args.vqvae else Path(args.vqvae), args)
    wanted = not args.only or "samples" in args.only
    features = find_features(data.name, args.features or None) if wanted else None
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if args.steps:
        check_steps_model(d, load(d), args.steps)
        if features is None:
            raise UserError(f"{d}: --steps scores samples; pass --features DIR or leave out --only")
    result = evaluate_run(
        d, data, features, options, progress=not args.quiet, log=log, only=args.only
    )
    if result.samples is not None:
        save_grid(ensure_dir(d / "samples") / SCORED_SAMPLES, result.samples)
    if args.steps:
        result.sections["samples_by_steps"] = scores_by_steps(
            d, load(d), data, features, args.steps, options, log
        )
    update_metrics_json(d, result.sections)
    print(summary_line(d, result.sections))
    return 0


def summary_line(run_dir: Path, sections: dict) -> str:
    """One line of the headline scores, for the terminal."""
    parts = []
    if rec := sections.get("reconstruction"):
        parts.append(f"MSE {rec['mse']:.5f}, PSNR {rec['psnr']:.2f} dB, SSIM {rec['ssim']:.4f}")
    if s := sections.get("samples"):
        parts.append(
            f"FID {s['fid']:.3f}, KID {s['kid_mean']:.5f} ± {s['kid_std']:.5f}, "
            f"precision {s['precision']:.3f}, recall {s['recall']:.3f} "
            f"({s['n_samples']} samples, features {s['features']['sha256'][:12]})"
        )
        if cov := s.get("class_coverage"):
            k = len(cov["histogram"])
            parts.append(
                f"class coverage {round(cov['covered'] * k)}/{k} classes, "
                f"entropy {cov['entropy_nats']:.2f} of {cov['max_entropy_nats']:.2f} nats"
            )
    for row in sections.get("samples_by_steps", {}).get("rows", []):
        parts.append(f"{row['steps']} steps: FID {row['fid']:.3f}")
    if lik := sections.get("likelihood"):
        parts.append(f"NLL {lik['nll_nats']:.2f} nats ({lik['bits_per_dim']:.4f} bits/dim)")
    return (
        f"{run_dir}: " + ("; ".join(parts) or "nothing to score") + f" -> {run_dir / METRICS_JSON}"
    )
