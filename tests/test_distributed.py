"""Data-parallel training with torchrun (gloo on CPU): equal to one process, resumable, fails cleanly."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_user_error, run_cli_subprocess
from safetensors.torch import load_file

from aegen.checkpoint import read_train_state
from aegen.files import pid_alive

ARGS = ["--data", "synthetic", "--limit", "1200", "--batch-size", "100", "--seed", "3", "--quiet",
        "--set", "model.hidden=64", "--set", "model.code_dim=8"]  # fmt: skip


def _weights(run):
    return load_file(Path(run) / "model.safetensors")


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


# one 3-epoch run of each kind, shared: the comparison, the kill-and-resume and the
# refused resume all need a finished two-process run (each run starts 3 processes)
EPOCHS = ["--epochs", "3", "--set", "train.ckpt_every=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    one = run_cli_subprocess("train", "ae-mlp", "--out", tmp / "one", *EPOCHS, *ARGS)
    two = run_cli_subprocess(
        "train", "ae-mlp", "--out", tmp / "two", *EPOCHS, "--nproc", "2", *ARGS,
        env={"AEGEN_PLUGINS": "plugin_models", "AEGEN_TEST_FINALIZED": str(tmp / "finalized"),
             "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )  # fmt: skip
    assert one.code == 0 and two.code == 0, two.err
    return tmp / "one", tmp / "two"


def test_two_processes_match_one(runs):
    one, two = runs
    assert _max_diff(_weights(one), _weights(two)) < 1e-5
    # one writer: the same files as a one-process run, one metrics file with one row per epoch
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())  # noqa: E731
    assert files(two) == files(one)
    rows = (two / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 4
    assert read_train_state(two)["world"] == 2


def test_the_workers_leave_without_finalizing(runs):
    """Each process's atexit hook marks it (tests/plugin_models.py): the launcher finalizes,
    the two workers end in cli.entry without finalizing (distributed.end_worker)."""
    marks = sorted(p.name for p in runs[1].parent.glob("finalized.*"))
    assert marks == ["finalized.launcher"]


def test_killed_two_process_run_resumes_exactly(runs, tmp_path):
    common = ["train", "ae-mlp", *EPOCHS, "--nproc", "2", *ARGS]
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
    # torchrun's workers live in sessions of their own and die after their agent does
    # (PR_SET_PDEATHSIG), a moment after the launcher: until then rank 0 may still write
    owner = int((cut / ".lock").read_text())
    while pid_alive(owner) and time.time() < deadline:
        time.sleep(0.02)
    assert not pid_alive(owner), "rank 0 outlived its launcher and agent"
    assert read_train_state(cut)["step"] < 30  # it really was interrupted

    resumed = run_cli_subprocess(
        "train", "ae-mlp", "--out", cut, "--resume", "--nproc", "2", "--quiet"
    )
    assert resumed.code == 0, resumed.err
    a, b = _weights(runs[1]), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_process_count_is_refused(runs, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(runs[1], run)
    r = run_cli_subprocess("train", "ae-mlp", "--out", run, "--resume", "--quiet")
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


@pytest.mark.parametrize("worker", [True, False])
def test_a_torchrun_worker_leaves_without_finalizing(tmp_path, worker):
    """A worker's gloo threads may still drop the last barrier's tensors while the
    interpreter finalizes, which aborts it; so a worker skips finalization (its atexit
    hooks do not run), with its output flushed and its exit status kept."""
    marker = tmp_path / "finalized"
    script = (
        "import atexit, pathlib, sys\n"
        "from aegen.distributed import end_worker\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        "print('written before leaving', end='')\n"
        "end_worker(3)\n"
        "sys.exit(3)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE")}
    if worker:
        env.update(TORCHELASTIC_RUN_ID="test", WORLD_SIZE="2")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "written before leaving"  # flushed although nothing finalizes
    assert marker.exists() is not worker
