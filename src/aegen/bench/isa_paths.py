"""Which speed switches pay on the CPU at hand: every model's training with its defaults
against each switch flipped (issue 20: fp32 on AVX2 as a first-class path).

For each registered model, ``isa/<model>/<switch>`` is the images/s of the Trainer
with one switch changed against the model's defaults as this CPU resolves them
(``amp=auto`` is bf16 only where the CPU has it), interleaved, best of repeats:

- ``channels_last`` flipped (conv models only: for an MLP it changes nothing);
- ``fused`` AdamW flipped;
- ``batch_256``: twice the default batch (speed only: a larger batch is another
  recipe, so it is reported, never switched on for speed alone);
- ``compile`` (``--compile``, slow: each compile takes tens of seconds): the per-step
  gain, the compile seconds, and whether the gain pays the compile back within one
  default run (``extra.pays_back``).

Run it on each CPU kind; with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` a
newer CPU takes the AVX2 path (no bf16, no AVX-512) and gives that kind's answer.
The decisions these numbers led to live in each model's ``train_defaults`` (the
same on every kind; only ``amp=auto`` follows the CPU), and ``aegen bench``
records them per model in ``machine.speed_switches``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from ..config import TrainConfig
from ..data.datasets import Dataset, Split, load_data
from ..registry import available, build_model
from ..runs import make_run_config
from ..train import Trainer, seed_everything, uses_bf16
from .core import Case, interleaved, write_report

CONV_MODELS = ("ae-conv", "vae-conv", "vqvae", "diffusion", "gan", "flow")


def _subset(data: Dataset, n: int) -> Dataset:
    tr = data.train
    return dataclasses.replace(data, train=Split(tr.x[:n], tr.y[:n]), val=Split(tr.x[:0], tr.y[:0]))


def _fit(name: str, cfg: TrainConfig, data: Dataset) -> float:
    """Train a fresh model for one epoch of ``data``; its images/s."""
    seed_everything(0)
    model = build_model(name)
    t0 = time.perf_counter()
    Trainer(model, cfg, None, progress=False).fit(data)
    return len(data.train) / (time.perf_counter() - t0)


def switches(name: str) -> dict[str, dict]:
    """The switches worth trying for ``name``, as TrainConfig changes from its defaults."""
    base = make_run_config(name).train
    out = {"fused": {"fused": not base.fused}, "batch_256": {"batch_size": 256}}
    if name in CONV_MODELS:
        out["channels_last"] = {"channels_last": not base.channels_last}
    return out


def measure_model(
    name: str, data: Dataset, steps: int = 30, repeats: int = 5, compile_too: bool = False
) -> list[Case]:
    base = make_run_config(name).train
    base = dataclasses.replace(base, epochs=1, schedule="constant", seed=0, max_minutes=0)
    variants = {"default": base} | {
        k: dataclasses.replace(base, **v) for k, v in switches(name).items()
    }
    # the same images for every variant: enough steps of the largest batch
    sub = _subset(data, steps * max(v.batch_size for v in variants.values()))
    for cfg in variants.values():
        _fit(name, cfg, _subset(sub, 2 * cfg.batch_size))  # warm-up: kernels, allocator

    def run(cfg: TrainConfig) -> int:
        _fit(name, cfg, sub)
        return len(sub.train)  # interleaved() divides the images by the call's seconds

    rates = interleaved({k: lambda cfg=cfg: run(cfg) for k, cfg in variants.items()}, repeats)
    resolved = "bf16" if uses_bf16(base.amp) else "fp32"
    cases = [
        Case(
            f"isa/{name}/{k}",
            rates[k],
            "images/s",
            rates["default"],
            extra={"change": switches(name)[k], "arithmetic": resolved, "images": len(sub.train)},
        )
        for k in variants
        if k != "default"
    ]
    if compile_too:
        cases.append(_compile_case(name, base, sub, rates["default"], resolved))
    return cases


def _compile_case(
    name: str, base: TrainConfig, sub: Dataset, eager_rate: float, resolved: str
) -> Case:
    cfg = dataclasses.replace(base, compile=True)
    t0 = time.perf_counter()
    _fit(name, cfg, _subset(sub, 2 * cfg.batch_size))  # the compile, and two steps
    compile_s = time.perf_counter() - t0
    rate = max(_fit(name, cfg, sub) for _ in range(2))
    default_run_s = make_run_config(name).train.epochs * 55000 / eager_rate
    saved = default_run_s * (1 - eager_rate / rate) if rate > eager_rate else 0.0
    return Case(
        f"isa/{name}/compile",
        rate,
        "images/s",
        eager_rate,
        extra={
            "compile_s": compile_s,
            "default_run_s": default_run_s,
            "saved_in_default_run_s": saved,
            "pays_back": saved > compile_s,
            "arithmetic": resolved,
        },
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(available("model")))
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    data = load_data(a.data, val_size=0)
    cases = []
    for m in a.models.split(","):
        cases += measure_model(m, data, a.steps, a.repeats, a.compile)
    return write_report(cases, a.json, "isa_paths")
