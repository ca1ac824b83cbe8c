"""Sample scores against the sampler's number of steps: a likelihood-free report.

A diffusion model has no likelihood to report here, but its sampler has a knob
that trades time for quality: the number of steps. :func:`scores_by_steps` scores
``n`` samples at each step count with the same feature network, seed and test
images as ``aegen eval`` (FID, KID, precision/recall), and times the sampling, so
the curve "FID against steps" and its cost are one table.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data.datasets import Dataset
from ..errors import UserError
from .evaluate import EvalOptions, evaluate_run
from .features import DomainFeatures

__all__ = ["SampleAt", "check_steps_model", "scores_by_steps"]


SampleAt = Callable[[int, torch.Generator, int], torch.Tensor]  # (n, generator, steps) → images


class _TimedSampler:
    """``sample_at`` at a fixed step count, adding up the wall time it takes."""

    def __init__(self, sample_at: SampleAt, steps: int):
        self.sample_at, self.steps, self.seconds = sample_at, steps, 0.0

    def __call__(self, n: int, g: torch.Generator) -> torch.Tensor:
        t0 = time.perf_counter()
        x = self.sample_at(n, g, self.steps)
        self.seconds += time.perf_counter() - t0
        return x


def check_steps_model(
    run_dir: str | os.PathLike, model: torch.nn.Module, steps: Sequence[int]
) -> None:
    """Refuse, before any work, a model whose sampler has no steps, or step counts below 1."""
    sample = getattr(model, "sample", None)
    if sample is None or "steps" not in inspect.signature(sample).parameters:
        what = getattr(model, "registry_name", type(model).__name__)
        raise UserError(f"{run_dir}: a {what} sampler has no steps; leave out --steps")
    if not steps or min(steps) < 1:
        raise UserError(f"--steps needs step counts of at least 1, got {list(steps)}")


def scores_by_steps(
    run_dir: str | os.PathLike,
    model: torch.nn.Module,
    data: Dataset,
    features: DomainFeatures,
    steps: Sequence[int],
    options: EvalOptions | None = None,
    log: Callable[[str], None] | None = None,
    sample_at: SampleAt | None = None,
) -> dict[str, Any]:
    """The ``samples_by_steps`` section: one row of sample scores per step count.

    ``sample_at(n, generator, steps)`` draws the images (default: ``model.sample``;
    a MaskGIT prior passes its codes through the VQ-VAE's decoder). Each row holds ``steps``, ``fid``, ``kid_mean``, ``kid_std``, ``precision``,
    ``recall`` and ``sampling_seconds`` / ``images_per_s`` (the wall time of drawing
    the samples alone; on a shared machine it is only a rough guide).
    """
    check_steps_model(run_dir, model, steps)
    if sample_at is None:
        sample_at = lambda n, g, s: model.sample(n, generator=g, steps=s)  # noqa: E731
    options = options or EvalOptions()
    say = log or (lambda _msg: None)
    rows = []
    model.eval()
    for s in sorted(set(steps)):
        sampler = _TimedSampler(sample_at, s)
        say(f"samples at {s} steps")
        ev = evaluate_run(
            run_dir, data, features, options, sampler=sampler, model=model, only=["samples"]
        )
        sec = ev.sections["samples"]
        rows.append(
            {
                "steps": s,
                **{k: sec[k] for k in ("fid", "kid_mean", "kid_std", "precision", "recall")},
                "sampling_seconds": round(sampler.seconds, 3),
                "images_per_s": options.n / max(sampler.seconds, 1e-9),
            }
        )
    return {
        "rows": rows,
        "n_samples": options.n,
        "seed": options.seed,
        "features": features.record(),
        "threads": torch.get_num_threads(),
    }
