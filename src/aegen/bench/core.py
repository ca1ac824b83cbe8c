"""What every benchmark shares: the case record, machine info, interleaved timing."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..threads import read_steal, steal_share

__all__ = [
    "Case",
    "StealMeter",
    "interleaved",
    "interleaved_rounds",
    "machine_info",
    "paired_median_ratio",
    "write_report",
]


@dataclass
class Case:
    """One measurement: ``value`` in ``unit``, its ``baseline`` and ``ratio`` = value / baseline."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = self.value / self.baseline


class StealMeter:
    """The share of CPU time a hypervisor stole (:func:`aegen.threads.read_steal`) while
    each group of cases ran, kept in each case's ``extra["steal"]``: a ratio or a time is
    only comparable with another measured at about the same steal."""

    def __init__(self, read: Callable[[], tuple[int, int] | None] = read_steal) -> None:
        self.read = read
        self.last, self.count = read(), 0

    def close_group(self, cases: list[Case]) -> float | None:
        """Mark the cases added since the last call with the steal since then; return it."""
        now = self.read()
        share = steal_share(self.last, now)
        for case in cases[self.count :]:
            case.extra["steal"] = share
        self.last, self.count = now, len(cases)
        return share


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")


def _isa() -> list[str]:
    """The CPU's vector and matrix extensions that decide the peaks (AMX: bf16 several times faster)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in _ISA_FLAGS if f in flags]
    except OSError:
        pass
    return []


def speed_switches() -> dict[str, dict[str, Any]]:
    """What each model trains with on this CPU: the arithmetic ``amp=auto`` resolves to
    (bf16 only where the CPU has it) and the other switches of its run config."""
    from ..registry import available
    from ..runs import make_run_config
    from ..train import uses_bf16

    out = {}
    for name in available("model"):
        t = make_run_config(name).train
        out[name] = {"arithmetic": "bf16" if uses_bf16(t.amp) else "fp32", "amp": t.amp,
                     "channels_last": t.channels_last, "fused": t.fused, "compile": t.compile}  # fmt: skip
    return out


def machine_info() -> dict[str, Any]:
    from ..train import bf16_supported

    return {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "isa": _isa(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "bf16": bf16_supported(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        # an ISA forced down (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2) is another kind
        "isa_forced": {
            k: os.environ[k]
            for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
            if k in os.environ
        },  # fmt: skip
        "speed_switches": speed_switches(),
    }


def interleaved_rounds(
    fns: dict[str, Callable[[], float]], repeats: int = 5
) -> dict[str, list[float]]:
    """Call each ``fn`` (which returns a work count, e.g. images) ``repeats`` times, round-robin,
    and return every rate (work per second) of each, in round order.

    The order alternates between rounds: A B, B A, A B, ...: whatever the place in a
    round does to a run (a drifting clock, the previous run's allocations) falls on
    both sides alike."""
    rates: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            fn = fns[name]
            t0 = time.perf_counter()
            work = fn()
            rates[name].append(work / (time.perf_counter() - t0))
    return rates


def interleaved(fns: dict[str, Callable[[], float]], repeats: int = 5) -> dict[str, float]:
    """The best rate of each ``fn`` over :func:`interleaved_rounds`, as ``timeit`` takes
    the minimum: on a shared machine other work only ever slows a run down, so the
    fastest repeat is the closest to what the code itself costs, and both sides of a
    ratio are treated alike."""
    return {k: max(v) for k, v in interleaved_rounds(fns, repeats).items()}


def paired_median_ratio(values: list[float], baselines: list[float]) -> float:
    """The median over rounds of value / baseline, each side from the same round.

    The best of each side may pair a lucky minute of one with an unlucky minute of the
    other; a round's two runs are seconds apart, so slow drift (a host that steals for
    a minute) divides out of its ratio, and the median drops the rounds a burst hit."""
    if not values or len(values) != len(baselines):
        raise ValueError("paired_median_ratio needs as many values as baselines, at least one")
    return statistics.median(v / b for v, b in zip(values, baselines, strict=True))


def write_report(cases: list[Case], path: str | Path | None, title: str) -> dict[str, Any]:
    """Print the report as JSON (and write it to ``path`` when given)."""
    from ..files import atomic_write_text, json_text

    report = {"benchmark": title, "machine": machine_info(), "cases": [asdict(c) for c in cases]}
    text = json_text(report, indent=2)  # a case's NaN is null: the report stays JSON
    print(text)
    if path:
        atomic_write_text(path, text + "\n")
    return report
