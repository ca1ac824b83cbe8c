"""Argument groups and steps that several subcommands share."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..checkpoint import CONFIG, load, load_config
from ..config import DataConfig, from_dict
from ..data.datasets import Dataset, load_data
from ..errors import CheckpointError, ConfigError, UserError
from ..files import ensure_writable_file
from .argtypes import nonneg_int, positive_int


def add_data_args(p: argparse.ArgumentParser, default: str | None = "fashion-mnist") -> None:
    """--data, --data-dir, --limit. ``default`` is what --data means when it is not given
    (None: the run's own data); the parsed value stays None then, so commands can tell."""
    p.add_argument(
        "--data",
        default=None,
        metavar="NAME_OR_DIR",
        help="fashion-mnist, mnist, synthetic, or a directory of IDX files"
        + (f" (default: {default})" if default else " (default: the run's own)"),
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="where the fashion-mnist or mnist IDX files are",
    )
    p.add_argument(
        "--limit",
        type=nonneg_int,
        default=None,
        metavar="N",
        help="use only the first N training and test images",
    )


def data_for_run(run_dir: str | Path, args: argparse.Namespace) -> Dataset:
    """The data a command over a run should use: --data if given, else the run's own."""
    try:
        stored = from_dict(DataConfig, load_config(run_dir).get("data", {}), "data")
    except ConfigError as err:
        raise CheckpointError(f"{Path(run_dir) / CONFIG}: {err}") from None
    name = args.data or stored.name
    data_dir = args.data_dir if args.data else (args.data_dir or stored.data_dir)
    limit = args.limit if args.limit is not None else (stored.limit or 0)
    return load_data(name, data_dir, val_size=stored.val_size, limit=limit)


def output_file(path: str | Path, suffix: str | None = ".png") -> Path:
    """Check an output file path before any work is done."""
    p = Path(path)
    if suffix and p.suffix.lower() != suffix:
        raise UserError(f"--out {p}: expected a {suffix} file name")
    return ensure_writable_file(p)


def load_model(run_dir: str | Path, family=None) -> torch.nn.Module:
    return load(run_dir, family=family)


def refuse_with_resume(args: argparse.Namespace, options: dict[str, object]) -> None:
    """With --resume, refuse the ``options`` given (flag → parsed value) that it would ignore:
    a resumed run keeps its own config.json (only --epochs may extend it)."""
    given = [flag for flag, value in options.items() if value]
    if args.resume and given:
        raise UserError(
            f"--resume continues the run with its own config.json (only --epochs N extends "
            f"it); drop {', '.join(given)}"
        )


def add_launch_args(p: argparse.ArgumentParser) -> None:
    """--device and --nproc: where a training command runs, and in how many processes."""
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=None,
        help="where to train (default auto: CUDA when available)",
    )
    p.add_argument(
        "--nproc",
        type=positive_int,
        default=1,
        metavar="N",
        help="data-parallel processes on this machine (launches torchrun)",
    )


def add_train_args(p: argparse.ArgumentParser, set_example: str) -> None:
    """--epochs, --batch-size, --seed and repeatable --set KEY=VALUE config overrides."""
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--seed", type=nonneg_int, default=None)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"config override, e.g. {set_example} (repeatable)",
    )
