"""A whole ``aegen train`` process against a bare PyTorch script doing the same epochs.

Issue 20: ``aegen train vae-mlp --epochs 2`` spent 12 s training and 44 s in all,
0.56 of a bare loop's whole process. Here both are timed as processes, start to
exit, on the same files:

- **aegen**: ``python -m aegen train MODEL --data DATA --epochs E --out TMP`` with
  its defaults (validation each epoch, the end-of-run report as ``--report`` says,
  checkpoints, samples);
- **bare**: ``python -c`` a script that reads the same IDX files into memory with the
  same hold-out, builds the same model, and runs E epochs of shuffled batches, the
  model's loss, AdamW (the run config's learning rate, weight decay, batch size,
  bf16 autocast and fused switch), backward, step; then saves the weights. Nothing
  else: no validation, no report, no denormal flush, torch's own thread count.

The two alternate (bare, aegen, aegen, bare, …) and each side keeps its best time
(:func:`aegen.bench.core.interleaved`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .core import Case, interleaved

BARE = """
import sys, torch
from aegen.bench.trainer_overhead import _bare_loop
from aegen.data import load_data
from aegen.data.loader import num_batches
from aegen.registry import build_model
from aegen.runs import make_run_config
model_name, data, epochs, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
cfg = make_run_config(model_name).train
ds = load_data(data, val_size=5000, limit=limit)
torch.manual_seed(0)
model = build_model(model_name)
if cfg.channels_last:
    model.to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                        fused=cfg.fused or None)
x, y = ds.train.x, ds.train.y
steps = num_batches(len(x), cfg.batch_size)
for epoch in range(epochs):  # the same bare loop as trainer_overhead's, epoch by epoch
    _bare_loop(model, [(model.loss, opt)], x, y, cfg.batch_size, steps, cfg.amp,
               cfg.channels_last, epoch)
torch.save(model.state_dict(), out)
"""


def _run(argv: list[str], env: dict) -> int:
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return 1  # one process: its rate is 1 / seconds


def whole_process_case(
    model: str = "vae-mlp",
    data: str = "fashion-mnist",
    epochs: int = 2,
    limit: int = 0,
    rounds: int = 2,
    report: str = "fast",
) -> Case:
    """Training images per second of the whole ``aegen train`` process (epochs × training
    images / seconds from start to exit); baseline the bare script's. The ratio is
    bare seconds / aegen seconds: 1 means aegen costs nothing over the loop."""
    env = {k: v for k, v in os.environ.items() if k not in ("AEGEN_THREADS", "OMP_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        n = iter(range(10**6))
        aegen = [sys.executable, "-m", "aegen", "train", model, "--data", data]
        aegen += ["--epochs", str(epochs), "--quiet", "--report", report]
        aegen += ["--limit", str(limit)] if limit else []
        bare = [sys.executable, "-c", BARE, model, data, str(epochs)]
        rates = interleaved(
            {
                "bare": lambda: _run(bare + [str(Path(tmp) / f"b{next(n)}.pt"), str(limit)], env),
                "aegen": lambda: _run(aegen + ["--out", str(Path(tmp) / f"a{next(n)}")], env),
            },
            repeats=rounds,
        )
    from ..data.datasets import load_data

    images = epochs * len(load_data(data, val_size=5000, limit=limit).train)
    return Case(
        f"whole_process/{model}_{epochs}_epochs",
        images * rates["aegen"],
        "images/s of the whole process",
        images * rates["bare"],
        extra={
            "baseline": "a bare PyTorch script: same files, model, optimizer and epochs",
            "aegen_s": 1 / rates["aegen"],
            "bare_s": 1 / rates["bare"],
            "report": report,
            "rounds": rounds,
            "limit": limit,
        },
    )
