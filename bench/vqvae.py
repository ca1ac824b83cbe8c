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

import torch

import aegen
from aegen.bench.vq import encode_speed, sample_speed, train_speed
from aegen.data.loader import to_float


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
