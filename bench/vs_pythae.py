"""aegen vs pythae: the same MLP VAE trained by each library's own trainer, in one process.

The model is pythae's default VAE and aegen's ``vae-mlp`` default: 784-512-16,
Bernoulli decoder (BCE summed over pixels), KL to N(0, I), the loss averaged
over the batch. Both get the same in-memory Fashion-MNIST split (55 000 train,
5 000 validation, as float tensors for pythae, uint8 for aegen), the same
batch size, epochs and Adam learning rate (constant), and both validate once
per epoch. Each is timed over its whole ``train`` call, compilation and
checkpoint writes included; images/s = epochs × training images / seconds.

Both models are then scored by one function, a seeded one-sample ELBO over the
10 000 test images (nats per image), so the comparison does not depend on
either library's own evaluation code.

aegen trains with ``vae-mlp``'s own defaults (bf16 autocast where the CPU has
it, fused AdamW); ``--set`` overrides them to measure an option on its own.

Usage::

    .venv/bin/python bench/vs_pythae.py [--epochs 10] [--batch-size 128] [--limit N]
        [--repeats 2] [--threads T] [--set train.amp=off ...]

Prints one JSON object; ``speedup`` is aegen's images/s over pythae's, measured
in the same run. On a shared CPU timings only ever get slower than the machine
can do, so with ``--repeats R`` each library trains R times, interleaved
(pythae, aegen, aegen, pythae, …), and the best images/s of each counts; CPU
seconds (process time) are printed too, a second view that load disturbs less.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import aegen
from aegen.data.loader import to_float
from aegen.prob import kl_vae
from aegen.runs import make_run_config
from aegen.train import Trainer, bf16_supported

ELBO_SEED = 1234


@torch.no_grad()
def test_elbo(encode, decode_probs, x_uint8: torch.Tensor, batch: int = 1000) -> float:
    """Mean one-sample ELBO (nats per image) of a Bernoulli VAE given as two functions.

    ``encode(x) -> (mu, logvar)``; ``decode_probs(z) -> pixel probabilities (B, 1, 28, 28)``.
    """
    g = torch.Generator().manual_seed(ELBO_SEED)
    total = 0.0
    for s in range(0, len(x_uint8), batch):
        x = to_float(x_uint8[s : s + batch])
        mu, logvar = encode(x)
        eps = torch.randn(mu.shape, generator=g)
        z = mu + torch.exp(0.5 * logvar) * eps
        p = decode_probs(z).reshape(x.shape).float()
        log_px = -F.binary_cross_entropy(p, x, reduction="none").flatten(1).sum(1)
        total += (log_px - kl_vae(mu.float(), logvar.float())).sum().item()
    return total / len(x_uint8)


def run_pythae(data, epochs: int, batch_size: int, lr: float, seed: int, workdir: Path) -> dict:
    from pythae.models import VAE, VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    for name in ("pythae", "pythae.trainers.base_trainer.base_trainer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.manual_seed(seed)
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"))
    train = to_float(data.train.x)  # (N, 1, 28, 28) float32 in [0, 1], in memory
    val = to_float(data.val.x)
    from pythae.data.datasets import BaseDataset

    cfg = BaseTrainerConfig(
        output_dir=str(workdir / "pythae"),
        num_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=lr,
        optimizer_cls="Adam",
        seed=seed,
        no_cuda=True,
    )
    trainer = BaseTrainer(
        model=model,
        train_dataset=BaseDataset(train, torch.zeros(len(train))),
        eval_dataset=BaseDataset(val, torch.zeros(len(val))),
        training_config=cfg,
        callbacks=[],
    )
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        trainer.train()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = trainer.model.eval()

    def encode(x):
        out = model.encoder(x)
        return out.embedding, out.log_covariance

    def decode(z):
        return model.decoder(z)["reconstruction"]

    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "images_per_s": epochs * len(train) / seconds,
        "test_elbo": test_elbo(encode, decode, data.test.x),
    }


def run_aegen(
    data, epochs: int, batch_size: int, lr: float, seed: int, workdir: Path, overrides: list[str]
) -> dict:
    run = make_run_config(
        "vae-mlp",
        overrides=[f"train.lr={lr}", "train.schedule=constant", *overrides],
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    aegen.seed_everything(seed)
    model = aegen.build_model("vae-mlp", run.model_config)
    trainer = Trainer(model, run.train, workdir / "aegen", progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(data)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    model.eval()

    def decode(z):
        return torch.sigmoid(model.decode_logits(z).float())

    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "images_per_s": epochs * len(data.train) / seconds,
        "test_elbo": test_elbo(model.encoder_params, decode, data.test.x),
        "train": {k: getattr(run.train, k) for k in ("amp", "compile", "fused", "channels_last")},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="first N train/test images (0: all)")
    p.add_argument("--set", action="append", default=[], help="aegen override, e.g. train.amp=off")
    p.add_argument("--only", choices=["both", "aegen", "pythae"], default="both")
    p.add_argument("--repeats", type=int, default=1, help="interleaved runs of each; best counts")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = aegen.load_data("fashion-mnist", val_size=5000, limit=args.limit)
    result: dict = {
        "model": "MLP VAE 784-512-16, Bernoulli/BCE",
        "train_images": len(data.train),
        "test_images": len(data.test),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": torch.get_num_threads(),
        "bf16_cpu": bf16_supported(),
        "torch": torch.__version__,
    }
    if args.only != "aegen":
        from importlib.metadata import version

        result["pythae_version"] = version("pythae")
    libs = ["pythae", "aegen"] if args.only == "both" else [args.only]
    runs: dict[str, list[dict]] = {lib: [] for lib in libs}
    for r in range(args.repeats):
        for lib in libs if r % 2 == 0 else libs[::-1]:  # ABBA: drift in load hits both
            with tempfile.TemporaryDirectory() as tmp:
                common = (data, args.epochs, args.batch_size, args.lr, args.seed, Path(tmp))
                if lib == "pythae":
                    runs[lib].append(run_pythae(*common))
                else:
                    runs[lib].append(run_aegen(*common, args.set))
    for lib, rs in runs.items():
        best = max(rs, key=lambda r: r["images_per_s"])
        result[lib] = {
            **best,
            "cpu_seconds": min(r["cpu_seconds"] for r in rs),
            "all_images_per_s": [round(r["images_per_s"], 1) for r in rs],
        }
    if "pythae" in result and "aegen" in result:
        a, b = result["aegen"], result["pythae"]
        result["speedup"] = a["images_per_s"] / b["images_per_s"]
        result["cpu_speedup"] = b["cpu_seconds"] / a["cpu_seconds"]
        result["elbo_diff_nats"] = a["test_elbo"] - b["test_elbo"]  # > 0: aegen's is better
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
