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
from ..train import autocast, bf16_supported, seed_everything, uses_bf16
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
    """Matmul and 3×3 conv peaks (forward, and the conv trained) in fp32, and in bf16 where
    the CPU has it (without, torch emulates bf16 at a few GFLOP/s: no peak worth a row);
    smaller sizes give the report's shape quickly (``aegen bench --quick``)."""
    cases = []
    kinds = [("fp32", torch.float32)] + ([("bf16", torch.bfloat16)] if bf16_supported() else [])
    for label, dtype in kinds:
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


_CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def conv_shapes(model: torch.nn.Module, batch: Batch, amp: str) -> list[dict]:
    """Every convolution a training step of ``model`` runs, grouped by shape (layer and
    input), with its share of the step's convolution FLOPs, largest first."""
    seen: dict[tuple, dict] = {}

    def hook(mod: torch.nn.Module, inputs: tuple) -> None:
        x = inputs[0]
        key = (type(mod).__name__, mod.in_channels, mod.out_channels, mod.kernel_size,
               mod.stride, mod.padding, tuple(x.shape))  # fmt: skip
        entry = seen.setdefault(key, {"layer": mod, "input": tuple(x.shape), "calls": 0})
        entry["calls"] += 1

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, _CONVS)]
    try:
        with torch.no_grad(), autocast(amp):
            model.loss(batch)
    finally:
        for h in handles:
            h.remove()
    for e in seen.values():
        e["flops"] = e["calls"] * _forward_flops(e["layer"], e["input"], amp)
    total = sum(e["flops"] for e in seen.values()) or 1.0
    for e in seen.values():
        e["share"] = e["flops"] / total
    return sorted(seen.values(), key=lambda e: -e["flops"])


def _forward_flops(layer: torch.nn.Module, shape: tuple, amp: str) -> float:
    counter = FlopCounterMode(display=False)
    x = torch.zeros(shape)
    with torch.no_grad(), counter, autocast(amp):
        layer(x)
    return float(counter.get_total_flops())


def layer_train_peak(layer: torch.nn.Module, shape: tuple, amp: str, channels_last: bool) -> float:
    """FLOP/s of one convolution layer trained alone at ``shape`` (forward, and the
    backward to its input and weight: 3× the forward FLOPs), with the same autocast and
    memory format as the training run: the most that layer can reach inside training."""
    import copy

    layer = copy.deepcopy(layer).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    layer.to(memory_format=fmt)
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
    flops = 3 * _forward_flops(layer, shape, amp)

    def step() -> None:
        with autocast(amp):
            out = layer(x)
        out.backward(torch.ones_like(out))
        x.grad = None
        for p in layer.parameters():
            p.grad = None

    return _rate(step, flops)


def own_conv_fraction(
    name: str,
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    batch_size: int = 128,
    steps: int = 20,
) -> Case:
    """The training run's FLOP/s as a share of its own dominant convolution trained alone
    (issue 20's restated peak target: what training can reach, not the forward peak)."""
    achieved = training_fraction(name, x_uint8, y, 1.0, cfg, batch_size, steps).value * 1e9
    seed_everything(0)
    model = build_model(name)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    xb = to_float(x_uint8[:batch_size])
    if cfg.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    shapes = conv_shapes(model, Batch(xb, y[:batch_size]), cfg.amp)
    top = shapes[0]
    peak = layer_train_peak(top["layer"], top["input"], cfg.amp, cfg.channels_last)
    layer = top["layer"]
    return Case(
        f"peak_fraction/{name}_of_own_conv_{'bf16' if uses_bf16(cfg.amp) else 'fp32'}",
        achieved / 1e9,
        "GFLOP/s (ratio: of its dominant convolution trained alone)",
        peak / 1e9,
        extra={
            "dominant_conv": f"{type(layer).__name__}({layer.in_channels}→{layer.out_channels}, "
            f"k={layer.kernel_size}, stride={layer.stride}) on {list(top['input'])}",
            "its_share_of_conv_flops": top["share"],
            "amp": cfg.amp,
            "channels_last": cfg.channels_last,
        },
    )
