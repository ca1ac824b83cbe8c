"""Training-step speed of the domain feature network: bf16 autocast and channels_last vs float32.

Prints JSON: seconds per step of each variant as a ratio to the float32 baseline
measured in the same run (timings on a shared machine are noisy; ratios less so).

    .venv/bin/python bench/features_speed.py [--steps 20] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from aegen.eval.features import FeatureNet, FeatureNetConfig
from aegen.train import autocast, bf16_supported


def seconds_per_step(amp: str, channels_last: bool, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    net = FeatureNet(FeatureNetConfig())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with autocast(amp):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = {
        "fp32": ("off", False),
        "fp32+channels_last": ("off", True),
        "bf16": ("bf16", False),
        "bf16+channels_last": ("bf16", True),
    }
    if not bf16_supported():
        variants = {k: v for k, v in variants.items() if v[0] == "off"}
    times = {k: seconds_per_step(a, c, args.steps, args.batch) for k, (a, c) in variants.items()}
    base = times["fp32"]
    print(
        json.dumps(
            {
                "bench": "feature-net training step",
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "bf16_supported": bf16_supported(),
                "time_ratio_vs_fp32": {k: round(v / base, 3) for k, v in times.items()},
                "speedup_vs_fp32": {k: round(base / v, 2) for k, v in times.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
