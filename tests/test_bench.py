"""The benchmark suite's pieces produce well-formed cases (speed itself is never asserted here)."""

from __future__ import annotations

import json
import math
import time

import torch
from conftest import assert_user_error

from aegen.bench import data_scaling, machine, trainer_overhead, vq
from aegen.bench.core import Case, write_report
from aegen.bench.suite import _code_data, denormal_case
from aegen.runs import make_run_config


def _well_formed(c: Case) -> None:
    assert c.name and c.unit
    assert math.isfinite(c.value) and c.value > 0
    if c.baseline is not None:
        assert c.baseline > 0
        assert c.ratio == c.value / c.baseline


def test_trainer_overhead_case_for_a_model_and_a_prior(small_synthetic):
    c = trainer_overhead.measure(
        "ae-mlp",
        small_synthetic,
        batch_size=16,
        steps=2,
        repeats=1,
        min_seconds=0,
        train=make_run_config("ae-mlp").train,
    )
    _well_formed(c)
    assert c.name == "trainer_overhead/ae-mlp" and c.baseline is not None
    p = trainer_overhead.measure(
        "transformer", _code_data(32), batch_size=16, steps=2, repeats=1, min_seconds=0
    )
    _well_formed(p)


def test_peak_fraction_counts_flops(small_synthetic):
    cv = machine.conv_peak(torch.float32, batch=2, channels=8)
    assert cv > 0
    c = machine.training_fraction(
        "ae-conv",
        small_synthetic.train.x,
        small_synthetic.train.y,
        cv / 1e9,
        make_run_config("ae-conv").train,
        batch_size=8,
        steps=1,
    )
    _well_formed(c)
    assert c.extra["flops_per_step"] > 0


def test_peak_rate_is_timed_over_windows_not_single_calls():
    # a call that is now and then instant must not make the peak: every window of at
    # least ``window`` seconds holds mostly slow calls
    calls = []

    def fn():
        calls.append(1)
        if len(calls) % 5:
            time.sleep(0.01)

    rate = machine._rate(fn, 1.0, min_time=0.15, window=0.05)
    # at most 125 calls/s sustained (sleep never ends early); one instant call alone: ~1e6/s
    assert 0 < rate < 200


def test_conv_train_peak_counts_forward_and_backward():
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    counter = FlopCounterMode(display=False)
    with counter:
        conv(x).sum().backward()
    assert counter.get_total_flops() == 3 * 2 * 2 * 8 * 8 * 9 * 6 * 6  # the formula used
    assert machine.conv_train_peak(torch.float32, batch=2, channels=8, size=6) > 0


def test_sampling_and_encoding_cases():
    cases = vq.sampling_cases(2)
    assert {c.name.split("/")[1].split("_")[0] for c in cases} == {
        "maskgit",
        "pixelcnn",
        "pixelrnn",
        "transformer",
    }
    for c in cases:
        _well_formed(c)
    assert vq.encode_speed(torch.rand(4, 1, 28, 28), repeats=1) > 0


def test_scaling_and_batching_cases(small_synthetic):
    for c in data_scaling.scaling(small_synthetic, batch_size=16) + [
        data_scaling.batching(small_synthetic, 16)
    ]:
        _well_formed(c)


def test_report_is_json_with_machine_info(tmp_path, capsys):
    out = tmp_path / "bench.json"
    write_report([Case("x", 2.0, "images/s", 4.0)], out, "t")
    report = json.loads(out.read_text())
    assert report["machine"]["torch"] == torch.__version__
    assert set(report["machine"]["isa"]) <= {
        "avx2",
        "avx512f",
        "avx512_bf16",
        "avx512_fp16",
        "amx_bf16",
    }
    assert report["cases"] == [
        {"name": "x", "value": 2.0, "unit": "images/s", "baseline": 4.0, "ratio": 0.5, "extra": {}}
    ]
    assert json.loads(capsys.readouterr().out) == report


def test_bench_cli_refuses_bad_data_before_timing(cli, tmp_path):
    assert_user_error(cli("bench", "--quick", "--data", str(tmp_path / "missing")), "missing")


def test_denormal_case_compares_flushed_with_kept():
    c = denormal_case("synthetic", limit=256, epochs=2)
    _well_formed(c)
    assert c.baseline > 0 and c.extra["epochs"] == 2
