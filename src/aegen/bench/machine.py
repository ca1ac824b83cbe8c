"""The machine's own peak, measured in the same run: a large matmul and a 3×3 convolution,
in fp32 and bf16, and the fraction of it that model training reaches (FLOPs counted by
``torch.utils.flop_counter``)."""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import TrainConfig
from ..data.loader import Batch, to_float
from ..registry import build_model
from ..train import autocast, seed_everything
from .core import Case


def _rate(fn, flops: float, min_time: float = 1.0, window: float = 0.2) -> float:
    """FLOP/s of ``fn``: the best of timing windows (each repeats ``fn`` for at least
    ``window`` seconds) over at least ``min_time`` seconds in all.

    Windows, not single calls: on a shared machine with AMX one short call now and
    then ran several times faster than any sustained stretch (docs/performance.md,
    ``peak/``), and a peak made of such outliers is not one that a training loop
    could ever be held against."""
    fn()  # warm-up
    best, spent = 0.0, 0.0
    while spent < min_time:
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            dt = time.perf_counter() - t0
            if dt >= window:
                break
        spent += dt
        best = max(best, calls * flops / dt)
    return best


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return _rate(lambda: a @ b, 2.0 * n**3)


def _conv3x3(
    dtype: torch.dtype, batch: int, channels: int, size: int
) -> tuple[torch.nn.Conv2d, torch.Tensor, float]:
    """A channels→channels 3×3 convolution, its input (channels_last) and forward FLOPs."""
    x = torch.randn(batch, channels, size, size, dtype=dtype).contiguous(
        memory_format=torch.channels_last
    )
    conv = (
        torch.nn.Conv2d(channels, channels, 3, padding=1)
        .to(dtype)
        .to(memory_format=torch.channels_last)
    )
    return conv, x, 2.0 * batch * channels * channels * 9 * size * size


def conv_peak(dtype: torch.dtype, batch: int = 64, channels: int = 64, size: int = 28) -> float:
    """A 3×3 convolution, channels→channels, at the sizes the models use (channels_last)."""
    conv, x, flops = _conv3x3(dtype, batch, channels, size)
    with torch.no_grad():
        return _rate(lambda: conv(x), flops)


def conv_train_peak(
    dtype: torch.dtype, batch: int = 64, channels: int = 64, size: int = 28
) -> float:
    """The same 3×3 convolution trained: forward plus backward to its input and weight
    (3× the forward FLOPs), the most any training step built of convolutions can reach."""
    conv, x, flops = _conv3x3(dtype, batch, channels, size)
    x.requires_grad_()
    grad = torch.ones_like(x)  # channels_last, like x

    def step() -> None:
        conv(x).backward(grad)
        x.grad = conv.weight.grad = conv.bias.grad = None

    return _rate(step, 3 * flops)


def peaks(matmul_n: int = 2048, conv_batch: int = 64) -> list[Case]:
    """Matmul and 3×3 conv peaks (forward, and the conv trained) in fp32 and bf16;
    smaller sizes give the report's shape quickly (``aegen bench --quick``)."""
    cases = []
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        mm = matmul_peak(dtype, n=matmul_n)
        cases.append(Case(f"peak/matmul_{label}", mm / 1e9, "GFLOP/s"))
        cv = conv_peak(dtype, batch=conv_batch)
        cases.append(Case(f"peak/conv3x3_{label}", cv / 1e9, "GFLOP/s"))
        cases.append(
            Case(
                f"peak/conv3x3_train_{label}",
                conv_train_peak(dtype, batch=conv_batch) / 1e9,
                "GFLOP/s",
                extra={"what": "forward + backward of the same convolution"},
            )
        )
    return cases


def training_flops(model: torch.nn.Module, batch: Batch, amp: str) -> float:
    """FLOPs of one training step (forward + backward) as counted by torch's FLOP counter."""
    counter = FlopCounterMode(display=False)
    with counter, autocast(amp):
        loss, _ = model.loss(batch)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def training_fraction(
    name: str,
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    peak_gflops: float,
    cfg: TrainConfig,
    batch_size: int = 128,
    steps: int = 20,
) -> Case:
    """GFLOP/s reached while training model ``name`` with ``cfg``'s speed switches, vs ``peak``."""
    seed_everything(0)
    model = build_model(name)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, fused=getattr(cfg, "fused", False) or None
    )

    def batch(i: int) -> Batch:
        xb = to_float(x_uint8[i * batch_size : (i + 1) * batch_size])
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return Batch(xb, y[i * batch_size : (i + 1) * batch_size])

    flops = training_flops(model, batch(0), cfg.amp)

    def run() -> None:
        for i in range(steps):
            with autocast(cfg.amp):
                loss, _ = model.loss(batch(i))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    achieved = _rate(run, flops * steps, min_time=2.0) / 1e9
    return Case(
        f"peak_fraction/{name}",
        achieved,
        "GFLOP/s",
        peak_gflops,
        extra={
            "amp": cfg.amp,
            "channels_last": cfg.channels_last,
            "flops_per_step": flops,
            "batch_size": batch_size,
        },
    )
