"""The command's threads, OpenMP wait policy and denormal flush (aegen.threads, cli.entry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import assert_user_error, run_cli_subprocess

from aegen import threads
from aegen.errors import UserError
from aegen.runs import make_run_config, train_run
from aegen.threads import cgroup_quota, choose_threads, idle_cores, parse_cpu_max

# the choices under test, not the ones of the shell that runs the tests
CLEAN = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "AEGEN_THREADS", "AEGEN_FLUSH_DENORMAL")


def _env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CLEAN} | extra


def _machine(*argv: str, **env: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "aegen", *argv, "info", "--machine"],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize(
    ("affinity", "quota", "idle", "want"),
    [
        (2, None, 1.96, (2, 2)),  # idle machine: every core, torch's own default
        (2, None, 1.0, (1, 2)),  # one core busy with another process
        (2, None, 0.05, (1, 2)),  # both busy: still one thread
        (2, None, None, (2, 2)),  # not measured: every allowed core
        (8, 1.5, 7.9, (2, 2)),  # a 1.5-core quota runs two threads part of the time
        (8, 0.5, 8.0, (1, 1)),
        (16, None, 5.4, (5, 16)),
        (1, None, 1.0, (1, 1)),
    ],
)
def test_the_choice_follows_affinity_quota_and_idle_cores(affinity, quota, idle, want):
    assert choose_threads(affinity, quota, idle) == want


def test_a_request_wins_within_the_allowed_cores_and_is_refused_beyond():
    assert choose_threads(4, None, 0.0, requested=3) == (3, 4)
    for bad in (0, -1):
        with pytest.raises(UserError, match="at least 1"):
            choose_threads(4, None, None, requested=bad)
    with pytest.raises(UserError, match="at most 2"):
        choose_threads(8, 2.0, None, requested=3)


def test_cpu_times_give_the_idle_cores():
    before = {0: (100, 1000), 1: (500, 1000), 2: (0, 0)}
    after = {0: (100, 1100), 1: (600, 1100), 2: (10, 10)}  # cpu0 busy, cpu1 idle
    assert idle_cores(before, after, {0, 1}) == pytest.approx(1.0)
    assert idle_cores(before, after, {0, 1, 2}) == pytest.approx(2.0)
    assert idle_cores(before, after, {0, 3}) is None  # a CPU /proc/stat does not list
    # the cores this process kept busy itself count as free of other work, at most all
    assert idle_cores(before, after, {0, 1}, own_cores=0.75) == pytest.approx(1.75)
    assert idle_cores(before, after, {0, 1}, own_cores=1.5) == pytest.approx(2.0)


def _reading_over(monkeypatch, cpu1_idle: int, own_seconds: float, wall: float = 2.0):
    """A reading over ``wall`` seconds (100 ticks a second per core): cpu0 busy all along,
    cpu1 idle for ``cpu1_idle`` ticks; this process used ``own_seconds`` of CPU."""
    ticks = int(100 * wall)
    samples = iter([{0: (0, 0), 1: (0, 0)}, {0: (0, ticks), 1: (cpu1_idle, ticks)}])
    own = iter([10.0, 10.0 + own_seconds])
    clock = iter([50.0, 50.0 + wall, 50.0 + wall])
    monkeypatch.setattr(threads, "read_cpu_times", lambda *a: next(samples))
    monkeypatch.setattr(threads, "own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    return threads.finish_reading(threads.start_reading({0, 1}))


def test_the_busy_cores_are_read_over_the_start_not_an_instant(monkeypatch):
    # cpu0 was this process importing torch; another process flickered on cpu1 for 0.1 s:
    # nearly two cores are free of other work, so the run gets both
    idle = _reading_over(monkeypatch, cpu1_idle=190, own_seconds=2.0)
    assert idle == pytest.approx(1.95) and choose_threads(2, None, idle) == (2, 2)
    # another process busy on cpu1 the whole time: one core is free
    idle = _reading_over(monkeypatch, cpu1_idle=0, own_seconds=2.0)
    assert idle == pytest.approx(1.0) and choose_threads(2, None, idle) == (1, 2)


def test_a_process_busy_beside_the_start_leaves_one_thread():
    cpus = sorted(os.sched_getaffinity(0))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpus[-1]})
        got = _machine()  # the machine's own choice
    finally:
        busy.kill()
        busy.wait()
    assert got["choice"]["source"] == "machine"
    assert got["torch_num_threads"] <= max(1, len(cpus) - 1)
    if len(cpus) > 1:  # one core has nothing to choose and is not read
        assert got["choice"]["idle"] < len(cpus) - 0.5


def test_cgroup_quotas_v2_and_v1(tmp_path):
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("150000 100000\n") == pytest.approx(1.5)
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "cpu.max").write_text("50000 100000\n")
    (tmp_path / "cg2").write_text("0::/job\n")
    assert cgroup_quota(v2, tmp_path / "cg2") == pytest.approx(0.5)
    v1 = tmp_path / "v1" / "cpu,cpuacct" / "job"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cg1").write_text("5:cpu,cpuacct:/job\n3:memory:/job\n")
    assert cgroup_quota(tmp_path / "v1", tmp_path / "cg1") == pytest.approx(3.0)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert cgroup_quota(tmp_path / "v1", tmp_path / "cg1") is None
    assert cgroup_quota(tmp_path, tmp_path / "missing") is None


def test_the_command_sets_the_wait_policy_before_openmp_loads_and_flushes_every_thread():
    threads = min(2, len(os.sched_getaffinity(0)))
    got = _machine("--threads", str(threads))
    assert got["omp_wait_policy_env"] == "PASSIVE"
    assert got["openmp_loaded_before_policy"] is False  # so libgomp read it when it loaded
    assert got["torch_num_threads"] == threads
    assert got["choice"] == got["choice"] | {"source": "--threads", "flush_denormal": True}
    # 2^20 denormals in one parallel op over every torch thread: all flushed
    assert got["denormals_flushed_in_every_thread"] is True


@pytest.mark.parametrize(
    ("argv", "env"), [(("--no-flush-denormal",), {}), ((), {"AEGEN_FLUSH_DENORMAL": "0"})]
)
def test_the_flush_can_be_turned_off(argv, env):
    got = _machine(*argv, "--threads", str(min(2, len(os.sched_getaffinity(0)))), **env)
    assert got["denormals_flushed_in_every_thread"] is False
    assert got["choice"]["flush_denormal"] is False


def test_the_command_lets_malloc_keep_freed_memory_unless_told_not_to():
    from aegen.cli import (
        M_MMAP_THRESHOLD,
        M_TRIM_THRESHOLD,
        MMAP_THRESHOLD,
        TRIM_THRESHOLD,
        keep_freed_memory,
    )

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    assert keep_freed_memory(FakeLibc()) is True
    assert calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
    assert keep_freed_memory(object()) is False  # a C library without mallopt
    n = str(min(2, len(os.sched_getaffinity(0))))
    # this machine's glibc takes both settings; AEGEN_MALLOC=system leaves its defaults
    assert _machine("--threads", n)["choice"]["keep_freed_memory"] is True
    assert _machine("--threads", n, AEGEN_MALLOC="system")["choice"]["keep_freed_memory"] is False


def test_the_environment_overrides_and_a_users_wait_policy_is_kept():
    got = _machine(AEGEN_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    assert (got["torch_num_threads"], got["choice"]["source"]) == (1, "AEGEN_THREADS")
    assert got["omp_wait_policy_env"] == "ACTIVE"
    got = _machine(OMP_NUM_THREADS="1")  # what `train --nproc` gives its ranks
    assert (got["torch_num_threads"], got["choice"]["source"]) == (1, "OMP_NUM_THREADS")


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--threads", "0"], {}, "at least 1"),
        (["--threads", "-3"], {}, "--threads"),
        (["--threads", "4097"], {}, "ask for at most"),
        ([], {"AEGEN_THREADS": "lots"}, "AEGEN_THREADS"),
        ([], {"AEGEN_THREADS": "0"}, "at least 1"),
    ],
)
def test_bad_thread_counts_are_user_errors(argv, env, fragment):
    r = run_cli_subprocess(*argv, "info", "--machine", env=env)
    assert_user_error(r, fragment)


def test_importing_aegen_leaves_the_process_alone():
    code = (
        "import os, sys, aegen; assert 'torch' not in sys.modules; "  # torch loads on use
        "import torch; aegen.TrainConfig; "
        "print(torch.tensor([1e-39]).item() > 0, os.environ.get('OMP_WAIT_POLICY'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "None"]  # denormals kept, no wait policy set


def test_entry_flushes_by_default(monkeypatch):
    from aegen import cli, threads

    for name in ("_current", "_flush", "_omp_early"):  # the test process stays a library one
        monkeypatch.setattr(threads, name, None)

    calls = []
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(on) or True)
    monkeypatch.setattr(cli, "main", lambda argv: 0)
    monkeypatch.setattr(sys, "argv", ["aegen", "--threads", "1", "info"])
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # keep the test process's as it is
    monkeypatch.delenv("AEGEN_FLUSH_DENORMAL", raising=False)
    threads = torch.get_num_threads()
    try:
        assert cli.entry() == 0 and calls == [True]
        monkeypatch.setenv("AEGEN_FLUSH_DENORMAL", "0")
        assert cli.entry() == 0 and calls == [True]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_of_two(monkeypatch):
    """This process as a command that chose 1 of 2 allowed cores at its start; torch's
    thread count is put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    choice = threads.ThreadChoice(1, "machine", 2, 1.0, "PASSIVE")
    monkeypatch.setattr(threads, "_current", choice)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    yield choice
    torch.set_num_threads(before)


@pytest.fixture
def cores_free_now(monkeypatch):
    """Every reading of the cores finds both idle; returns the list of cores each read."""
    seen = []

    def free(reading, min_window=threads.MIN_WINDOW):
        seen.append(reading.cpus)
        return 1.97

    monkeypatch.setattr(threads, "finish_reading", free)
    return seen


def test_a_fresh_run_takes_the_cores_that_were_busy_at_the_start_once_they_are_free(
    one_of_two, cores_free_now, tmp_path
):
    """A command that started beside a busy core reads the cores again before each new
    run; both are free now, so the run trains on 2 threads and records 2."""
    run = make_run_config("ae-mlp", data="synthetic", epochs=1, batch_size=64, limit=128)
    train_run(run, tmp_path / "run", progress=False)
    env = json.loads((tmp_path / "run" / "config.json").read_text())["environment"]
    assert cores_free_now == [{0, 1}]
    assert env["threads"] == env["torch_threads"] == torch.get_num_threads() == 2
    assert env["idle"] == 1.97 and env["source"] == "machine"


def test_the_recheck_keeps_the_count_while_the_core_is_still_busy(monkeypatch, one_of_two):
    monkeypatch.setattr(threads, "finish_reading", lambda r, w=0: 1.02)
    assert threads.recheck() == one_of_two and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "finish_reading", lambda r, w=0: 0.1)  # busier: not lowered
    assert threads.recheck().threads == 1


@pytest.mark.parametrize(
    "choice",
    [
        threads.ThreadChoice(1, "AEGEN_THREADS", 2, None, "PASSIVE"),  # the user's count
        threads.ThreadChoice(2, "machine", 2, 1.9, "PASSIVE"),  # every allowed core already
    ],
)
def test_the_recheck_reads_nothing_when_there_is_nothing_to_gain(monkeypatch, choice):
    monkeypatch.setattr(threads, "_current", choice)
    monkeypatch.setattr(threads, "finish_reading", lambda *a: pytest.fail("read the cores"))
    assert threads.recheck() == choice
    monkeypatch.setattr(threads, "_current", None)  # the library: aegen chose nothing
    assert threads.recheck() is None


def test_steal_is_read_from_the_all_cpus_line_and_shared_over_a_window(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: 100 jiffies of which 40 stolen
    stat.write_text("cpu  30 0 10 20 0 0 0 40 0 0\ncpu0 15 0 5 10 0 0 0 20 0 0\n")
    before = threads.read_steal(str(stat))
    assert before == (40, 100)
    stat.write_text("cpu  60 0 10 20 0 0 0 110 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n")
    after = threads.read_steal(str(stat))
    assert after == (110, 200)
    assert threads.steal_share(before, after) == 0.7  # 70 of the 100 new jiffies
    assert threads.steal_share(after, after) is None  # no time passed
    assert threads.steal_share(None, after) is None
    assert threads.read_steal(str(tmp_path / "missing")) is None
    stat.write_text("intr 5\n")
    assert threads.read_steal(str(stat)) is None


def test_each_classifier_of_a_grid_takes_the_cores_that_were_busy_at_the_start(
    one_of_two, cores_free_now
):
    """`aegen semisup` trains many classifiers in one process: each reads the cores again,
    as a fresh run does (a grid started beside a busy core once ran every cell on 1)."""
    from aegen.classify import ClassifyConfig, train_classifier
    from aegen.data.datasets import load_data
    from aegen.registry import build_model

    model = build_model("ae-mlp", code_dim=4)
    data = load_data("synthetic", limit=256)
    cfg = ClassifyConfig(mode="probe", labels=0.5, epochs=1, min_steps=1)
    train_classifier(model, data, cfg)
    assert cores_free_now == [{0, 1}] and torch.get_num_threads() == 2
