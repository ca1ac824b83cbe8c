"""Autoencoder quality on full Fashion-MNIST, for the README's table (JSON).

- ae-mlp with a 32-dim code against PCA with 32 components (test MSE);
- ae-conv against ae-mlp at the same code size and epochs;
- phased (greedy layer-wise) vs end-to-end training of ae-mlp at equal total epochs;
- a denoising ae-mlp vs a plain one on noisy test inputs (PSNR).

    nice .venv/bin/python bench/ae_quality.py --epochs 10 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import aegen
from aegen.config import TrainConfig
from aegen.eval.metrics import reconstruction_metrics
from aegen.models.ae import corrupt
from aegen.phased import fit_phased
from aegen.plane import pca_reconstruction_mse


def _train(name: str, data, epochs: int, **model_cfg) -> tuple[torch.nn.Module, float]:
    aegen.seed_everything(0)
    model = aegen.build_model(name, **model_cfg)
    extra = {"amp": "auto", "channels_last": True} if name == "ae-conv" else {}
    t0 = time.perf_counter()
    aegen.Trainer(
        model, TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, **extra), None, progress=False
    ).fit(data)
    return model, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--code", type=int, default=32)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    data = aegen.load_data("fashion-mnist")
    flat = lambda s: s.x.flatten(1).double() / 255  # noqa: E731
    out: dict = {"epochs": args.epochs, "code_dim": args.code}
    out["pca_test_mse"] = pca_reconstruction_mse(flat(data.train), flat(data.test), args.code)

    mlp, t = _train("ae-mlp", data, args.epochs, code_dim=args.code)
    out["ae_mlp"] = {**reconstruction_metrics(mlp, data.test), "seconds": t}
    conv, t = _train("ae-conv", data, args.epochs, code_dim=args.code)
    out["ae_conv"] = {**reconstruction_metrics(conv, data.test), "seconds": t}

    # phased: one epoch budget per pair + the rest end to end, equal total epochs
    aegen.seed_everything(0)
    phased = aegen.build_model("ae-mlp", code_dim=args.code)
    pairs = phased.num_pairs
    per_pair = max(1, args.epochs // (pairs + 1))
    t0 = time.perf_counter()
    fit_phased(
        phased,
        data,
        TrainConfig(epochs=per_pair, batch_size=128, lr=2e-3),
        None,
        progress=False,
        finetune_epochs=args.epochs - per_pair * pairs,
    )
    out["phased"] = {
        **reconstruction_metrics(phased, data.test),
        "seconds": time.perf_counter() - t0,
        "epochs_per_pair": per_pair,
        "finetune_epochs": args.epochs - per_pair * pairs,
    }
    aegen.seed_everything(0)
    only = aegen.build_model("ae-mlp", code_dim=args.code)
    fit_phased(
        only, data, TrainConfig(epochs=per_pair, batch_size=128, lr=2e-3), None, progress=False
    )
    out["phased_no_finetune"] = reconstruction_metrics(only, data.test)

    dae, _ = _train(
        "ae-mlp", data, args.epochs, code_dim=args.code, noise="gaussian", noise_level=0.3
    )
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    for key, model in (("plain", mlp), ("denoising", dae)):
        gen = g()
        out.setdefault("noisy_inputs_psnr", {})[key] = reconstruction_metrics(
            model,
            data.test,
            corrupt_fn=lambda x, gen=gen: corrupt(x, "gaussian", 0.3, generator=gen),
        )["psnr"]
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
