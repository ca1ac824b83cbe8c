"""``aegen compare-generators``: the lecture's types of image generators at equal CPU time.

Each family — VAE, VQ-VAE + transformer prior, GAN, normalizing flow, diffusion —
is trained for the same wall-clock budget ``minutes`` (``train.max_minutes`` of the
one Trainer) into ``DIR/<family>/``, then all are scored by the same domain feature
network: FID, KID, precision, recall, sharpness, class coverage, bits/dim where the
family has a likelihood, training time, sampling speed, parameters, and a sample
grid. ``DIR/generators.json``, ``DIR/generators.md`` (one table) and
``DIR/generators.html`` hold the result, with a caption per family derived from its
numbers (:func:`caption`).

- **VQ-VAE + prior** splits its budget: :data:`VQ_SHARE` of it for the VQ-VAE,
  the rest for the transformer prior (:func:`aegen.pipelines.vq_prior.run_pipeline`
  trains both; encoding the codes between them is not counted).
- **Likelihoods** are in different units and are not one quantity: the VAE's is
  an importance-weighted *bound* (bits/dim ≥ the model's true value), a flow's is
  exact (bits/dim), the VQ prior's is bits per *code* of the 7×7 grid, a
  likelihood of codes, not of pixels; the GAN and diffusion rows have none.
- **Resumable per family**: a family whose training finished and whose
  ``scores.json`` matches these settings is skipped; an interrupted training resumes
  from its checkpoint with the seconds it already spent counted.
- **References**: the *training* images, scored exactly like a family's samples,
  are the yardstick the captions compare with (their FID is the floor a perfect
  generator reaches with this many images; their recall and class entropy the
  ceiling); sharpness is a ratio to the test images' own.

Families are found in the registry by their model names (:data:`RECIPES`); one
that is not registered yet is refused in one line naming it.
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import MODEL, TRAIN_STATE, load, load_config, read_train_state, weights_hash
from ..data.datasets import Dataset, load_data
from ..data.loader import to_float
from ..errors import ConfigError, UserError
from ..eval.coverage import class_coverage
from ..eval.evaluate import EvalOptions, Sampler, evaluate_run
from ..eval.features import DomainFeatures, cached_or_trained
from ..eval.metrics import read_metrics_json
from ..eval.report import data_uri, page_head
from ..eval.vae import laplacian_variance
from ..files import atomic_write_json, atomic_write_text, ensure_dir
from ..models.abilities import Samples, ScoresLikelihood
from ..prior_runs import load_prior
from ..priors.sampling import sample_with
from ..registry import entry
from ..runlog import RunLog
from ..runs import make_run_config, stage_state, train_run
from ..viz import save_grid
from .vq_prior import run_pipeline

__all__ = [
    "FAMILIES",
    "RECIPES",
    "THRESHOLDS",
    "VQ_SHARE",
    "Recipe",
    "caption",
    "check_families",
    "compare_generators",
    "family_runs",
    "markdown_table",
]

FAMILIES = ("vae", "vqvae", "gan", "flow", "diffusion")  # the lecture's order
VQ_SHARE = 0.5  # of the VQ family's minutes, for the VQ-VAE; the rest for its prior
PRIOR = "transformer"
# a budgeted run stops by time; this many epochs is only the cosine's horizon, and the
# recipes use a constant rate after warm-up, so the horizon does not matter
HORIZON_EPOCHS = 10_000


@dataclass(frozen=True)
class Recipe:
    """How one family trains for a short run: its registered model, ``--set`` overrides
    (``model.*``, ``train.*``; for ``vqvae``, ``vqvae.*`` and ``prior.*`` as the pipeline
    takes them), and whether those settings were tuned or are a starting point."""

    model: str
    overrides: tuple[str, ...]
    tuned: bool
    note: str = ""


CONSTANT = ("train.schedule=constant", "train.warmup_steps=100")
# One place for every family's short-run settings. The three new families' entries are
# starting points, to be tuned when their branches merge (tuned=False): only train.*
# keys are set for them, so their model configs are the families' own defaults.
RECIPES: dict[str, Recipe] = {
    "vae": Recipe("vae-mlp", ("train.lr=2e-3", "train.batch_size=128", *CONSTANT), True,
                  "the tour's VAE: lr picked on the validation ELBO (docs/tour.md)"),
    "vqvae": Recipe(PRIOR, (
        "vqvae.train.schedule=constant", "vqvae.train.warmup_steps=100",
        "prior.model.n_layers=2", "prior.train.lr=2e-3", "prior.train.schedule=constant",
        "prior.train.warmup_steps=100",
        # measured without the full pipeline's weight decay (aegen.pipelines.vq_prior)
        "prior.train.weight_decay=0",
    ), True, "the tour's quick VQ-VAE and its smaller transformer prior"),
    "gan": Recipe("gan", ("train.lr=2e-4", "train.batch_size=64"), False, "to be tuned"),
    "flow": Recipe("flow", ("train.lr=1e-3", "train.batch_size=64", *CONSTANT), False,
                   "to be tuned"),
    "diffusion": Recipe("diffusion", ("train.lr=2e-3", "train.batch_size=128", *CONSTANT),
                        False, "to be tuned"),
}  # fmt: skip


# --------------------------------------------------------------------------- captions

# Thresholds of the captions, each relative to the data's own score measured the same way
# (the training images as "samples"), so they mean the same on any data set.
THRESHOLDS = {
    "collapse_entropy": 0.8,  # class entropy below 80 % of the test images' → mode collapse
    "collapse_rare": 2,  # this many classes rare or missing → mode collapse
    "narrow_recall": 0.5,  # recall below half the training images', classes there → narrow
    "off_precision": 0.5,  # precision below half the training images' → off the data
    "blur": 0.6,  # sharpness below 0.6 × the data's → blur
    "soft": 0.85,  # [0.6, 0.85): soft; [0.85, 1.2]: sharp
    "grainy": 1.2,  # (1.2, 1.5]: grainy
    "speckle": 1.5,  # high-frequency energy above 1.5 × the data's → speckle
}


def caption(
    scores: dict[str, Any], reference: dict[str, Any], class_names: list[str] | None = None
) -> str:
    """What a family's samples show, in words, from its numbers and the data's.

    ``scores`` and ``reference`` hold ``recall``, ``precision``, ``entropy_nats``,
    ``sharpness`` (the variance of the Laplacian as a ratio to the test images'),
    and ``scores`` the ``rare_classes`` indices.
    """
    t = THRESHOLDS
    names = class_names or []
    parts = []
    r, rr = scores["recall"], reference["recall"]
    e, er = scores["entropy_nats"], reference["entropy_nats"]
    rare = [names[i] if i < len(names) else str(i) for i in scores.get("rare_classes", [])]
    missing = f", rare or missing: {', '.join(rare)}" if rare else ""
    if e < t["collapse_entropy"] * er or len(rare) >= t["collapse_rare"]:
        # whole classes missing: the samples fall on a few modes of the data
        parts.append(
            f"mode collapse: class entropy {e:.2f} nats (data {er:.2f}), recall {r:.2f} "
            f"(data {rr:.2f}){missing}"
        )
    elif r < t["narrow_recall"] * rr:
        # the classes are there, but within them the samples cover little of the data
        parts.append(
            f"narrow: the classes are there (class entropy {e:.2f} nats, data {er:.2f}) but "
            f"recall is {r:.2f} (data {rr:.2f}): little of each class's variety{missing}"
        )
    else:
        parts.append(
            f"covers the classes: class entropy {e:.2f} nats (data {er:.2f}), recall {r:.2f}"
            + missing
        )
    p, pr = scores["precision"], reference["precision"]
    if p < t["off_precision"] * pr:
        parts.append(f"off the data: precision {p:.2f} (data {pr:.2f})")
    q = scores["sharpness"] / max(reference["sharpness"], 1e-12)
    s = scores["sharpness"]
    if q < t["blur"]:
        parts.append(f"blur: sharpness {s:.2f} × the test images'")
    elif q < t["soft"]:
        parts.append(f"soft: sharpness {s:.2f} × the test images'")
    elif q <= t["grainy"]:
        parts.append(f"sharp: sharpness {s:.2f} × the test images'")
    elif q <= t["speckle"]:
        parts.append(f"grainy: high-frequency energy {s:.2f} × the test images'")
    else:
        parts.append(f"speckle: high-frequency energy {s:.2f} × the test images'")
    return "; ".join(parts)


# --------------------------------------------------------------------------- families


def check_families(families: list[str]) -> list[str]:
    """The families in the lecture's order; an unknown or not-installed one is a UserError."""
    unknown = [f for f in families if f not in RECIPES]
    if unknown:
        raise UserError(
            f"unknown generator family {unknown[0]!r}; choose from {', '.join(FAMILIES)}"
        )
    if not families:
        raise UserError(f"--families is empty; choose from {', '.join(FAMILIES)}")
    missing = []
    for f in families:
        try:
            entry(RECIPES[f].model)
        except ConfigError:
            missing.append(f)
    if missing:
        raise UserError(
            f"generator famil{'ies' if len(missing) > 1 else 'y'} not installed: "
            f"{', '.join(missing)} (no registered model {', '.join(repr(RECIPES[f].model) for f in missing)}); "
            "leave them out of --families"
        )
    return [f for f in RECIPES if f in families]


@dataclass(frozen=True)
class Settings:
    minutes: float
    data: str
    data_dir: str | None
    limit: int
    seed: int
    eval_n: int

    def record(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes,
            "data": self.data,
            "data_dir": self.data_dir,
            "limit": self.limit,
            "seed": self.seed,
            "eval_n": self.eval_n,
        }


def family_runs(out: Path, family: str) -> dict[str, Path]:
    """Where a family trains under its directory: ``{"run": …}``, or for ``vqvae`` the
    pipeline's ``{"vqvae": …, "prior": …}``."""
    d = out / family
    return {"vqvae": d / "vqvae", "prior": d / "prior"} if family == "vqvae" else {"run": d / "run"}


def _train_model(
    family: str, run_dir: Path, s: Settings, data: Dataset, progress: bool, log
) -> str:
    recipe = RECIPES[family]
    run = make_run_config(
        recipe.model,
        data=s.data,
        overrides=[
            *recipe.overrides,
            f"train.max_minutes={s.minutes}",
            f"train.epochs={HORIZON_EPOCHS}",
        ],
        seed=s.seed,
        limit=s.limit,
        data_dir=s.data_dir,
    )
    state = stage_state(run_dir, run.to_json(), ("model", "model_config", "train", "data"), family)
    if state == "done":
        return "skipped"
    log(
        f"  {family}: {'resuming' if state == 'resume' else 'training'} {recipe.model} for {s.minutes:g} min"
    )
    train_run(None if state == "resume" else run, run_dir, resume=state == "resume",
              progress=progress, data=data)  # fmt: skip
    return "resumed" if state == "resume" else "trained"


def _train_vq(out: Path, s: Settings, progress: bool, log) -> str:
    """The VQ-VAE and its prior through the pipeline, each with its share of the minutes."""
    runs = family_runs(out, "vqvae")
    before = {k: _finished(p) for k, p in runs.items()}
    vq_min, prior_min = VQ_SHARE * s.minutes, (1 - VQ_SHARE) * s.minutes
    log(f"  vqvae: VQ-VAE {vq_min:g} min, then the {PRIOR} prior {prior_min:g} min")
    run_pipeline(
        out / "vqvae",
        prior=PRIOR,
        data=s.data,
        data_dir=s.data_dir,
        limit=s.limit or None,
        overrides=[
            *RECIPES["vqvae"].overrides,
            f"vqvae.train.max_minutes={vq_min}",
            f"prior.train.max_minutes={prior_min}",
        ],
        vqvae_epochs=HORIZON_EPOCHS,
        prior_epochs=HORIZON_EPOCHS,
        seed=s.seed,
        progress=progress,
        eval_n=0,  # every family is scored below, the same way
        guidance=1.0,  # its picture drawn as its scores are: unguided
    )
    return "skipped" if all(before.values()) else "trained"


def _finished(run_dir: Path) -> bool:
    return (run_dir / TRAIN_STATE).is_file() and bool(read_train_state(run_dir).get("finished"))


def train_seconds(run_dir: Path) -> tuple[float, int]:
    """(seconds of training, optimiser steps) of a finished run: the checkpoint's
    ``elapsed_s`` when the run kept one, else the sum of metrics.csv's epoch seconds."""
    state = read_train_state(run_dir)
    if "elapsed_s" in state:
        return float(state["elapsed_s"]), int(state["step"])
    rows = RunLog(run_dir, show=False, write=False).history()
    return sum(float(r.get("seconds") or 0) for r in rows), int(state["step"])


# --------------------------------------------------------------------------- scoring


class TimedSampler:
    """A sampler that keeps what it drew and how long drawing took."""

    def __init__(self, sampler: Sampler):
        self.sampler, self.seconds, self.drawn = sampler, 0.0, []

    def __call__(self, n: int, g: torch.Generator) -> torch.Tensor:
        t0 = time.perf_counter()
        with torch.no_grad():
            x = self.sampler(n, g)
        self.seconds += time.perf_counter() - t0
        self.drawn.append(x.detach().float().cpu().clamp(0, 1))
        return x

    def images(self) -> torch.Tensor:
        return torch.cat(self.drawn)


def _sharpness(images: torch.Tensor, test_sharpness: float) -> float:
    return float(laplacian_variance(images).mean()) / test_sharpness


def _score(
    run_dir: Path,
    model: torch.nn.Module,
    sampler: Sampler,
    data: Dataset,
    features: DomainFeatures,
    options: EvalOptions,
    test_sharpness: float,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Sample scores, class coverage and sharpness of ``sampler``'s images, and the images."""
    timed = TimedSampler(sampler)
    ev = evaluate_run(
        run_dir, data, features, options, only=("samples",), sampler=timed, model=model
    )
    sm = ev.sections["samples"]
    images = timed.images()
    cov = class_coverage(features.net, images)
    return {
        "fid": sm["fid"],
        "kid_mean": sm["kid_mean"],
        "kid_std": sm["kid_std"],
        "precision": sm["precision"],
        "recall": sm["recall"],
        "entropy_nats": cov["entropy_nats"],
        "class_histogram": cov["histogram"],
        "rare_classes": cov["rare_classes"],
        "sharpness": _sharpness(images, test_sharpness),
        "sample_images_per_s": len(images) / max(timed.seconds, 1e-9),
        "n_samples": sm["n_samples"],
    }, images


class _TrainingImages:
    """The reference sampler: training images in a random order, as if a generator drew them."""

    def __init__(self, data: Dataset):
        self.x, self.order, self.next = data.train.x, None, 0

    def __call__(self, n: int, g: torch.Generator) -> torch.Tensor:
        if self.order is None:
            self.order = torch.randperm(len(self.x), generator=g)
        idx = self.order[torch.arange(self.next, self.next + n) % len(self.x)]
        self.next += n
        return to_float(self.x[idx])


def _params(*models: torch.nn.Module) -> int:
    return sum(p.numel() for m in models for p in m.parameters())


def _likelihood(run_dir: Path, model, data: Dataset, options: EvalOptions) -> dict[str, Any]:
    if not isinstance(model, ScoresLikelihood):
        return {}
    lk = evaluate_run(run_dir, data, None, options, only=("likelihood",), model=model)
    return {"bits_per_dim": lk.sections["likelihood"]["bits_per_dim"]}


def _load_family(family: str, runs: dict[str, Path]):
    """(run dir to score, model, sampler, parameters, train seconds, steps, extra numbers)."""
    if family == "vqvae":
        vq, prior = load(runs["vqvae"], family="vqvae").eval(), load_prior(runs["prior"])
        sv, nv = train_seconds(runs["vqvae"])
        sp, np_ = train_seconds(runs["prior"])
        bits = read_metrics_json(runs["prior"]).get("prior", {}).get("test_nll_bits")
        extra = {"bits_per_code": bits, "vqvae_seconds": sv, "prior_seconds": sp}
        sampler = lambda n, g: sample_with(prior, vq, n, g)  # noqa: E731
        return runs["prior"], prior, sampler, _params(vq, prior), sv + sp, nv + np_, extra
    model = load(runs["run"]).eval()
    if not isinstance(model, Samples):
        raise UserError(
            f"{runs['run']}: a {load_config(runs['run'])['model']} model does not sample"
        )
    sec, steps = train_seconds(runs["run"])
    sampler = lambda n, g: model.sample(n, generator=g)  # noqa: E731
    return runs["run"], model, sampler, _params(model), sec, steps, {}


def _fingerprint(family: str, runs: dict[str, Path]) -> dict[str, str]:
    return {k: weights_hash(p / MODEL) for k, p in runs.items()}


# --------------------------------------------------------------------------- the job


def compare_generators(
    out_dir: str | os.PathLike,
    minutes: float,
    families: list[str] | None = None,
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    limit: int = 0,
    seed: int = 0,
    eval_n: int = 10_000,
    features_epochs: int = 4,
    existing: dict[str, dict[str, Path]] | None = None,
    features: DomainFeatures | None = None,
    options: EvalOptions | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or reuse) each family for ``minutes`` and score them all; returns
    what ``DIR/generators.json`` holds, plus ``actions`` (family → trained, resumed,
    skipped, reused).

    ``existing`` names already-trained runs to score instead of training a family
    (``{"vae": {"run": DIR}}``, ``{"vqvae": {"vqvae": DIR, "prior": DIR}}``: the
    tour's); their own training time is reported. ``features`` is the network to score
    with (default: the cached one for the data set, else one trained into DIR/features).
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if not (minutes > 0 and math.isfinite(minutes)):
        raise UserError(f"--minutes must be a positive number, got {minutes}")
    fams = check_families(list(families or FAMILIES))
    if eval_n < 10:
        raise UserError(f"--eval-n must be at least 10, got {eval_n}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    dataset = load_data(data, data_dir, limit=limit)  # a bad --data fails before any write
    s = Settings(minutes, data, data_dir, limit, seed, eval_n)
    n = min(eval_n, len(dataset.test))
    opts = options or EvalOptions(
        n=n, seed=seed, kid_subsets=20, kid_subset_size=min(1000, n // 2),
        nll_images=min(1000, len(dataset.test)), iwae_k=100,
    )  # fmt: skip
    ensure_dir(out)
    if features is None:
        features = cached_or_trained(
            dataset, out / "features", features_epochs, seed, progress, say
        )
    test_x = to_float(dataset.test.x[:n])
    test_sharpness = float(laplacian_variance(test_x).mean())
    test_cov = class_coverage(features.net, dataset.test.x)

    # the data's own scores: training images as the samples
    ref_path = out / "reference.json"
    ref_want = {**s.record(), "features": features.sha256}
    reference = _read_if(ref_path, ref_want)
    if reference is None:
        say("  reference: the training images, scored like samples")
        ref, _ = _score(features.directory, features.net, _TrainingImages(dataset), dataset,
                        features, opts, test_sharpness)  # fmt: skip
        reference = {"settings": ref_want, **ref, "entropy_nats": test_cov["entropy_nats"],
                     "train_entropy_nats": ref["entropy_nats"]}  # fmt: skip
        atomic_write_json(ref_path, reference)

    results: dict[str, Any] = {}
    actions: dict[str, str] = {}
    for family in fams:
        fdir = ensure_dir(out / family)
        reused = family in (existing or {})
        runs = (existing or {}).get(family) or family_runs(out, family)
        if reused:
            action = "reused"
        elif family == "vqvae":
            action = _train_vq(out, s, progress, say)
        else:
            action = _train_model(family, runs["run"], s, dataset, progress, say)
        want = {**s.record(), "features": features.sha256, "weights": _fingerprint(family, runs),
                "recipe": list(RECIPES[family].overrides)}  # fmt: skip
        scores = _read_if(fdir / "scores.json", want)
        if scores is None:
            say(f"  {family}: scoring {n} samples")
            scores = _score_family(family, runs, dataset, features, opts, test_sharpness)
            scores.update(settings=want, reused=reused, model=RECIPES[family].model,
                          tuned=RECIPES[family].tuned)  # fmt: skip
            save_grid(fdir / "samples.png", scores.pop("_grid"), nrow=10)
            atomic_write_json(fdir / "scores.json", scores)
        elif action == "skipped" or reused:
            action = "skipped"
        scores["caption"] = caption(scores, reference, dataset.classes)
        if scores["reused"] and abs(scores["train_seconds"] - 60 * minutes) > 0.2 * 60 * minutes:
            scores["caption"] += (
                f" (reused: trained {scores['train_seconds']:.0f} s, not the {60 * minutes:.0f} s budget)"
            )
        results[family] = scores
        actions[family] = action
    summary = {
        **s.record(),
        "features": features.record(),
        "classes": list(dataset.classes),
        "vq_share": VQ_SHARE,
        "thresholds": THRESHOLDS,
        "reference": reference,
        "families": results,
    }
    atomic_write_json(out / "generators.json", summary)
    atomic_write_text(out / "generators.md", markdown_table(summary) + "\n")
    atomic_write_text(out / "generators.html", render_html(summary, out))
    return {**summary, "actions": actions}


def _read_if(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON at ``path`` if it was written with these ``settings``, else None."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("settings") == settings else None


def _score_family(family, runs, data, features, opts, test_sharpness) -> dict[str, Any]:
    run_dir, model, sampler, params, sec, steps, extra = _load_family(family, runs)
    scores, images = _score(run_dir, model, sampler, data, features, opts, test_sharpness)
    scores.update(extra)
    scores.update(_likelihood(run_dir, model, data, opts))
    scores.update(parameters=params, train_seconds=sec, train_steps=steps, _grid=images[:100])
    return scores


# --------------------------------------------------------------------------- outputs

COLUMNS = (
    ("FID ↓", "fid", "{:.2f}"),
    ("KID ↓", "kid_mean", "{:.4f}"),
    ("precision ↑", "precision", "{:.3f}"),
    ("recall ↑", "recall", "{:.3f}"),
    ("sharpness (× test)", "sharpness", "{:.2f}"),
    ("class entropy (nats)", "entropy_nats", "{:.2f}"),
    ("bits/dim", "bits_per_dim", "{:.3f}"),
    ("bits/code (VQ prior)", "bits_per_code", "{:.3f}"),
    ("training s", "train_seconds", "{:.0f}"),
    ("sampling images/s", "sample_images_per_s", "{:.0f}"),
    ("parameters", "parameters", "{:,}"),
)


def _cells(row: dict[str, Any]) -> list[str]:
    return [fmt.format(row[k]) if row.get(k) is not None else "—" for _, k, fmt in COLUMNS]


def markdown_table(summary: dict[str, Any]) -> str:
    """One table: a row per family, then the training images scored the same way."""
    head = ["family", "model", *(c for c, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fam, row in summary["families"].items():
        lines.append("| " + " | ".join([fam, row["model"], *_cells(row)]) + " |")
    ref = {**summary["reference"], "train_seconds": None, "sample_images_per_s": None}
    lines.append("| " + " | ".join(["training images", "(reference)", *_cells(ref)]) + " |")
    lines.append("")
    lines.append(
        f"{summary['minutes']:g} minutes of training each on {summary['data']}; "
        f"{summary['eval_n']} samples scored per family; seed {summary['seed']}. "
        "bits/dim: the flow's bounds the NLL of the 8-bit images (8 is a uniform model's); "
        "the VAE's is an IWAE bound of its Bernoulli decoder on grey values, which is not a "
        "normalised density of 8-bit images, so the two do not compare; bits/code is the VQ "
        "prior's likelihood of the 7×7 code grid, another quantity again."
    )
    lines += [""] + [f"- **{fam}**: {row['caption']}" for fam, row in summary["families"].items()]
    return "\n".join(lines)


def section_html(summary: dict[str, Any], out: Path) -> list[str]:
    """The comparison as an HTML section: the table, then each family's grid and caption."""
    e = html.escape
    fams = summary["families"]
    best: dict[str, str] = {}
    for _, k, _ in COLUMNS[:6]:
        vals = {f: r[k] for f, r in fams.items() if r.get(k) is not None}
        if len(vals) > 1 and k != "sharpness":
            pick = min if k in ("fid", "kid_mean") else max
            best[k] = pick(vals, key=vals.get)
    body = ['<section id="generators"><h2>Types of image generators, at equal CPU time</h2>',
            f'<p class="meta">{summary["minutes"]:g} minutes of training each · '
            f'{e(summary["data"])} · {summary["eval_n"]} samples scored · seed {summary["seed"]}</p>',
            '<table id="generators-table"><thead><tr><th>family</th><th>model</th>']  # fmt: skip
    body += [f"<th>{e(c)}</th>" for c, _, _ in COLUMNS] + ["</tr></thead><tbody>"]
    for fam, row in fams.items():
        cells = "".join(
            f"<td{' class=best' if best.get(k) == fam else ''}>{e(text)}</td>"
            for (_, k, _), text in zip(COLUMNS, _cells(row), strict=True)
        )
        body.append(
            f'<tr data-family="{e(fam)}"><th>{e(fam)}</th><td>{e(row["model"])}</td>{cells}</tr>'
        )
    ref = {**summary["reference"], "train_seconds": None, "sample_images_per_s": None}
    body.append('<tr class="info"><th>training images</th><td>(reference)</td>'
                + "".join(f"<td>{e(t)}</td>" for t in _cells(ref)) + "</tr>")  # fmt: skip
    body.append("</tbody></table>")
    body.append('<div class="figures">')
    for fam, row in fams.items():
        png = out / fam / "samples.png"
        if png.is_file():
            text = f"{fam} ({row['model']}): {row['caption']}"
            body.append(f'<figure><img src="{data_uri(png.read_bytes())}" alt="{e(text)}">'
                        f"<figcaption>{e(text)}</figcaption></figure>")  # fmt: skip
    body.append("</div></section>")
    return body


def render_html(summary: dict[str, Any], out: Path) -> str:
    page = page_head("aegen compare-generators", "each family scored by the same feature network")
    return "\n".join([*page, *section_html(summary, out), "</body></html>"]) + "\n"
