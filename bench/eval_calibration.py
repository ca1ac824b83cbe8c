"""What FID, KID and precision/recall read for known "generators": a scale to judge models by.

Scores n images from each reference source against n test images, on one
feature network, and prints JSON:

- ``train images``: real images the test set never saw (an ideal generator;
  its FID is the floor that sampling noise alone gives at this n);
- ``train images, blurred``: right layout, missing detail (a typical autoencoder look);
- ``train images, pixels shuffled``: right pixel statistics, no structure;
- ``uniform noise``;
- with ``--ae RUN_DIR``: the autoencoder's decoder fed Gaussian codes with the mean
  and covariance of its training codes (why a plain AE is not a generator).

    .venv/bin/python bench/eval_calibration.py --features DIR [--n 10000] [--ae RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

import aegen
from aegen.data.loader import to_float
from aegen.eval.evaluate import draw_samples
from aegen.eval.features import load_features
from aegen.eval.metrics import frechet_distance, kernel_distance, precision_recall


def blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = (k[:, None] * k[None, :]) / 256.0
    return F.conv2d(x, k.view(1, 1, 5, 5), padding=2)


def gaussian_code_sampler(model, train_x: torch.Tensor):
    """Decode z ~ N(mean, cov) of the AE's own training codes."""
    with torch.no_grad():
        z = torch.cat(
            [model.encode(to_float(train_x[i : i + 1000])) for i in range(0, 10000, 1000)]
        )
    mean, cov = z.mean(0), torch.cov(z.T) + 1e-5 * torch.eye(z.shape[1])
    chol = torch.linalg.cholesky(cov)

    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        eps = torch.randn(n, z.shape[1], generator=g)
        with torch.no_grad():
            return model.decode(mean + eps @ chol.T).clamp(0, 1)

    return sample


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--features", required=True)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ae", default=None, help="an autoencoder run directory")
    args = p.parse_args()
    feats = load_features(args.features)
    data = aegen.load_data(args.data)
    n = min(args.n, len(data.test), len(data.train))

    def train_images(n_: int, g: torch.Generator) -> torch.Tensor:
        return to_float(data.train.x[torch.randint(0, len(data.train), (n_,), generator=g)])

    def shuffled(n_: int, g: torch.Generator) -> torch.Tensor:
        x = train_images(n_, g).flatten(1)
        return x[:, torch.randperm(784, generator=g)].view(n_, 1, 28, 28)

    sources = {
        "train images": train_images,
        "train images, blurred": lambda n_, g: blur(train_images(n_, g)),
        "train images, pixels shuffled": shuffled,
        "uniform noise": lambda n_, g: torch.rand(n_, 1, 28, 28, generator=g),
    }
    if args.ae:
        model = aegen.load(args.ae)
        sources[f"{model.registry_name} decoder, Gaussian codes"] = gaussian_code_sampler(
            model, data.train.x
        )
    real = feats.embed(data.test.x[:n])
    out = {"data": data.name, "n": n, "seed": args.seed, "features": feats.record(), "scores": {}}
    for name, sampler in sources.items():
        t0 = time.perf_counter()
        fake = feats.embed(draw_samples(sampler, n, args.seed))
        kid, kid_std = kernel_distance(real, fake, seed=args.seed)
        prec, rec = precision_recall(real, fake)
        out["scores"][name] = {
            "fid": round(frechet_distance(real, fake), 3),
            "kid": round(kid, 5),
            "kid_std": round(kid_std, 5),
            "precision": round(prec, 4),
            "recall": round(rec, 4),
        }
        print(f"{name}: {out['scores'][name]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
