"""Trainer overhead: images/s of aegen's Trainer vs a bare PyTorch loop on the same model object.

Both run the same steps: batch by index from in-memory uint8 data, the model's
``loss``, AdamW, backward, step. The bare loop has nothing else; the Trainer
adds what makes it a trainer (learning-rate schedule, the finiteness check, log
accumulation, the progress bar's bookkeeping). The ratio is the price of that.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable

import torch

from ..config import TrainConfig
from ..data.datasets import Dataset, Split, load_data
from ..data.loader import Batch, epoch_batches, to_float
from ..models.abilities import TrainsInPhases
from ..registry import available, build_model
from ..train import Trainer, autocast, seed_everything
from .core import Case, interleaved_rounds, paired_median_ratio, write_report


def _bare_loop(
    model: torch.nn.Module,
    steppers: list[tuple[Callable, torch.optim.Optimizer]],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    steps: int,
    amp: str,
    channels_last: bool,
    epoch: int = 0,
) -> int:
    """``steps`` batches of epoch ``epoch``'s shuffle; each runs every ``(loss, optimizer)`` in turn: one for most
    models, one per phase (D, then G) for a model that trains in phases, as the
    Trainer does."""
    model.train()
    for idx in epoch_batches(x.shape[0], batch_size, seed=0, epoch=epoch)[:steps]:
        xb = to_float(x[idx])
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        batch = Batch(xb, y[idx])
        for loss_fn, opt in steppers:
            with autocast(amp):
                loss, _ = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return steps * batch_size


def measure(
    name: str,
    data: Dataset,
    batch_size: int = 128,
    steps: int = 30,
    repeats: int = 5,
    train: TrainConfig | None = None,
    min_seconds: float = 1.0,
) -> Case:
    """The Trainer's and the bare loop's images/s for model ``name``, interleaved."""
    seed_everything(0)
    model = build_model(name)
    cls_defaults = dict(getattr(type(model), "train_defaults", {}))
    base = train or TrainConfig(
        **{k: v for k, v in cls_defaults.items() if k in TrainConfig.__dataclass_fields__}
    )
    cfg = dataclasses.replace(base, epochs=1, batch_size=batch_size, schedule="constant", seed=0)
    n = steps * batch_size
    subset = Dataset(
        name=data.name,
        train=Split(data.train.x[:n], data.train.y[:n]),
        val=Split(data.train.x[:0], data.train.y[:0]),
        test=data.test,
        classes=data.classes,
    )
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)

    def bare() -> int:
        # a fresh optimizer per run, as the Trainer builds one per fit, from the same config
        # (fused where the model asks for it): a long-lived AdamW ran ae-mlp faster than a
        # new one (docs/performance.md), which made the Trainer look slower than it is
        def adamw(params, betas=(0.9, 0.999), lr_scale=1.0) -> torch.optim.Optimizer:
            return torch.optim.AdamW(
                params, lr=cfg.lr * lr_scale, betas=betas, weight_decay=cfg.weight_decay,
                fused=cfg.fused or None,
            )  # fmt: skip

        if isinstance(model, TrainsInPhases):
            steppers = [
                (ph.loss, adamw(ph.params, ph.betas, ph.lr_scale)) for ph in model.training_phases()
            ]
        else:
            steppers = [(model.loss, adamw(model.parameters()))]
        return _bare_loop(
            model,
            steppers,
            subset.train.x,
            subset.train.y,
            batch_size,
            steps,
            cfg.amp,
            cfg.channels_last,
        )

    def trainer() -> int:
        Trainer(model, cfg, None, progress=False).fit(subset)
        return steps * batch_size

    bare(), trainer()  # warm-up: allocator, oneDNN kernels, compiled graphs
    # Time enough steps (up to the data at hand) that each repeat lasts about
    # min_seconds: fast models take milliseconds a step, so fixed costs and timer noise
    # would decide; slow ones would take minutes a repeat.
    t0 = time.perf_counter()
    bare()
    per_step = (time.perf_counter() - t0) / steps
    # Slow ones (diffusion, flow: a tenth of a second a step and more) need fewer than
    # ``steps`` for the same seconds; at least 8, so the first step is not most of it.
    want = math.ceil(min_seconds / max(per_step, 1e-9))
    fit = min(len(data.train) // batch_size, max(want, 8))
    if fit != steps:
        steps, n = fit, fit * batch_size
        subset = dataclasses.replace(subset, train=Split(data.train.x[:n], data.train.y[:n]))
        bare(), trainer()
    rounds = interleaved_rounds({"bare": bare, "trainer": trainer}, repeats=repeats)
    best_trainer, best_bare = max(rounds["trainer"]), max(rounds["bare"])
    # The ratio is the median of each round's own: the machine's speed drifts by a fifth
    # and more within a minute here (m2 on Zen 4: 2 720 images/s in the first round,
    # 1 870 in the last), and the best of each side can pair one's fast minute with the
    # other's slow one (docs/performance.md); the two runs of a round are seconds apart.
    return Case(
        f"trainer_overhead/{name}",
        best_trainer,
        "images/s",
        best_bare,
        ratio=paired_median_ratio(rounds["trainer"], rounds["bare"]),
        extra={
            "ratio_best_of_each": best_trainer / best_bare,
            "repeats": repeats,
            "batch_size": batch_size,
            "steps": steps,
            "amp": cfg.amp,
            "channels_last": cfg.channels_last,
            "compile": cfg.compile,
        },
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default=",".join(available("model")))
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    data = load_data(args.data, val_size=0)
    cases = [
        measure(m, data, steps=args.steps, repeats=args.repeats) for m in args.models.split(",")
    ]
    return write_report(cases, args.json, "trainer_overhead")
