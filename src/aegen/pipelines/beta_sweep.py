"""The reconstruction/regularization trade-off, measured: train a VAE at several β.

Each β gets its own run directory ``OUT/beta-<β>/`` (a complete run: weights,
metrics, diagnostics, samples). On the test set each run gives a *rate* — the
KL from q(z|x) to the prior, the nats the code spends per image — and a
*distortion* — −log p(x|z), the nats the decoder still needs. Small β buys
sharp reconstructions with a costly, irregular code; large β a cheap, smooth
code and blurry images, down to posterior collapse (rate → 0). The sweep draws
distortion against rate (``rate_distortion.png``, Alemi et al. 2018) and writes
the numbers to ``sweep.json``.

A killed sweep resumes: a finished β (its metrics.json has the "vae" report)
is read back, an unfinished one continues from its checkpoint. A β directory
trained with other settings (model, epochs, overrides, data) is refused before
anything trains: its numbers would not be this sweep's.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..data.datasets import Dataset
from ..errors import UserError
from ..eval.metrics import read_metrics_json
from ..files import atomic_write_json, ensure_dir
from ..runs import data_from_config, finish_run, make_run_config, stage_state, train_run
from ..viz import figure, save_figure, save_grid

__all__ = ["beta_dir", "plan_sweep", "plot_rate_distortion", "run_sweep"]

DEFAULT_BETAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def beta_dir(out: Path, beta: float) -> Path:
    return out / f"beta-{beta:g}"


def plan_sweep(
    model: str, betas: list[float], overrides: list[str] | None = None, **train_args: Any
) -> list[RunConfig]:
    """One validated run config per β (nothing is written): the model must be a VAE."""
    from ..registry import entry

    if not betas:
        raise UserError("--betas needs at least one value")
    if len(set(betas)) != len(betas):
        raise UserError(f"--betas has a repeated value: {betas}")
    if getattr(entry(model, "model").cls, "family", None) != "vae":
        raise UserError(f"sweep-beta needs a VAE model (vae-mlp, vae-conv), not {model}")
    return [
        make_run_config(model, overrides=[*(overrides or []), f"model.beta={b!r}"], **train_args)
        for b in betas
    ]


def _finished(run_dir: Path) -> bool:
    return "vae" in read_metrics_json(run_dir)


def run_sweep(
    out: str | Path, runs: list[RunConfig], progress: bool = True, data: Dataset | None = None
) -> dict[str, Any]:
    """Train (or resume, or read back) each planned run, then draw and write the sweep."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    data = data if data is not None else data_from_config(runs[0].data)
    # every β's directory is checked before any trains: one run with other settings (another
    # model, --epochs, --set, --limit) is refused, not read back as if it were this sweep's
    keys = ("model", "model_config", "train", "data")
    states = [
        stage_state(beta_dir(out, r.model_config.beta), r.to_json(), keys, "β run") for r in runs
    ]
    ensure_dir(out)
    points = []
    for run, state in zip(runs, states, strict=True):
        beta = run.model_config.beta
        d = beta_dir(out, beta)
        if state != "done" or not _finished(d):
            if progress:
                print(f"β = {beta:g}: training into {d}", file=sys.stderr)
            resume = state != "fresh"
            trained = train_run(
                None if resume else run, d, resume=resume, progress=progress, data=data
            )
            finish_run(trained)
        vae = read_metrics_json(d)["vae"]
        points.append(
            {
                "beta": beta,
                "run_dir": d.name,
                "rate": vae["kl"],
                "distortion": vae["recon"],
                "elbo": vae["elbo"],
                "nll": vae["nll"],
                "active_units": vae["active_units"],
                "latent_dim": vae["latent_dim"],
                "sharpness_samples_vs_data": vae["sharpness"]["samples_vs_data"],
            }
        )
    summary = {"model": runs[0].model, "units": "nats per image, test set", "points": points}
    atomic_write_json(out / "sweep.json", summary)
    plot_rate_distortion(out / "rate_distortion.png", points, runs[0].model)
    _samples_by_beta(out / "samples_by_beta.png", out, points)
    return summary


def plot_rate_distortion(path: Path, points: list[dict[str, Any]], model: str = "") -> Path:
    """Distortion (−log p(x|z)) against rate (KL), one point per β, with lines of equal ELBO."""
    fig = figure(6.5, 4.5)
    ax = fig.add_subplot(111)
    pts = sorted(points, key=lambda p: p["rate"])
    rates = [p["rate"] for p in pts]
    dists = [p["distortion"] for p in pts]
    ax.plot(rates, dists, "-o", color="tab:blue", ms=5)
    for p in pts:
        label = f"β={p['beta']:g} ({p['active_units']}/{p['latent_dim']} active)"
        ax.annotate(
            label,
            (p["rate"], p["distortion"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    # rate + distortion = −ELBO: the best β=1 point's iso-ELBO line, for reference
    best = min(pts, key=lambda p: p["rate"] + p["distortion"])
    total = best["rate"] + best["distortion"]
    lo, hi = 0.0, max(rates) * 1.1 + 1e-9
    ax.plot([lo, hi], [total - lo, total - hi], ls="--", color="gray", lw=1,
            label=f"rate + distortion = {total:.1f} nats (best −ELBO)")  # fmt: skip
    ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)) (nats)")
    ax.set_ylabel("distortion: −log p(x|z) (nats)")
    ax.set_ylim(
        min(dists) - 0.05 * (max(dists) - min(dists) + 1),
        max(dists) + 0.1 * (max(dists) - min(dists) + 1),
    )
    ax.set_title(f"rate–distortion over β{': ' + model if model else ''} (test set)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _samples_by_beta(path: Path, out: Path, points: list[dict[str, Any]], n: int = 10) -> Path:
    """One row of prior samples per β (same latents in every row), top row the smallest β."""
    from ..checkpoint import load

    rows = []
    for p in sorted(points, key=lambda p: p["beta"]):
        model = load(out / p["run_dir"], family="vae")
        g = torch.Generator().manual_seed(0)
        rows.append(model.sample(n, generator=g))
    return save_grid(path, torch.cat(rows), nrow=n)


def parse_betas(text: str) -> list[float]:
    """``"0.5,1,4"`` → [0.5, 1.0, 4.0]; each must be a finite number > 0."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            b = float(part)
        except ValueError:
            raise UserError(f"--betas: {part!r} is not a number") from None
        if not math.isfinite(b) or b <= 0:
            raise UserError(f"--betas: each β must be a positive number, got {part!r}")
        out.append(b)
    return out
