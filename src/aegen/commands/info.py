"""``aegen info RUN_DIR``: what a run directory holds."""

from __future__ import annotations

import argparse
import json

from ..checkpoint import load_config
from ..errors import UserError
from ..runlog import read_metrics
from ..threads import flushed_in_every_thread, openmp_was_loaded, process_record
from ._common import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="show a run directory's model, config and last metrics")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    p.add_argument(
        "--machine",
        action="store_true",
        help="instead: this process's threads, OpenMP wait policy and denormal flush (JSON)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.machine:
        print(json.dumps(process_report(), indent=2))
        return 0
    if args.run_dir is None:
        raise UserError("aegen info needs RUN_DIR (or --machine)")
    d = Path(args.run_dir)
    cfg = load_config(d)
    model = load_model(d)
    rows = read_metrics(d / "metrics.csv")
    info = {
        "run_dir": str(d),
        "model": cfg["model"],
        "family": model.family,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": cfg,
        "last_metrics": rows[-1] if rows else {},
        "files": sorted(
            str(p.relative_to(d))
            for p in d.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{d}: {info['model']} ({info['family']}), {info['parameters']:,} parameters")
    print("model config: " + json.dumps(cfg.get("model_config", {})))
    print("train config: " + json.dumps(cfg.get("train", {})))
    print("data: " + json.dumps(cfg.get("data", {})))
    if rows:
        print("last epoch: " + ", ".join(f"{k}={v}" for k, v in rows[-1].items()))
    print("files: " + ", ".join(info["files"]))
    return 0


def process_report() -> dict:
    """What the command set up for this process, checked where it can be: the torch
    threads, whether OpenMP was loaded only after its wait policy was set, and whether
    a parallel op over denormals flushes them in every thread."""
    import os

    import torch

    return {
        "choice": process_record(),
        "torch_num_threads": torch.get_num_threads(),
        "omp_wait_policy_env": os.environ.get("OMP_WAIT_POLICY"),
        "openmp_loaded_before_policy": openmp_was_loaded(),
        "denormals_flushed_in_every_thread": flushed_in_every_thread(),
    }
