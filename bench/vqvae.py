"""Speed of the VQ-VAE pipeline's hot paths, as JSON.

    .venv/bin/python bench/vqvae.py [--threads N] [--steps N] [--n-sample N]

- VQ-VAE training images/s, fp32 and bf16 autocast + channels_last (and their ratio);
- encoding images/s (images → index grids, fp32, eval mode: what ``aegen encode`` does);
- sampling images/s of each prior (default configs, K = 256, 7×7), with and without
  the cache, and the ratio (PixelCNN has no cache: one number).

Timings on a shared machine are noisy: compare the ratios, which are measured in
the same run, rather than absolute numbers between runs. Weights are random:
speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import aegen
from aegen.data.loader import Batch, to_float
from aegen.train import autocast


def _best_of(fn, repeats: int) -> float:
    """Least seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def train_speed(x: torch.Tensor, steps: int, amp: str, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = aegen.build_model("vqvae").train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    y = torch.zeros(x.shape[0], dtype=torch.long)

    def step():
        with autocast(amp):
            loss, _ = model.loss(Batch(x, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def run():
        for _ in range(steps):
            step()

    return steps * x.shape[0] / _best_of(run, 2)


def encode_speed(x: torch.Tensor) -> float:
    model = aegen.build_model("vqvae").eval()
    return x.shape[0] / _best_of(lambda: model.encode_indices(x), 3)


def sample_speed(name: str, n: int, use_cache: bool) -> float:
    torch.manual_seed(0)
    prior = aegen.build(name, num_classes=10).eval()
    g = torch.Generator()
    return n / _best_of(lambda: prior.sample(n, generator=g.manual_seed(0), use_cache=use_cache), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--steps", type=int, default=10, help="training steps per timing")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-sample", type=int, default=100, help="images per sampling call")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = aegen.load_data("synthetic", val_size=0, limit=2000)
    x = to_float(data.train.x[: args.batch_size])
    fp32 = train_speed(x, args.steps, "off", False)
    bf16 = train_speed(x, args.steps, "bf16", True)
    out = {
        "threads": torch.get_num_threads(),
        "bf16_supported": aegen.train.bf16_supported(),
        "vqvae_train_images_per_s": {
            "fp32": round(fp32, 1),
            "bf16_channels_last": round(bf16, 1),
            "ratio": round(bf16 / fp32, 2),
        },
        "vqvae_encode_images_per_s": round(encode_speed(to_float(data.train.x[:2000])), 1),
        "sample_images_per_s": {},
    }
    for name in aegen.available("prior"):
        cached = sample_speed(name, args.n_sample, True)
        row = {"cached": round(cached, 1)}
        if name != "pixelcnn":  # no cache to switch off
            uncached = sample_speed(name, args.n_sample, False)
            row.update(uncached=round(uncached, 1), ratio=round(cached / uncached, 2))
        out["sample_images_per_s"][name] = row
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
