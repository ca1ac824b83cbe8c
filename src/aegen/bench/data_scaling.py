"""Data batching speed, epoch time against data size, and a run's peak memory."""

from __future__ import annotations

import dataclasses
import resource
import subprocess
import sys
import tempfile
import time

import torch

from ..config import TrainConfig
from ..data.datasets import Dataset, Split
from ..data.loader import epoch_batches, to_float
from ..registry import build_model
from ..train import Trainer, seed_everything
from .core import Case, interleaved


def batching(data: Dataset, batch_size: int = 128) -> Case:
    """One epoch of batches by index from uint8 tensors vs a DataLoader over a TensorDataset."""
    x, y = data.train.x, data.train.y
    n = x.shape[0]

    def by_index() -> int:
        for idx in epoch_batches(n, batch_size, seed=0, epoch=0):
            to_float(x[idx]), y[idx]
        return n

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True
    )

    def data_loader() -> int:
        for xb, yb in loader:
            to_float(xb), yb
        return n

    rates = interleaved({"index": by_index, "loader": data_loader}, repeats=3)
    return Case(
        "data/batching",
        rates["index"],
        "images/s",
        rates["loader"],
        extra={"baseline": "torch DataLoader over a TensorDataset"},
    )


def scaling(
    data: Dataset, model: str = "ae-mlp", batch_size: int = 128, cfg: TrainConfig | None = None
) -> list[Case]:
    """Epoch time at ¼, ½ and all of the training set; ratio = time / (share × full time)."""
    cfg = dataclasses.replace(
        cfg or TrainConfig(), epochs=1, batch_size=batch_size, schedule="constant"
    )
    n = len(data.train)
    empty = Split(data.train.x[:0], data.train.y[:0])
    times = {}
    for share in (0.25, 0.5, 1.0, 0.25, 0.5, 1.0):  # twice, interleaved; keep the faster
        m = int(n * share)
        sub = Dataset(
            data.name, Split(data.train.x[:m], data.train.y[:m]), empty, data.test, data.classes
        )
        seed_everything(0)
        net = build_model(model)
        t0 = time.perf_counter()
        Trainer(net, cfg, None, progress=False).fit(sub)
        dt = time.perf_counter() - t0
        times[share] = min(dt, times.get(share, float("inf")))
    return [
        Case(
            f"scaling/{model}_epoch_{int(s * 100)}pct",
            times[s],
            "s",
            s * times[1.0],
            extra={"images": int(n * s)},
        )
        for s in (0.25, 0.5)
    ]


def peak_memory(argv: list[str]) -> Case:
    """Peak resident memory of ``aegen <argv>`` run as a child process (MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(
            [sys.executable, "-m", "aegen", *argv, "--out", f"{tmp}/run", "--quiet"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    mib = max(peak, before) / 1024  # ru_maxrss is in KiB on Linux
    return Case(
        f"memory/{argv[1]}_peak_rss", mib, "MiB", 2048.0, extra={"argv": argv, "limit": "2 GiB"}
    )
