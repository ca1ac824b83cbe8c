"""``aegen info RUN_DIR``: what a run directory holds."""

from __future__ import annotations

import argparse
import json

from ..checkpoint import load_config
from ..runlog import read_metrics
from ._common import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="show a run directory's model, config and last metrics")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

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
