"""``aegen tour --out DIR``: the whole lecture, run on a budget, in one HTML report.

The parts follow the lecture's order — autoencoders, classification and
semi-supervised learning, the probability primer, the VAE, the VQ-VAE with its
priors, the types of image generators side by side — one module each, holding its budget, its runs and its captions; each
writes under ``DIR/<n>-<part>/``. When a part finishes, its numbers, figures and
raw metrics go into ``DIR/tour.json`` (atomically); a tour run again into the
same directory skips the parts recorded there, and inside an interrupted part
the runs that finished are reused and an interrupted training resumes from its
checkpoint. The report, ``DIR/report.html``, opens with the claims table
(:mod:`.claims`), rebuilt from the recorded metrics.

Budgets: ``quick`` (minutes on 2 CPU cores), ``full`` (all images, more epochs)
and ``tiny`` (seconds on ``synthetic`` data: what the tests run). What each
budget costs and what each model reaches at it, measured: docs/tour.md.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...files import RunLock, atomic_write_json, atomic_write_text, ensure_dir
from ...version import __version__
from . import autoencoders, generators, primer, semisup, vae, vqvae
from .budget import BUDGETS, Budget
from .claims import CLAIMS, Claim, evaluate_claims
from .context import PartResult, Tour
from .page import clock, render_tour

__all__ = [
    "BUDGETS",
    "CLAIMS",
    "PARTS",
    "Budget",
    "Claim",
    "PartResult",
    "evaluate_claims",
    "render_tour",
    "run_tour",
    "tour_claims",
]

TOUR_JSON = "tour.json"
REPORT = "report.html"
MODULES = (autoencoders, semisup, primer, vae, vqvae, generators)  # the lecture's order
PARTS: dict[str, tuple[str, str, Callable[[Tour, Path], PartResult]]] = {
    m.KEY: (m.TITLE, m.INTRO, m.run) for m in MODULES
}


def _planned_minutes(budget: str) -> dict[str, float]:
    return {m.KEY: m.BUDGETS[budget].minutes for m in MODULES}


def tour_claims(state: dict[str, Any]) -> list[Claim]:
    """The claims judged on the metrics the finished parts recorded in ``state``."""
    return evaluate_claims({k: p.get("metrics", {}) for k, p in state["parts"].items()})


def _read_state(out: Path) -> dict[str, Any] | None:
    p = out / TOUR_JSON
    if not p.is_file():
        return None
    try:
        state = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("parts"), dict):
        raise UserError(f"{p}: unreadable; remove it to start the tour again")
    for part in state["parts"].values():  # JSON's null is a metric that was not a number
        metrics = part.get("metrics") if isinstance(part, dict) else None
        if isinstance(metrics, dict):
            part["metrics"] = {k: math.nan if v is None else v for k, v in metrics.items()}
    return state


def run_tour(
    out_dir: str | Path,
    budget: str = "quick",
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    seed: int = 0,
    parts: list[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) the tour into ``out_dir`` and write its report; return the report's path."""
    if budget not in BUDGETS:
        raise UserError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    wanted = list(PARTS) if not parts else parts
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        raise UserError(f"unknown tour part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    wanted = [k for k in PARTS if k in wanted]  # always in the lecture's order
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    settings = {"budget": budget, "data": data, "data_dir": data_dir, "seed": seed}
    state = _read_state(out)
    if state is None:
        if out.exists() and any(out.iterdir()):
            raise UserError(f"{out} is not empty and holds no tour; choose another --out")
        state = {"aegen_version": __version__, **settings, "parts": {}}
    else:
        differ = [k for k, v in settings.items() if state.get(k) != v]
        if differ:
            k = differ[0]
            raise UserError(
                f"{out} holds a tour with {k}={state.get(k)!r}, not {settings[k]!r}; "
                "choose another --out"
            )
    tour = Tour(out, BUDGETS[budget], data, data_dir, seed, progress)
    if log:
        tour.log = log
    tour.data()  # a bad --data fails here, before anything is written
    ensure_dir(out)
    keys = list(PARTS)
    plan = _planned_minutes(budget)
    t0 = time.perf_counter()
    with RunLock(out):
        for i, key in enumerate(wanted):
            title = PARTS[key][0]
            n = f"[{i + 1}/{len(wanted)} {title}]"
            if key in state["parts"]:
                tour.log(f"{n} done already; skipped")
                continue
            elapsed = time.perf_counter() - t0
            left = sum(plan[k] for k in wanted[i:] if k not in state["parts"]) * 60
            done_here = [k for k in wanted[:i] if state["parts"].get(k, {}).get("this_session")]
            if done_here:  # scale the plan by how this machine did on the parts so far
                planned = sum(plan[k] for k in done_here) * 60
                left *= elapsed / max(planned, 1e-9)
            tour.log(f"{n} {clock(elapsed)} elapsed, about {clock(left)} left")
            part_dir = ensure_dir(out / f"{keys.index(key) + 1}-{key}")
            p0 = time.perf_counter()
            result = PARTS[key][2](tour, part_dir)
            state["parts"][key] = {
                "seconds": time.perf_counter() - p0,
                "this_session": True,
                **asdict(result),
            }
            atomic_write_json(out / TOUR_JSON, state)
        for part in state["parts"].values():
            part.pop("this_session", None)
        claims = tour_claims(state)
        state["claims"] = [c.to_json() for c in claims]
        atomic_write_json(out / TOUR_JSON, state)
        report = out / REPORT
        atomic_write_text(report, render_tour(out, state, PARTS, claims))
    held = sum(c.holds is True for c in claims)
    tour.log(
        f"tour done in {clock(time.perf_counter() - t0)}: {held} of {len(claims)} claims hold; {report}"
    )
    for c in claims:
        if c.holds is False:
            tour.log(f"  ✗ {c.text}: {c.evidence}")
    return report
