"""Shared fixtures: small deterministic data, a CLI runner, and one-line-error checks."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aegen.threads import allowed_cores

# The README's command runs the suite in one pytest-xdist worker per allowed core (at most
# MAX_WORKERS; `-n 0` runs it in this process). Each worker takes its share of the cores,
# for its own torch and, through AEGEN_THREADS, for every aegen command a test starts: a
# run and its resumed twin then compute with the same threads whatever the other worker
# is doing, and waiting threads sleep (set before torch loads OpenMP) instead of spinning
# against the other worker's.
MAX_WORKERS = 4
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, allowed_cores() // WORKERS) if WORKERS > 1 else min(2, allowed_cores())
if WORKERS > 1:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("AEGEN_THREADS", str(THREADS))

import pytest  # noqa: E402
import torch  # noqa: E402

import aegen  # noqa: E402
from aegen.cli import main as cli_main  # noqa: E402

torch.set_num_threads(THREADS)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a worker per core this process may use (affinity, quota), at most 4;
    none for ``-m slow``, whose few long runs on full data want every core each."""
    marks = (config.getoption("markexpr", "") or "").replace("not slow", "")
    return 0 if "slow" in marks else min(MAX_WORKERS, allowed_cores())


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic():
    """The built-in synthetic data set (6000 train / 1000 test, 10 shape classes)."""
    return aegen.load_data("synthetic", val_size=500)


@pytest.fixture(scope="session")
def small_synthetic():
    """A 1200-image slice of it, for runs that only need to work, not to learn much."""
    return aegen.load_data("synthetic", val_size=200, limit=1200)


@pytest.fixture(scope="session")
def fashion_small():
    """The first 6000 training and 6000 test images of the real Fashion-MNIST."""
    return aegen.load_data("fashion-mnist", val_size=1000, limit=6000)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``cli("train", "ae-mlp", ...)`` → CliResult."""

    def run(*argv: str) -> CliResult:
        try:
            code = cli_main([str(a) for a in argv])
        except SystemExit as e:  # argparse exits on bad arguments
            code = int(e.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_cli_subprocess(
    *argv: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> CliResult:
    """Run ``python -m aegen`` in a real process (for tracebacks, signals, exit codes)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    p = subprocess.run(
        [sys.executable, "-m", "aegen", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    return CliResult(p.returncode, p.stdout, p.stderr)


def assert_user_error(result: CliResult, *fragments: str) -> None:
    """Exit 2, exactly one stderr line, starting with 'error:', mentioning each fragment."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err_lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory, small_synthetic):
    """A small domain feature network trained briefly on synthetic shapes (for FID/KID tests)."""
    from aegen.eval.features import train_features

    out = tmp_path_factory.mktemp("features") / "synthetic"
    return train_features(
        small_synthetic,
        out,
        epochs=2,
        overrides={"channels": (8, 16), "feature_dim": 32},
        train_overrides={"batch_size": 32, "lr": 5e-3, "amp": "off"},
        progress=False,
    )
