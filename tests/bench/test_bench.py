"""The benchmark suite's pieces produce well-formed cases (speed itself is never asserted here)."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from conftest import assert_user_error

from aegen.bench import data_scaling, machine, trainer_overhead, vq
from aegen.bench.core import (
    Case,
    StealMeter,
    interleaved_rounds,
    paired_median_ratio,
    write_report,
)
from aegen.bench.suite import _code_data, denormal_case, malloc_case, semisup_malloc_case
from aegen.pipelines.vq_prior import PIPELINE_PRIOR_RECIPE
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
    _well_formed(c)  # one round: its ratio is value / baseline
    assert c.name == "trainer_overhead/ae-mlp" and c.baseline is not None
    assert c.extra["ratio_best_of_each"] == c.value / c.baseline and c.extra["repeats"] == 1
    # with one round, the median of the rounds' ratios is that round's, the best-of-each's
    assert c.ratio == pytest.approx(c.extra["ratio_best_of_each"])
    p = trainer_overhead.measure(
        "transformer", _code_data(32), batch_size=16, steps=2, repeats=1, min_seconds=0
    )
    _well_formed(p)


def test_trainer_overhead_ratio_is_the_median_of_the_rounds_own(small_synthetic, monkeypatch):
    # the machine sped up in the last round, between the bare run and the trainer's
    def rounds(fns, repeats):
        for fn in fns.values():
            fn()  # the work still runs: the case is built from what it returns
        return {"bare": [100.0, 100.0, 100.0], "trainer": [100.0, 100.0, 130.0]}

    monkeypatch.setattr(trainer_overhead, "interleaved_rounds", rounds)
    c = trainer_overhead.measure(
        "ae-mlp", small_synthetic, batch_size=16, steps=2, repeats=3, min_seconds=0
    )
    assert (c.value, c.baseline) == (130.0, 100.0)  # images/s: the best of each side
    assert c.extra["ratio_best_of_each"] == 1.3
    assert c.ratio == 1.0  # the rounds say the Trainer costs nothing


def test_interleaved_rounds_alternate_the_order_and_keep_every_rate():
    calls = []

    def side(name, work):
        def fn():
            calls.append(name)
            return work

        return fn

    rounds = interleaved_rounds({"a": side("a", 10), "b": side("b", 20)}, repeats=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]  # A B, B A, A B
    assert [len(v) for v in rounds.values()] == [3, 3]
    assert all(r > 0 for v in rounds.values() for r in v)


def test_paired_median_ratio_divides_within_rounds_and_drops_an_outlier():
    # the two sides equally fast in every round but the last, where the machine sped up
    # between the bare run and the trainer's: best-of-each says 1.3, the rounds say 1
    bare = [100.0, 100.0, 100.0]
    trainer = [100.0, 100.0, 130.0]
    assert max(trainer) / max(bare) == 1.3
    assert paired_median_ratio(trainer, bare) == 1.0
    assert paired_median_ratio([100.0], [200.0]) == 0.5  # value over baseline
    assert paired_median_ratio([1.0, 3.0], [1.0, 1.0]) == 2.0  # the middle of an even count
    with pytest.raises(ValueError):
        paired_median_ratio([1.0], [1.0, 2.0])


def test_the_bare_loop_steps_every_phase_of_a_model_that_trains_in_phases(small_synthetic):
    from aegen.bench.trainer_overhead import _bare_loop

    torch.manual_seed(0)
    gan = __import__("aegen").build_model("gan", channels=(4, 8))
    phases = gan.training_phases()
    before = [[p.detach().clone() for p in ph.params] for ph in phases]
    steppers = [(ph.loss, torch.optim.AdamW(ph.params, lr=1e-3)) for ph in phases]
    x, y = small_synthetic.train.x, small_synthetic.train.y
    assert _bare_loop(gan, steppers, x, y, 8, 1, "off", False) == 8
    for ph, old in zip(phases, before, strict=True):  # both D and G took their step
        assert any(not torch.equal(p, o) for p, o in zip(ph.params, old, strict=True)), ph.name


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


@pytest.mark.parametrize("has_bf16", [True, False])
def test_bf16_peaks_only_where_the_cpu_has_bf16(monkeypatch, has_bf16):
    # without bf16 torch emulates it at a few GFLOP/s (0.27 for the matmul on an AVX2 EPYC):
    # a row that looks like the machine's peak and is not
    monkeypatch.setattr(machine, "bf16_supported", lambda: has_bf16)
    names = {c.name for c in machine.peaks(16, 2)}
    fp32 = {"peak/matmul_fp32", "peak/conv3x3_fp32", "peak/conv3x3_train_fp32"}
    bf16 = {n.replace("fp32", "bf16") for n in fp32}
    assert names == (fp32 | bf16 if has_bf16 else fp32)


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
    one = next(c for c in cases if c.name == "sample/maskgit_8_steps_one_grid")
    assert one.extra["n"] == 1 and one.baseline > 0
    assert vq.encode_speed(torch.rand(4, 1, 28, 28), repeats=1) > 0


def test_maskgit_is_timed_against_the_transformer_the_pipeline_trains(monkeypatch):
    # the pipeline's transformer has fewer blocks than the registry's, so it samples faster:
    # a MaskGIT ratio against the registry's default would flatter MaskGIT, and MaskGIT
    # itself is timed as the pipeline trains it too
    calls = []

    def spy(name, n, use_cache, repeats=2, **model):
        calls.append((name, n, model))
        return 1.0

    monkeypatch.setattr(vq, "sample_speed", spy)
    vq.sampling_cases(3)

    def model(prior: str) -> dict[str, str]:
        """The model settings of the pipeline's recipe (its train settings do not sample)."""
        sets = PIPELINE_PRIOR_RECIPE[prior][0]
        return dict(t.removeprefix("model.").split("=") for t in sets if t.startswith("model."))

    baselines = [c for c in calls if c[0] == "transformer" and c[2]]
    assert [(n, m) for _, n, m in baselines] == [
        (3, model("transformer")),
        (1, model("transformer")),
    ]
    assert [(n, m) for name, n, m in calls if name == "maskgit"] == [
        (3, model("maskgit")),
        (1, model("maskgit")),
    ]
    # the transformer's own case keeps the registry's default
    assert ("transformer", 3, {}) in calls


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


def test_denormal_case_compares_flushed_with_kept():  # flushed: the default
    c = denormal_case("synthetic", limit=256, epochs=2)
    _well_formed(c)
    assert c.baseline > 0 and c.extra["epochs"] == 2
    # two processes a side (on off, off on), the value each side's mean
    rounds = c.extra["rounds"]
    assert [len(rounds["on"]), len(rounds["off"])] == [2, 2]
    assert c.value == pytest.approx(sum(rounds["on"]) / 2)
    assert c.baseline == pytest.approx(sum(rounds["off"]) / 2)
    # each run recorded the setting it was given: the switch reached the command
    env = c.extra["environment"]
    assert (env["on"]["flush_denormal"], env["off"]["flush_denormal"]) == (True, False)


def test_malloc_case_compares_kept_freed_memory_with_glibcs_own():  # kept: the default
    c = malloc_case("synthetic", limit=256, epochs=2)
    _well_formed(c)
    assert c.name == "malloc/m2_keeps_freed_memory" and c.baseline > 0
    env = c.extra["environment"]
    assert (env["on"]["keep_freed_memory"], env["off"]["keep_freed_memory"]) == (True, False)


def test_semisup_malloc_case_times_classify_m2_and_sees_the_switch():
    c = semisup_malloc_case("synthetic", limit=256, epochs=2)
    _well_formed(c)
    assert c.name == "malloc/m2_semisup_keeps_freed_memory" and c.baseline > 0
    assert c.extra["command"] == "aegen classify --mode m2" and c.extra["labels"] == 0.2
    # classifier.json records the process settings: the switch reached aegen classify
    env = c.extra["environment"]
    assert (env["on"]["keep_freed_memory"], env["off"]["keep_freed_memory"]) == (True, False)


def test_contention_cases_run_each_mode_with_its_settings(monkeypatch):
    import os

    from aegen.bench import contention

    cores, seen = len(os.sched_getaffinity(0)), {}

    def train(out, argv, env):  # what each run was given; rates that make the ratios known
        seen[out.name] = (argv, env)
        return {"alone-aegen": 100.0, "alone-old": 80.0, "busy-aegen": 70.0, "busy-old": 35.0}[
            out.name
        ], 1

    monkeypatch.setattr(contention, "_train", train)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the caller's settings do not leak in
    cases = {c.name.split("_", 1)[1]: c for c in contention.contention_cases("synthetic", 64, 2)}
    assert {k: c.ratio for k, c in cases.items()} == pytest.approx(
        {
            "busy_vs_alone": 0.7,
            "busy_vs_alone_old": 35 / 80,
            "busy_aegen_vs_old": 2.0,
            "alone_aegen_vs_old": 1.25,
        }  # fmt: skip
    )
    for load in ("alone", "busy"):
        argv, env = seen[f"{load}-old"]
        assert argv[:2] == ["--threads", str(cores)] and env["GOMP_SPINCOUNT"] == "300000"
        argv, env = seen[f"{load}-aegen"]
        assert "--threads" not in argv and "GOMP_SPINCOUNT" not in env
        assert "OMP_WAIT_POLICY" not in env and "OMP_NUM_THREADS" not in env


@pytest.mark.slow
def test_contention_cases_compare_aegen_with_the_old_threads():
    import os

    from aegen.bench.contention import contention_cases

    cases = contention_cases("synthetic", limit=256, epochs=2)
    assert [c.name for c in cases] == [
        "contention/ae-mlp_busy_vs_alone",
        "contention/ae-mlp_busy_vs_alone_old",
        "contention/ae-mlp_busy_aegen_vs_old",
        "contention/ae-mlp_alone_aegen_vs_old",
    ]
    for c in cases:
        _well_formed(c)
    threads, cores = cases[0].extra["threads"], len(os.sched_getaffinity(0))
    assert threads["alone/old"] == threads["busy/old"] == cores  # the old way: every core
    assert 1 <= threads["busy/aegen"] <= cores


def test_the_busy_loop_spins_on_its_one_core():
    import os
    import time

    from aegen.bench.contention import busy_loop

    cpu = max(os.sched_getaffinity(0))
    p = busy_loop(cpu)
    try:
        deadline = time.monotonic() + 30
        while os.sched_getaffinity(p.pid) != {cpu} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.sched_getaffinity(p.pid) == {cpu}
        assert p.poll() is None  # still spinning
    finally:
        p.kill()
        p.wait()


def test_whole_process_case_times_both_processes_start_to_exit():
    from aegen.bench.whole_process import whole_process_case

    c = whole_process_case("ae-mlp", "synthetic", epochs=1, limit=256, rounds=1)
    _well_formed(c)
    assert c.name == "whole_process/ae-mlp_1_epochs"
    # images/s of each process = its training images / its seconds from start to exit
    trained = 256 - 256 // 6  # the hold-out: at most a sixth
    assert c.value * c.extra["aegen_s"] == pytest.approx(trained)
    assert c.baseline * c.extra["bare_s"] == pytest.approx(trained)
    assert c.extra["aegen_s"] > 1.0 and c.extra["bare_s"] > 1.0  # each imported torch


def test_own_conv_fraction_finds_the_dominant_convolution(small_synthetic):
    model = __import__("aegen").build_model("vqvae")
    from aegen.data.loader import Batch, to_float

    xb = to_float(small_synthetic.train.x[:4])
    shapes = machine.conv_shapes(model, Batch(xb, small_synthetic.train.y[:4]), "off")
    assert shapes[0]["flops"] == max(s["flops"] for s in shapes)
    assert sum(s["share"] for s in shapes) == pytest.approx(1.0)
    # a 64→64 3×3 at 7×7 does 2·64·64·9·49 FLOPs per image, called once per residual block
    top = shapes[0]
    assert top["input"][1:] == (64, 7, 7) and top["layer"].kernel_size == (3, 3)
    assert top["flops"] == pytest.approx(top["calls"] * 2 * 4 * 64 * 64 * 9 * 49, rel=0.01)
    c = machine.own_conv_fraction(
        "vqvae",
        small_synthetic.train.x,
        small_synthetic.train.y,
        make_run_config("vqvae").train,
        batch_size=8,
        steps=1,
    )
    _well_formed(c)
    assert "Conv2d(64→64" in c.extra["dominant_conv"]


def test_isa_paths_flip_one_switch_each(small_synthetic):
    from aegen.bench import isa_paths

    assert "channels_last" not in isa_paths.switches("ae-mlp")  # nothing to lay out
    assert isa_paths.switches("vqvae")["channels_last"] == {"channels_last": False}
    cases = isa_paths.measure_model("ae-conv", small_synthetic, steps=2, repeats=1)
    assert sorted(c.name for c in cases) == [
        "isa/ae-conv/batch_256", "isa/ae-conv/channels_last", "isa/ae-conv/fused"
    ]  # fmt: skip
    for c in cases:
        _well_formed(c)
        assert c.extra["arithmetic"] in ("fp32", "bf16") and c.extra["images"] == 2 * 256


def test_the_report_records_what_each_model_trains_with():
    from aegen.bench.core import machine_info
    from aegen.registry import available
    from aegen.train import bf16_supported

    sw = machine_info()["speed_switches"]
    assert set(sw) == set(available("model"))
    want = "bf16" if bf16_supported() else "fp32"
    assert sw["vqvae"]["arithmetic"] == want and sw["vqvae"]["channels_last"] is True
    assert sw["ae-mlp"]["arithmetic"] == "fp32"  # amp=off: fp32 on every CPU


def test_each_group_of_cases_records_the_steal_while_it_ran():
    readings = iter([(0, 100), (10, 200), (10, 300), None])
    meter = StealMeter(read=lambda: next(readings))
    cases = [Case("a", 1.0, "x"), Case("b", 1.0, "x")]
    assert meter.close_group(cases) == 0.1  # 10 of 100 jiffies
    cases.append(Case("c", 1.0, "x"))
    assert meter.close_group(cases) == 0.0  # only the new case is marked
    assert [c.extra["steal"] for c in cases] == [0.1, 0.1, 0.0]
    cases.append(Case("d", 1.0, "x"))
    assert meter.close_group(cases) is None and cases[-1].extra["steal"] is None  # unreadable
