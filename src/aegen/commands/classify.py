"""``aegen classify RUN_DIR --labels F --mode M --out DIR``: a classifier on an autoencoder's features."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..checkpoint import MODEL
from ..classify import (
    CLASSIFIER_JSON,
    MODES,
    THRESHOLD_MODES,
    ClassifyConfig,
    load_encoder_model,
    train_classifier,
    write_classifier_json,
)
from ..config import from_dict
from ..errors import UserError
from ..eval.metrics import update_metrics_json
from ..files import RunLock, ensure_dir
from ..models.classifier import HEADS
from ..threads import process_record
from ..viz import save_confusion
from ._common import add_data_args, data_for_run
from .argtypes import fraction, nonneg_float, nonneg_int, positive_float, positive_int

UNLABELED_ARGS = (
    "unlabeled_ratio",
    "unlabeled_weight",
    "unlabeled_epochs",
    "threshold",
    "threshold_mode",
    "cutout",
    "alpha",
)


def add_unlabeled_args(p: argparse.ArgumentParser) -> None:
    """The settings of the modes that learn from unlabeled images (consistency, m2)."""
    p.add_argument(
        "--unlabeled-ratio",
        type=positive_int,
        default=None,
        metavar="MU",
        help="consistency, m2: unlabeled images per step per labeled image (default 2)",
    )
    p.add_argument(
        "--unlabeled-weight",
        type=nonneg_float,
        default=None,
        metavar="LAMBDA",
        help="consistency, m2: weight of the unlabeled loss; 0 switches it off (default 1)",
    )
    p.add_argument(
        "--unlabeled-epochs",
        type=nonneg_float,
        default=None,
        metavar="E",
        help="consistency: train for at least E passes of unlabeled draws over the "
        "training images (default 20; 0: the labeled budget alone)",
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        default=None,
        metavar="TAU",
        help="consistency with --threshold-mode fixed: confidence a pseudo-label needs, "
        "in (0, 1] (default 0.95)",
    )
    p.add_argument(
        "--threshold-mode",
        choices=THRESHOLD_MODES,
        default=None,
        help="consistency: adaptive sets a bar per class from the model's own confidence, "
        "as FreeMatch does (the default); fixed keeps --threshold",
    )
    p.add_argument(
        "--cutout",
        type=nonneg_int,
        default=None,
        metavar="PX",
        help="consistency: side of the square the strong view zeroes, 0 to 28 (default 10)",
    )
    p.add_argument(
        "--alpha",
        type=nonneg_float,
        default=None,
        help="m2: weight of the labeled cross-entropy per image (default 50)",
    )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="train a classifier on an autoencoder's features with a fraction of the labels",
        description="Train a classifier on the encoder of RUN_DIR using a class-balanced "
        "fraction of the training labels. Modes: probe (frozen encoder, trained head), "
        "finetune (encoder and head), scratch (same architecture, random start), joint "
        "(finetune plus the autoencoder's own loss on all training images), consistency "
        "(finetune plus pseudo-labels of augmented unlabeled images), m2 (the semi-supervised "
        "VAE of Kingma et al. 2014, trained from scratch: RUN_DIR only names the data; its "
        "--out is also an m2 run for aegen sample).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="an autoencoder run directory")
    add_data_args(p, default=None)
    p.add_argument(
        "--labels",
        type=fraction,
        default=1.0,
        metavar="FRACTION",
        help="fraction of the training images that keep their labels, in (0, 1] (default 1)",
    )
    p.add_argument("--mode", choices=MODES, default="probe", help="default: probe")
    p.add_argument("--head", choices=HEADS, default="linear", help="default: linear")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    p.add_argument("--seed", type=nonneg_int, default=0, help="labeled subset, init, order")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--min-steps", type=nonneg_int, default=None, metavar="N")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument(
        "--head-steps", type=nonneg_int, default=None, metavar="N", help="head-only warm-up steps"
    )
    p.add_argument("--recon-weight", type=positive_float, default=None, help="joint mode")
    add_unlabeled_args(p)
    p.add_argument(
        "--amp", choices=["auto", "bf16", "off"], default="off", help="bf16 autocast (default off)"
    )
    p.add_argument("--best", action="store_true", help="use the run's best-validation weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    for name in (CLASSIFIER_JSON, MODEL):
        if (out / name).exists():
            raise UserError(f"--out {out} already holds a classifier or run; choose another")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out)
    given = {
        "mode": args.mode,
        "head": args.head,
        "labels": args.labels,
        "seed": args.seed,
        "epochs": args.epochs,
        "min_steps": args.min_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "recon_weight": args.recon_weight,
        "head_steps": args.head_steps,
        "amp": args.amp,
        **{k: getattr(args, k) for k in UNLABELED_ARGS},
    }
    cfg = from_dict(ClassifyConfig, {k: v for k, v in given.items() if v is not None})
    model = load_encoder_model(args.run_dir, best=args.best)
    data = data_for_run(args.run_dir, args)
    ensure_dir(out)
    with RunLock(out):
        result = train_classifier(model, data, cfg, out_dir=out, progress=not args.quiet)
        write_classifier_json(
            out,
            args.run_dir,
            cfg,
            {
                "num_classes": data.num_classes,
                "classes": data.classes,
                "data": data.name,
                "data_fingerprint": data.fingerprint(),
                "n_labeled": result.n_labeled,
                # the command's threads, flush and malloc, as a training run records them
                **({"environment": env} if (env := process_record()) is not None else {}),
            },
        )
        update_metrics_json(
            out,
            {
                "classification": {
                    "test_acc": result.test_acc,
                    # NaN (written as null) when a --limit left no validation images
                    "val_acc": result.val_acc,
                    "n_labeled": result.n_labeled,
                    "steps": result.steps,
                    "seconds": result.seconds,
                    "cpu_seconds": result.cpu_seconds,
                    "confusion": result.confusion.tolist(),
                    "split": "test",
                }
            },
        )
        title = (
            f"{model.registry_name if cfg.mode != 'm2' else 'm2'} {cfg.mode}, {result.n_labeled} labels: "
            f"test accuracy {result.test_acc:.2%}"
        )
        save_confusion(out / "confusion.png", result.confusion, data.classes, title)
    on = "its own VAE" if cfg.mode == "m2" else f"{model.registry_name} ({cfg.head} head)"
    print(
        f"{cfg.mode} on {on} with {result.n_labeled} labels "
        f"({100 * cfg.labels:g} % of the training images): test accuracy {result.test_acc:.2%}, "
        f"validation {_share(result.val_acc)}, {result.seconds:.0f} s",
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'confusion.png'}", file=sys.stderr)
    return 0


def _share(accuracy: float) -> str:
    return "— (no validation images)" if math.isnan(accuracy) else f"{accuracy:.2%}"
