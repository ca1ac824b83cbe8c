"""What every part of the tour shares: its settings, the data set, the feature network,
and helpers that train (or resume, or reuse) a run and score it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...checkpoint import load
from ...data.datasets import Dataset, load_data
from ...eval.metrics import METRICS_JSON, read_metrics_json, update_metrics_json
from ...files import ensure_dir
from ...runs import finish_run, make_run_config, stage_state, train_run
from ...viz import save_grid
from .budget import Budget

__all__ = ["PartResult", "Tour"]


@dataclass
class PartResult:
    """What a part shows: numbers (label, text), figures (path relative to the tour dir,
    a caption), the run directories whose scores are tabled side by side, and the raw
    ``metrics`` (name → number) its claims are judged on (:mod:`.claims`)."""

    numbers: list[tuple[str, str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PartResult:
        return cls(
            [tuple(x) for x in d.get("numbers", [])],
            [tuple(x) for x in d.get("figures", [])],
            list(d.get("runs", [])),
            {k: float(v) for k, v in d.get("metrics", {}).items()},
        )


@dataclass
class Tour:
    """One tour's settings and shared state (the data set, the feature network)."""

    out: Path
    budget: Budget
    data_name: str
    data_dir: str | None = None
    seed: int = 0
    progress: bool = True
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    _data: Dataset | None = None
    _features: Any = None

    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_data(self.data_name, self.data_dir, limit=self.budget.limit)
        return self._data

    def rel(self, p: Path) -> str:
        return str(Path(p).relative_to(self.out))

    def features(self):
        """The feature network every score uses: the cached one for this data set, else one
        trained here (once per tour, into ``DIR/features``)."""
        from ...eval.features import cached_or_trained

        if self._features is None:
            self._features = cached_or_trained(
                self.data(),
                self.out / "features",
                self.budget.features_epochs,
                self.seed,
                self.progress,
                self.log,
            )
        return self._features

    def train(
        self,
        part_dir: Path,
        key: str,
        model: str,
        overrides: list[str] | None = None,
        epochs: int = 1,
        phased: dict[str, Any] | None = None,
    ) -> tuple[Path, torch.nn.Module]:
        """Train (or resume, or reuse) run ``part_dir/key`` and write its test reconstructions."""
        out = part_dir / key
        run = make_run_config(
            model,
            data=self.data_name,
            overrides=overrides or [],
            epochs=epochs,
            seed=self.seed,
            limit=self.budget.limit,
            data_dir=self.data_dir,
        )
        want = {**run.to_json(), "phased": phased}
        state = stage_state(out, want, ("model", "model_config", "train", "data", "phased"), key)
        if state == "done" and (out / METRICS_JSON).is_file():
            return out, load(out)
        self.log(
            f"  {key}: {'resuming' if state != 'fresh' else 'training'} {model} ({epochs} epochs)"
        )
        trained = train_run(
            None if state != "fresh" else run,
            out,
            resume=state != "fresh",
            progress=self.progress,
            data=self.data(),
            phased=phased,
        )
        finish_run(trained)
        return out, trained.model

    def options(self, **kw):
        from ...eval.evaluate import EvalOptions

        n = min(self.budget.eval_n, len(self.data().test))
        return EvalOptions(
            n=n,
            seed=self.seed,
            nll_images=min(self.budget.nll_images, len(self.data().test)),
            iwae_k=self.budget.iwae_k,
            kid_subset_size=min(1000, n // 2),
            kid_subsets=20,
            **kw,
        )

    def evaluate(
        self,
        run_dir: Path,
        only: tuple[str, ...],
        sampler=None,
        section: str | None = None,
        **opts,
    ) -> dict[str, Any]:
        """``aegen eval`` on a run, unless its metrics.json already holds these scores.

        ``sampler`` scores other images than the run's own samples (``only`` is then
        ("samples",)), kept in metrics.json under ``section`` instead of "samples".
        """
        from ...eval.evaluate import evaluate_run

        have = read_metrics_json(run_dir)
        names = [section] if section else list(only)
        # finish_run's reconstruction section has no SSIM; aegen eval's has
        if all(s in have and (s != "reconstruction" or "ssim" in have[s]) for s in names):
            return have
        features = self.features() if "samples" in only else None
        ev = evaluate_run(
            run_dir, self.data(), features, self.options(**opts), only=only, sampler=sampler
        )
        sections = ev.sections
        if section:
            sections = {section: sections["samples"]}
        elif ev.samples is not None:
            save_grid(ensure_dir(run_dir / "samples") / "scored_samples.png", ev.samples)
        return update_metrics_json(run_dir, sections)
