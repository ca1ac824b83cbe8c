"""Data-parallel training with torchrun (gloo on CPU): equal to one process, resumable, fails cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import assert_user_error, run_cli_subprocess
from safetensors.torch import load_file

from aegen.checkpoint import read_train_state

ARGS = ["--data", "synthetic", "--limit", "1200", "--batch-size", "100", "--seed", "3", "--quiet",
        "--set", "model.hidden=64", "--set", "model.code_dim=8"]  # fmt: skip


def _weights(run):
    return load_file(Path(run) / "model.safetensors")


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_processes_match_one(tmp_path):
    one = run_cli_subprocess("train", "ae-mlp", "--out", tmp_path / "one", "--epochs", "2", *ARGS)
    two = run_cli_subprocess(
        "train", "ae-mlp", "--out", tmp_path / "two", "--epochs", "2", "--nproc", "2", *ARGS
    )
    assert one.code == 0 and two.code == 0, two.err
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-5
    # one writer: the same files as a one-process run, one metrics file with one row per epoch
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())  # noqa: E731
    assert files(tmp_path / "two") == files(tmp_path / "one")
    rows = (tmp_path / "two" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3
    assert read_train_state(tmp_path / "two")["world"] == 2


def test_killed_two_process_run_resumes_exactly(tmp_path):
    common = [
        "train",
        "ae-mlp",
        "--epochs",
        "3",
        "--nproc",
        "2",
        "--set",
        "train.ckpt_every=2",
        *ARGS,
    ]
    full = run_cli_subprocess(*common, "--out", tmp_path / "full")
    assert full.code == 0, full.err

    cut = tmp_path / "cut"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "aegen", *common, "--out", str(cut)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a mid-run checkpoint, then kill everything
        try:  # read only: read_train_state would finish a commit under the writer's feet
            if torch.load(cut / "train_state.pt", weights_only=True)["step"] >= 12:
                break
        except Exception:  # noqa: BLE001 - not written yet
            pass
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert read_train_state(cut)["step"] < 30  # it really was interrupted

    resumed = run_cli_subprocess(
        "train", "ae-mlp", "--out", cut, "--resume", "--nproc", "2", "--quiet"
    )
    assert resumed.code == 0, resumed.err
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_process_count_is_refused(tmp_path):
    r = run_cli_subprocess(
        "train", "ae-mlp", "--out", tmp_path / "r", "--epochs", "1", "--nproc", "2", *ARGS
    )
    assert r.code == 0, r.err
    r = run_cli_subprocess("train", "ae-mlp", "--out", tmp_path / "r", "--resume", "--quiet")
    assert_user_error(r, "2 process")


def test_an_error_on_one_rank_ends_all_with_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv("AEGEN_PLUGINS", "plugin_models")
    monkeypatch.setenv(
        "PYTHONPATH", f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    t0 = time.time()
    r = run_cli_subprocess(
        "train",
        "test-fails-on-rank1",
        "--out",
        tmp_path / "f",
        "--epochs",
        "50",
        "--nproc",
        "2",
        *ARGS,
        timeout=120,
    )
    assert_user_error(r, "rank 1 found something wrong")
    assert time.time() - t0 < 90  # ended, did not hang


def test_batch_not_divisible_by_processes(tmp_path):
    r = run_cli_subprocess(
        "train",
        "ae-mlp",
        "--out",
        tmp_path / "x",
        "--nproc",
        "2",
        "--data",
        "synthetic",
        "--batch-size",
        "99",
    )
    assert_user_error(r, "divisible")
    assert not (tmp_path / "x").exists()
