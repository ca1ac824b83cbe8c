"""The whole benchmark suite in one run: ``aegen bench [--quick] [--json OUT]``
(also ``.venv/bin/python bench/run.py``).

Every case is ``{"name", "value", "unit", "baseline", "ratio"}``; the baseline is
measured in the same run (interleaved where it can be), because this machine is
shared and absolute speeds drift. Cases:

- ``trainer_overhead/<model>``: aegen's Trainer vs a bare PyTorch loop, every
  registered model and prior, on the same model object, batch and data;
- ``peak/…``: the machine's own peak (2048² matmul, 64→64 3×3 convolution, and that
  convolution trained: forward + backward) in fp32 and bf16;
  ``peak_fraction/<model>``: FLOP/s (counted by ``torch.utils.flop_counter``) that
  a training loop with the model's default speed switches reaches, as a fraction of
  the best forward convolution peak (and, in ``extra``, of the trained one);
  ``peak_fraction/vqvae_of_own_conv_<fp32|bf16>``: the VQ-VAE's training FLOP/s
  against its own dominant convolution shape trained alone (issue 20's target);
- ``vqvae/train_bf16``: bf16 autocast + channels_last vs fp32; ``vqvae/encode``;
  ``sample/<prior>_kv_cache``: cached vs uncached sampling; ``data/batching``;
- ``scaling/…``: epoch time at ¼ and ½ of the data vs the share of the full epoch;
  ``memory/…``: peak resident memory of a whole training run;
- ``denormals/…``: training images/s with denormals flushed (the command's default) vs kept;
  ``malloc/…``: with malloc keeping freed memory (the command's default) vs glibc's own;
- ``contention/…``: training alone and beside a busy process pinned to one core, with
  aegen's thread choice and with the old behaviour (:mod:`aegen.bench.contention`);
- ``whole_process/vae-mlp_2_epochs``: a whole ``aegen train vae-mlp --epochs 2`` process
  against a bare PyTorch script doing the same epochs from the same files, as
  training images per second from start to exit (:mod:`aegen.bench.whole_process`);
- ``ddp/…``: images/s of ``aegen train --nproc 2`` vs one process;
- ``explore/…``: milliseconds of one decode (and one prior step) through ``aegen
  explore``'s HTTP server, against its 50 ms budget.

``--quick`` runs every case at a small size (about a minute) so the tests can
check the report's shape; the numbers worth quoting come from a full run.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..data.datasets import Dataset, Split, load_data
from ..data.loader import to_float
from ..files import read_json
from ..registry import available
from ..runlog import read_metrics
from ..runs import make_run_config
from ..threads import FLUSH_ENV, MALLOC_ENV
from ..train import bf16_supported
from . import data_scaling, explore, machine, trainer_overhead, vq
from .contention import contention_cases
from .core import Case, StealMeter, write_report
from .whole_process import whole_process_case

__all__ = ["run_suite"]


def _code_data(n: int, size: int = 7, codes: int = 256) -> Dataset:
    """Random code grids, the shape a prior trains on (speed does not depend on the values)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, codes, (n, size, size), generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    split = Split(x, y)
    return Dataset("codes", split, Split(x[:0], y[:0]), split, [str(i) for i in range(10)])


def _cli(argv: list[str], env: dict | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "aegen", *argv],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ddp_case(data: str, limit: int, epochs: int, model: str = "ae-conv") -> Case:
    """Training images/s with two gloo processes vs one, same global batch (issue: scale past one process)."""
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, 2):
            out = Path(tmp) / f"p{nproc}"
            argv = [
                "train",
                model,
                "--data",
                data,
                "--epochs",
                str(epochs),
                "--quiet",
                "--out",
                str(out),
            ]
            if limit:
                argv += ["--limit", str(limit)]
            if nproc > 1:
                argv += ["--nproc", str(nproc)]
            _cli(argv)
            rates[nproc] = float(read_metrics(out / "metrics.csv")[-1]["images_per_s"])
    return Case(
        f"ddp/{model}_2proc",
        rates[2],
        "images/s",
        rates[1],
        extra={
            "baseline": "one process, all cores",
            "cores": os.cpu_count(),
            "epochs": epochs,
            "note": "images/s of the last epoch, global batch the same",
        },
    )


def switch_case(
    name: str,
    env: str,
    on: str,
    off: str,
    argv: list[str],
    baseline: str,
    record: str = "config.json",
    extra: dict | None = None,
    rounds: int = 2,
) -> Case:
    """Training images/s of one ``aegen`` command (``argv``, given its own ``--out``) with a
    process-wide switch on (the command's default) vs off, set through the environment
    variable ``env``: each side's mean over ``rounds`` processes, in the order on off, off
    on, ... (one order favoured whichever side ran first or last while the machine
    drifted: 0.885 on, then off, and 1.08 interleaved, docs/performance.md); each
    process's rate is its mean over the epochs after the first (the first pays for
    warm-up). Each run's own record of its environment (the ``environment`` of the JSON
    file ``record`` it writes) goes into ``extra``, so a switch the command ignored
    shows there."""
    rates: dict[str, list[float]] = {"on": [], "off": []}
    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
                out = Path(tmp) / f"{side}{r}"
                value = on if side == "on" else off
                _cli([*argv, "--quiet", "--out", str(out)], env={**os.environ, env: value})
                rows = read_metrics(out / "metrics.csv")[1:]
                rates[side].append(sum(float(row["images_per_s"]) for row in rows) / len(rows))
                records[side] = read_json(out / record, RuntimeError).get("environment", {})
    return Case(
        name,
        sum(rates["on"]) / rounds,
        "images/s",
        sum(rates["off"]) / rounds,
        extra={"baseline": baseline, **(extra or {}), "rounds": rates, "environment": records},
    )


def _train_argv(model: str, data: str, limit: int, epochs: int) -> list[str]:
    argv = ["train", model, "--data", data, "--epochs", str(epochs)]
    return argv + (["--limit", str(limit)] if limit else [])


def denormal_case(data: str, limit: int, epochs: int, model: str = "ae-mlp") -> Case:
    """Training with denormals flushed to zero (the command's default) vs kept."""
    return switch_case(
        f"denormals/{model}_flushed",
        FLUSH_ENV,
        "1",
        "0",
        _train_argv(model, data, limit, epochs),
        "denormals kept (AEGEN_FLUSH_DENORMAL=0)",
        extra={"epochs": epochs, "model": model},
    )


MALLOC_BASELINE = "glibc's own malloc thresholds (AEGEN_MALLOC=system)"


def malloc_case(data: str, limit: int, epochs: int, model: str = "m2") -> Case:
    """Training with malloc keeping freed memory (the command's default) vs glibc's own
    thresholds (``AEGEN_MALLOC=system``) on ``aegen train m2``: a plain training, which
    the switch must not slow (:func:`semisup_malloc_case` times the path it speeds up)."""
    return switch_case(
        f"malloc/{model}_keeps_freed_memory",
        MALLOC_ENV,
        "",
        "system",
        _train_argv(model, data, limit, epochs),
        MALLOC_BASELINE,
        extra={"epochs": epochs, "model": model},
    )


def semisup_malloc_case(data: str, limit: int, epochs: int, labels: float = 0.2) -> Case:
    """The malloc switch on the semi-supervised M2 (``aegen classify --mode m2``), whose
    step decodes its unlabeled images once per class: the large blocks glibc gave back
    to the kernel after every step (docs/performance.md, "Page faults"). ``classify``
    needs an autoencoder run to name its data; M2 trains a model of its own, so a tiny
    one does. Images/s counts the labeled images of a step."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "ae"
        _cli(_train_argv("ae-mlp", data, 256, 1) + ["--quiet", "--out", str(run)])
        argv = ["classify", str(run), "--mode", "m2", "--labels", str(labels)]
        argv += ["--epochs", str(epochs), "--min-steps", "0", "--limit", str(limit)]
        return switch_case(
            "malloc/m2_semisup_keeps_freed_memory",
            MALLOC_ENV,
            "",
            "system",
            argv,
            MALLOC_BASELINE,
            record="classifier.json",
            extra={"epochs": epochs, "labels": labels, "command": "aegen classify --mode m2"},
        )


def run_suite(
    quick: bool = False, data: str = "fashion-mnist", json_path: str | None = None
) -> dict:
    """Run every case and print (and write) the JSON report."""
    limit = 2000 if quick else 0
    steps, repeats, min_s = (4, 2, 0.2) if quick else (30, 7, 3.0)
    ds = load_data(data, val_size=0, limit=limit)
    cases: list[Case] = []
    t0 = time.perf_counter()

    steal = StealMeter()

    def done(what: str) -> None:  # progress on stderr: the JSON on stdout stays clean
        share = steal.close_group(cases)
        stolen = "" if share is None else f"; {100 * share:.0f} % stolen"
        print(
            f"bench: {what} ({time.perf_counter() - t0:.0f} s{stolen})", file=sys.stderr, flush=True
        )

    # trainer overhead: every model and every prior
    codes = _code_data(512 if quick else 8192)  # random grids: speed does not depend on the values
    for name in available("model"):
        cases.append(
            trainer_overhead.measure(
                name,
                ds,
                steps=steps,
                repeats=repeats,
                train=make_run_config(name).train,
                min_seconds=min_s,
            )
        )
    for name in available("prior"):
        cases.append(
            trainer_overhead.measure(name, codes, steps=steps, repeats=repeats, min_seconds=min_s)
        )
    done("trainer overhead")

    # the machine's peak and the fraction of it training reaches
    # small sizes for --quick: the report's shape, not its numbers
    peaks = machine.peaks(256, 8) if quick else machine.peaks()
    cases += peaks
    best_conv = max(c.value for c in peaks if c.name in ("peak/conv3x3_fp32", "peak/conv3x3_bf16"))
    best_train = max(c.value for c in peaks if c.name.startswith("peak/conv3x3_train"))
    for name in ("vqvae", "ae-conv"):
        c = machine.training_fraction(
            name,
            ds.train.x,
            ds.train.y,
            best_conv,
            make_run_config(name).train,
            steps=2 if quick else 20,
        )
        c.unit = "GFLOP/s (ratio: of the best 3x3 conv peak)"
        c.extra["of_best_conv_train_peak"] = c.value / best_train
        cases.append(c)
    # the restated target: the VQ-VAE against its own dominant convolution, trained
    vq_cfg = make_run_config("vqvae").train
    for amp in ("off", "bf16") if bf16_supported() else ("off",):
        cases.append(
            machine.own_conv_fraction(
                "vqvae",
                ds.train.x,
                ds.train.y,
                dataclasses.replace(vq_cfg, amp=amp),
                steps=2 if quick else 20,
            )
        )
    done("peaks and peak fractions")

    # the VQ pipeline's hot paths
    xb = to_float(ds.train.x[:128])
    amp = "bf16" if bf16_supported() else "off"
    vq_steps = 2 if quick else 10
    cases.append(
        Case(
            "vqvae/train_bf16_channels_last",
            vq.train_speed(xb, vq_steps, amp, True),
            "images/s",
            vq.train_speed(xb, vq_steps, "off", False),
            extra={"amp": amp, "baseline": "fp32, contiguous"},
        )
    )
    cases.append(
        Case(
            "vqvae/encode",
            vq.encode_speed(to_float(ds.train.x[: 500 if quick else 5000])),
            "images/s",
        )
    )
    cases += vq.sampling_cases(8 if quick else 100)
    cases.append(data_scaling.batching(ds))
    done("VQ-VAE, encoding, sampling, batching")

    # the explorer: one decode per request, as a hovering mouse asks for them
    cases += explore.latency_cases(10 if quick else 50)
    done("explorer latency")

    # scaling and memory
    cases += data_scaling.scaling(ds, cfg=make_run_config("ae-mlp").train)
    mem_argv = ["train", "vqvae", "--data", data, "--epochs", "1"] + (
        ["--limit", str(limit)] if limit else []
    )
    cases.append(data_scaling.peak_memory(mem_argv))
    done("scaling and memory")

    # denormals flushed vs kept
    cases.append(denormal_case(data, limit=limit, epochs=2 if quick else 4))
    cases.append(malloc_case(data, limit=limit, epochs=2 if quick else 3))
    cases.append(semisup_malloc_case(data, limit=limit, epochs=2 if quick else 3))
    done("denormals and malloc")

    # beside a busy process: aegen's threads and passive wait vs the old behaviour
    cases += contention_cases(data, limit=2000 if quick else 12000, epochs=2 if quick else 3)
    done("contention")

    # a whole `aegen train` process against a bare script doing the same epochs
    cases.append(
        whole_process_case("vae-mlp", data, epochs=2, limit=limit, rounds=1 if quick else 4)
    )
    done("whole process")

    # two processes vs one
    cases.append(ddp_case(data, limit=1024 if quick else 0, epochs=2))
    done("one vs two processes")
    return write_report(cases, json_path, "aegen" + (" (quick)" if quick else ""))
