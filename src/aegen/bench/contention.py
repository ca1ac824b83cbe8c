"""Training beside a busy process: aegen's thread choice against the old behaviour.

The same short ``aegen train`` (a) alone and (b) beside a Python busy loop pinned to
one of this process's cores, each (1) with aegen's choice (idle cores, OpenMP's
passive wait) and (2) with the old behaviour (every allowed core, ``--threads N``,
and libgomp's own spinning, ``GOMP_SPINCOUNT=300000``, its default when no wait
policy is set). Images/s come from each run's metrics.csv (all epochs after the
first); the thread count each run chose comes from its config.json.

``python -m aegen bench --quick`` runs it with the rest; ``bench/contention.py``
runs it alone and prints the same JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..runlog import read_metrics
from .core import Case

__all__ = ["contention_cases", "busy_loop"]

# libgomp's spin count when OMP_WAIT_POLICY is not set: what aegen did before issue 20
OLD_SPINCOUNT = "300000"
_BUSY = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def busy_loop(cpu: int) -> subprocess.Popen:
    """A Python process spinning on ``cpu`` until killed (the other program of the user)."""
    return subprocess.Popen([sys.executable, "-c", _BUSY, str(cpu)])


def _train(out: Path, argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    subprocess.run(
        [sys.executable, "-m", "aegen", *argv, "--out", str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = read_metrics(out / "metrics.csv")
    rows = rows[1:] or rows  # the first epoch warms up
    rate = sum(float(r["images_per_s"]) for r in rows) / len(rows)
    threads = json.loads((out / "config.json").read_text())["environment"]["torch_threads"]
    return rate, int(threads)


def contention_cases(data: str, limit: int, epochs: int, model: str = "ae-mlp") -> list[Case]:
    """Four runs (alone/busy × aegen/old) and the ratios between them."""
    cpus = sorted(os.sched_getaffinity(0))
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AEGEN_THREADS")}
    base.pop("OMP_WAIT_POLICY", None)
    base.pop("GOMP_SPINCOUNT", None)
    modes = {
        "aegen": ([], base),
        "old": (["--threads", str(len(cpus))], {**base, "GOMP_SPINCOUNT": OLD_SPINCOUNT}),
    }
    train = ["train", model, "--data", data, "--epochs", str(epochs), "--quiet", "--report", "none"]
    train += ["--limit", str(limit)] if limit else []
    got: dict[tuple[str, str], tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("alone", "busy"):
            busy = busy_loop(cpus[-1]) if load == "busy" else None
            try:
                for mode, (flags, env) in modes.items():
                    got[load, mode] = _train(Path(tmp) / f"{load}-{mode}", [*flags, *train], env)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    extra = {
        "cores": len(cpus),
        "busy_cpu": cpus[-1],
        "epochs": epochs,
        "limit": limit,
        "threads": {f"{load}/{mode}": t for (load, mode), (_, t) in got.items()},
        "old": f"--threads {len(cpus)}, GOMP_SPINCOUNT={OLD_SPINCOUNT} (libgomp's default spin)",
    }

    def case(name: str, a: tuple[str, str], b: tuple[str, str], what: str) -> Case:
        return Case(
            f"contention/{model}_{name}",
            got[a][0],
            "images/s",
            got[b][0],
            extra={**extra, "baseline": what},
        )

    return [
        case("busy_vs_alone", ("busy", "aegen"), ("alone", "aegen"), "aegen alone"),
        case("busy_vs_alone_old", ("busy", "old"), ("alone", "old"), "old behaviour alone"),
        case("busy_aegen_vs_old", ("busy", "aegen"), ("busy", "old"), "old behaviour, busy"),
        case("alone_aegen_vs_old", ("alone", "aegen"), ("alone", "old"), "old behaviour, alone"),
    ]
