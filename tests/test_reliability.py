"""Crashes, locks, atomic writes, numerical faults and fuzzing (docs/reliability.md maps guarantees here)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli_subprocess
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from aegen.checkpoint import MODEL, TRAIN_STATE
from aegen.config import TrainConfig, apply_overrides, from_dict
from aegen.data.idx import parse_idx
from aegen.errors import ConfigError, DataError
from aegen.files import RunLock, atomic_write_bytes, pid_alive
from aegen.models.ae import AEMLPConfig
from aegen.runs import make_run_config

PLUGINS = {"AEGEN_PLUGINS": "plugin_models", "PYTHONPATH": str(Path(__file__).parent)}
ARGS = ["--data", "synthetic", "--limit", "1200", "--batch-size", "50", "--seed", "5", "--quiet",
        "--set", "model.hidden=64", "--set", "model.noise=dropout", "--set", "train.ckpt_every=3"]  # fmt: skip


def _start(argv, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "aegen", *map(str, argv)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _state_step(run: Path) -> int:
    """The committed step, read without touching the files (the writer is alive)."""
    try:
        return int(torch.load(run / TRAIN_STATE, weights_only=True)["step"])
    except Exception:  # noqa: BLE001 - not there yet, or mid-rename
        return -1


def _kill_and_resume(tmp_path: Path, common: list[str], total: int, target: int) -> None:
    """Train ``common`` whole, and again SIGKILLed at checkpoint step ``target`` of
    ``total`` and resumed: bit-identical weights and as many metrics rows. Both fresh
    runs get the same thread count (another count splits reductions differently); the
    resumed run is left to choose, and must take the count its config.json records.
    The denormal flush is on, as it is by default."""
    pinned = {"AEGEN_THREADS": str(min(2, len(os.sched_getaffinity(0))))}
    free = {"AEGEN_THREADS": "", "OMP_NUM_THREADS": "", "AEGEN_FLUSH_DENORMAL": ""}
    full = run_cli_subprocess(*common, "--out", tmp_path / "full", env=pinned)
    assert full.code == 0, full.err

    cut = tmp_path / "cut"
    p = _start([*common, "--out", cut], env=pinned)
    deadline = time.time() + 120
    while _state_step(cut) < target and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert 0 < _state_step(cut) < total, f"not interrupted mid-run (target step {target})"

    resumed = run_cli_subprocess(
        common[0], common[1], "--out", cut, "--resume", "--quiet", env=free
    )
    assert resumed.code == 0, resumed.err
    a, b = load_file(tmp_path / "full" / MODEL), load_file(cut / MODEL)
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after a kill at step ~{target}"
    assert (tmp_path / "full" / "metrics.csv").read_text().count("\n") == (
        cut / "metrics.csv"
    ).read_text().count("\n")


AE_MLP = ["train", "ae-mlp", "--epochs", "3", *ARGS]  # 20 steps per epoch, 60 in all


def test_sigkill_at_a_checkpoint_step_then_resume_is_bit_exact(tmp_path):
    _kill_and_resume(tmp_path, AE_MLP, 60, target=21)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(30))
def test_sigkill_then_resume_is_bit_exact_30_times(tmp_path, trial):
    # issue 20: the flush once broke exact resumption in 2 of 11 trials; 30 in a row
    # (pytest -m slow -k 30_times), at kill steps spread over the run
    _kill_and_resume(tmp_path, AE_MLP, 60, target=3 + (trial * 7) % 43)


def test_a_gan_killed_mid_epoch_resumes_bit_exactly(tmp_path):
    """Both optimizers' states, the spectral norms' power-iteration vectors, G's batch-norm
    statistics and the latents' RNG all come back: 12 steps per epoch, 24 in all."""
    gan = ["--data", "synthetic", "--limit", "720", "--batch-size", "50", "--seed", "5",
           "--quiet", "--set", "model.channels=4,8", "--set", "model.latent_dim=8",
           "--set", "train.ckpt_every=3"]  # fmt: skip
    _kill_and_resume(tmp_path, ["train", "gan", "--epochs", "2", *gan], 24, 9)


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    run = tmp_path / "run"
    p = _start(["train", "ae-mlp", "--out", run, "--epochs", "200", *ARGS])
    deadline = time.time() + 60
    while not (run / ".lock").exists() and time.time() < deadline:
        time.sleep(0.02)
    while _state_step(run) < 3 and time.time() < deadline:
        time.sleep(0.02)
    second = run_cli_subprocess("train", "ae-mlp", "--out", run, "--resume", "--quiet")
    assert_user_error(second, "in use by running process")
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert (run / ".lock").exists()  # left behind by the killed owner

    cfg = (run / "config.json").read_text().replace('"epochs": 200', '"epochs": 1')
    (run / "config.json").write_text(cfg)  # so that the resumed run ends soon
    r = run_cli_subprocess("train", "ae-mlp", "--out", run, "--resume", "--quiet")
    assert r.code == 0, r.err
    assert "stale lock" in r.err and not (run / ".lock").exists()


def test_lock_api(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
        with pytest.raises(Exception, match="in use"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / ".lock").write_text(dead.stdout.strip())
    with RunLock(tmp_path) as lock:
        assert lock.held


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are seen through /proc")
def test_a_zombie_does_not_hold_a_lock(tmp_path):
    """A killed DDP worker whose agent died too stays a zombie where nothing reaps it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.time() + 30
    while ") Z " not in stat.read_text() and time.time() < deadline:
        time.sleep(0.01)  # exited, and not reaped until child.wait()
    try:
        assert pid_alive(os.getpid())
        (tmp_path / ".lock").write_text(str(child.pid))
        assert not pid_alive(child.pid)
        with RunLock(tmp_path) as lock:
            assert lock.held
    finally:
        child.wait()


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"good")

    class Boom(Exception):
        pass

    from aegen.files import atomic_write

    with pytest.raises(Boom), atomic_write(target) as f:
        f.write(b"half")
        raise Boom
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left


def test_full_disk_during_a_checkpoint(cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert cli("train", "ae-mlp", "--out", run, "--epochs", "1", *ARGS).code == 0
    before = {n: (run / n).read_bytes() for n in (MODEL, TRAIN_STATE, "config.json")}
    cfg = (run / "config.json").read_text().replace('"epochs": 1', '"epochs": 2')
    (run / "config.json").write_text(cfg)
    before["config.json"] = cfg.encode()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    r = cli("train", "ae-mlp", "--out", run, "--resume", "--quiet")
    assert_user_error(r, "No space left")
    assert {n: (run / n).read_bytes() for n in before} == before


def test_nan_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path / "nan"
    r = run_cli_subprocess(
        *"train test-nan-at-step --set model.nan_at_call=8".split(),
        "--out",
        run,
        "--epochs",
        "2",
        *ARGS,
        env=PLUGINS,
    )
    assert_user_error(r, "non-finite at step 7", "checkpoint")
    # the checkpoint of step 6 is whole and consistent: resuming past it finds the NaN again
    assert _state_step(run) == 6
    from aegen.checkpoint import read_train_state

    assert read_train_state(run)["step"] == 6
    r = run_cli_subprocess(
        *"train test-nan-at-step --set model.nan_at_call=8 --set train.on_nan=skip".split(),
        "--out",
        tmp_path / "skip",
        "--epochs",
        "1",
        *ARGS,
        env=PLUGINS,
    )
    assert r.code == 0, r.err
    assert "skipped_batches" in (tmp_path / "skip" / "metrics.csv").read_text()


# ----------------------------------------------------------------------------- fuzzing


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_idx_parser_never_raises_anything_else(data):
    try:
        arr = parse_idx(data)
    except DataError:
        return
    assert isinstance(arr, np.ndarray)


@settings(max_examples=300, deadline=2000)
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    payload=st.binary(max_size=64),
)
@example(code=0x08, dims=[0, 2**21, 2**21, 2**21], payload=b"")  # empty, yet a shape numpy refuses
def test_idx_headers_cannot_force_a_huge_allocation(code, dims, payload):
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    t0 = time.perf_counter()
    try:
        arr = parse_idx(header + payload)
        assert arr.nbytes <= len(payload)
    except DataError:
        pass
    assert time.perf_counter() - t0 < 1.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=2000)
@given(
    st.dictionaries(
        st.sampled_from([*AEMLPConfig.__dataclass_fields__, "bogus"]), json_values, max_size=4
    )
)
def test_model_config_parser_never_raises_anything_else(values):
    try:
        from_dict(AEMLPConfig, values, "model")
    except ConfigError:
        pass


@settings(max_examples=300, deadline=2000)
@given(
    st.dictionaries(
        st.sampled_from([*TrainConfig.__dataclass_fields__, "x"]), json_values, max_size=4
    )
)
def test_train_config_parser_never_raises_anything_else(values):
    try:
        from_dict(TrainConfig, values, "train")
    except ConfigError:
        pass


@settings(max_examples=200, deadline=2000)
@given(st.lists(st.text(max_size=30), max_size=3))
def test_overrides_never_raise_anything_else(texts):
    run = make_run_config("ae-mlp")
    try:
        apply_overrides(run, texts)
    except ConfigError:
        pass
