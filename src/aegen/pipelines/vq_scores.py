"""Stage 4 of the VQ-VAE generator, scored: what the samples are worth, and against what.

:mod:`aegen.pipelines.vq_prior` trains the stages and draws the picture; this module
measures the draw, on the domain feature network (:mod:`aegen.eval.features`):

- **one draw, kept** (:class:`SampleStream`): every image of a prior at one setting is
  drawn once and shared by the temperature choice, the scores and the class accuracy;
- **the temperature** (:func:`choose_temperature`, :func:`pick_temperature`): chosen by
  FID against the *validation* images, so the test split the scores use is not looked at;
- **the scores** (:func:`score_pipeline`): the samples' FID, KID, precision and recall
  beside their *ceiling*, the VQ-VAE's own test reconstructions scored the same way (what
  a prior that drew the test set's codes would reach), and a conditional prior's class
  accuracy; each section is kept in metrics.json with what it was scored from, and not
  computed again while that is the same;
- **FID against sampling steps** for the parallel prior (:func:`fid_against_steps`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import MODEL, load, load_config, weights_hash
from ..data.datasets import Dataset
from ..errors import UserError
from ..eval.evaluate import (
    MIN_SAMPLES,
    EvalOptions,
    ReconstructionSampler,
    data_record,
    evaluate_run,
)
from ..eval.features import DomainFeatures
from ..eval.metrics import frechet_distance, read_metrics_json, update_metrics_json
from ..eval.steps import scores_by_steps
from ..files import ensure_dir
from ..prior_runs import load_prior, prior_matches_vqvae
from ..priors.base import Guidance, guidance_record
from ..priors.maskgit import MaskGITPrior
from ..priors.sampling import balanced_sampler, sample_with
from ..viz import save_grid

__all__ = [
    "CHOICE_N",
    "FID_TIE",
    "SCORE_SECTIONS",
    "TEMPERATURES",
    "SampleStream",
    "choose_temperature",
    "class_accuracy",
    "fid_against_steps",
    "guidance_key",
    "pick_temperature",
    "score_lines",
    "score_pipeline",
    "shown",
]


def guidance_key(guidance: Guidance) -> dict[str, float | list[float]]:
    """``{"guidance": W}`` (or [A, B]) when W is not 1, so what was scored before W existed
    still matches (a part of every record of what stage 4 drew with)."""
    return {} if guidance == 1.0 else {"guidance": guidance_record(guidance)}


# ================================================================ stage 4: one draw, kept

Sampler = Callable[[int, torch.Generator], torch.Tensor]


class SampleStream:
    """The images of one prior at one setting, kept as they are drawn.

    ``take(n)`` returns the first n images and the labels they were drawn for (None for
    an unconditional prior), drawing only those not drawn yet: the images of
    :func:`draw_samples` over a :func:`~aegen.priors.sampling.balanced_sampler` seeded
    with ``seed`` (what ``aegen eval`` scores), whenever each earlier take was a multiple
    of ``batch_size``. Stage 4 draws every image once: the temperature choice's 5 000
    at the chosen temperature are the first of the 10 000 it scores, and the class
    accuracy is measured on those (before: 45 000 guided draws, 3 minutes of a 2-core
    AVX2 EPYC's 4; now 30 000).
    """

    def __init__(self, prior, vqvae, seed: int, batch_size: int = EvalOptions.batch_size, **kw):
        self.classes = prior.config.num_classes
        self._sampler = balanced_sampler(
            lambda m, g, y: sample_with(prior, vqvae, m, generator=g, label=y, **kw),
            self.classes,
        )
        self._generator = torch.Generator().manual_seed(seed)
        self._batch = batch_size
        self._images: list[torch.Tensor] = []
        self._count = 0

    def take(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        while self._count < n:
            m = min(self._batch, n - self._count)
            self._images.append(self._sampler(m, self._generator).float().clamp(0, 1))
            self._count += m
        if len(self._images) > 1:
            self._images = [torch.cat(self._images)]
        labels = torch.arange(n) % self.classes if self.classes else None
        return self._images[0][:n], labels

    def sampler(self) -> Sampler:
        """A sampler for :func:`evaluate_run` handing out this stream's images in order (the
        generator it is called with is not used: the stream has its own, seeded alike)."""
        given = 0

        def serve(m: int, _generator: torch.Generator) -> torch.Tensor:
            nonlocal given
            images = self.take(given + m)[0][given : given + m]
            given += m
            return images

        return serve


def _stream(
    streams: dict | None, prior_dir: Path, vqvae_dir: Path, seed: int, **kw: Any
) -> SampleStream:
    """The stream of ``streams`` (a dict one stage 4 shares) for these settings, made once."""
    key = (weights_hash(prior_dir / MODEL), weights_hash(vqvae_dir / MODEL), seed,
           tuple(sorted(kw.items())))  # fmt: skip
    streams = {} if streams is None else streams
    if key not in streams:
        prior, vqvae = load_prior(prior_dir), load(vqvae_dir, family="vqvae").eval()
        streams[key] = SampleStream(prior, vqvae, seed, **kw)
    return streams[key]


# ================================================================ stage 4: the temperature

# what `--temperature auto` chooses from, and on how many validation images (at most
# all of them: Fashion-MNIST keeps 5,000)
TEMPERATURES = (0.8, 0.9, 1.0, 1.1, 1.2)
CHOICE_N = 5000
# Candidates whose validation FID is within this fraction of the best are a tie, and the
# tie goes to the highest temperature: it draws the more varied images. Measured on full
# Fashion-MNIST (docs/vqvae.md, "The temperature and W of the default"): the FID of 2,000
# samples of one prior moved by 4-8 % (one standard deviation) between sampling seeds,
# more than it differs between T = 1.0 and 1.1, while recall on the test set rose from
# 0.478 to 0.520.
FID_TIE = 0.05


def pick_temperature(fid_on_val: dict[float, float], tie: float = FID_TIE) -> float:
    """The highest temperature whose FID is at most (1 + ``tie``) × the lowest."""
    best = min(fid_on_val.values())
    return max(t for t, f in fid_on_val.items() if f <= best * (1 + tie))


def choose_temperature(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    data: Dataset,
    features: DomainFeatures,
    candidates: tuple[float, ...] = TEMPERATURES,
    n: int = CHOICE_N,
    seed: int = 0,
    top_k: int | None = None,
    log: Callable[[str], None] | None = None,
    guidance: Guidance = 1.0,
    streams: dict | None = None,
) -> dict[str, Any]:
    """The sampling temperature chosen by FID against the **validation** images.

    At each of ``candidates``, ``n`` images of the prior (the classes in turn, one
    generator seeded with ``seed`` per temperature: a :class:`SampleStream`, kept in
    ``streams`` for the scores to go on from) are compared with ``n`` validation images on
    the domain features; the test split, which the reported scores use, is not looked at.
    The choice is :func:`pick_temperature`'s: the lowest FID, or, among candidates within
    :data:`FID_TIE` of it, the highest temperature.
    The choice is kept in the prior's metrics.json (``temperature_choice``, with the
    FID of every candidate) and reused while the weights, data and network are the same.
    The samples are drawn at ``guidance`` W (classifier-free guidance): a guided prior
    is sharper, and its best temperature may be another.
    """
    prior_dir, vqvae_dir = Path(prior_dir), Path(vqvae_dir)
    m = min(n, len(data.val))
    if m < MIN_SAMPLES:
        raise UserError(f"choosing a temperature needs {MIN_SAMPLES} validation images, got {m}")
    want = {
        "prior_weights_sha256": weights_hash(prior_dir / MODEL),
        "vqvae_weights_sha256": weights_hash(vqvae_dir / MODEL),
        "features_sha256": features.sha256,
        "data_fingerprint": data.fingerprint(),
        "n": m,
        "seed": seed,
        "candidates": [float(t) for t in candidates],
        "top_k": top_k,
        "tie": FID_TIE,
        **guidance_key(guidance),
    }
    stored = read_metrics_json(prior_dir).get("temperature_choice", {})
    if stored.get("scored_from") == want:
        return stored
    say = log or (lambda _msg: None)
    say(f"  the temperature: FID of {m} samples against {m} validation images at {candidates}")
    g = torch.Generator().manual_seed(seed)
    real = features.embed(data.val.x[torch.randperm(len(data.val), generator=g)[:m]])
    streams = {} if streams is None else streams
    fids = {}
    for t in candidates:
        stream = _stream(streams, prior_dir, vqvae_dir, seed, **_settings(t, top_k, guidance))
        fids[float(t)] = frechet_distance(real, features.embed(stream.take(m)[0]))
    section = {
        "temperature": pick_temperature(fids),
        "fid_on_val": {str(t): f for t, f in fids.items()},
        "split": "val",
        "n": m,
        "scored_from": want,
    }
    update_metrics_json(prior_dir, {"temperature_choice": section})
    return section


# =========================================================================== stage 4: scores

SCORE_SECTIONS = ("samples", "ceiling", "class_accuracy")


def _settings(temperature: float, top_k: int | None, guidance: Guidance) -> dict[str, Any]:
    """How a stream samples (the keywords of ``sample_with``)."""
    return {"temperature": temperature, "top_k": top_k, "guidance": guidance}


@torch.no_grad()
def class_accuracy(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    features: DomainFeatures,
    data: Dataset,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    guidance: Guidance = 1.0,
) -> dict[str, Any]:
    """How often a conditional prior draws the class it is asked for (at ``guidance`` W).

    ``images`` (n, 1, 28, 28) were drawn for ``labels`` (n,), the classes in turn (stage 4
    passes the images it scores, see :class:`SampleStream`); each is labelled by the
    domain network. ``per_class`` holds, for each class c, the fraction of the images
    drawn for c that it labels c, ``mean`` their mean. The network's accuracy on the real
    test images, ``test_accuracy``, is the scale: a generator whose images were as clear
    as the data's would reach about that.
    """
    if classes < 1:
        raise UserError("class accuracy needs a conditional prior; this one has no labels")
    counts = torch.bincount(labels, minlength=classes)
    if int(counts.min()) < 1:
        raise UserError(f"class accuracy needs at least {classes} images, one for each label")
    right = (features.classify(images) == labels).double()
    fractions = [float(right[labels == c].mean()) for c in range(classes)]
    return {
        "per_class": fractions,
        "mean": sum(fractions) / classes,
        "n_per_class": int(counts.min()),
        "n_samples": len(labels),
        "test_accuracy": features.accuracy(data.test.x, data.test.y),
        "n_test": len(data.test),
        "classes": list(data.classes),
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "guidance": guidance_record(guidance),
        "features": features.record(),
        "data": data_record(data),
    }


def _scores_wanted(
    prior_dir: Path,
    vqvae_dir: Path,
    data: Dataset,
    features: DomainFeatures,
    n: int,
    seed: int,
    temperature: float,
    top_k: int | None,
    guidance: Guidance = 1.0,
) -> dict[str, dict[str, Any]]:
    """Per score section, what it is measured from (kept in the section as ``scored_from``):
    the ceiling depends on the VQ-VAE only, the others on the prior and its settings too."""
    ceiling = {
        "vqvae_weights_sha256": weights_hash(vqvae_dir / MODEL),
        "n": n,
        "seed": seed,
        "features_sha256": features.sha256,
        "data_fingerprint": data.fingerprint(),
    }
    prior = {
        **ceiling,
        "prior_weights_sha256": weights_hash(prior_dir / MODEL),
        "temperature": temperature,
        "top_k": top_k,
        **guidance_key(guidance),
    }
    return {"samples": prior, "ceiling": ceiling, "class_accuracy": prior}


def score_pipeline(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    data: Dataset,
    features: DomainFeatures,
    n: int = EvalOptions.n,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    guidance: Guidance = 1.0,
    streams: dict | None = None,
) -> dict[str, dict[str, Any]]:
    """Score stage 4 on ``features`` and return the sections {samples, ceiling, class_accuracy}.

    - ``samples``: FID, KID, precision/recall and class coverage of ``n`` images of
      the prior (at ``temperature``, ``top_k``, ``guidance``) decoded by the VQ-VAE, as
      ``aegen eval PRIOR --vqvae VQVAE`` scores them; merged into the prior's metrics.json.
    - ``ceiling``: the VQ-VAE's own test reconstructions scored the same way
      (:class:`~aegen.eval.evaluate.ReconstructionSampler`), what a prior drawing the
      test set's own codes would reach; into the VQ-VAE's metrics.json.
    - ``class_accuracy`` (conditional priors only): :func:`class_accuracy` of the same
      ``n`` images, drawn for the classes in turn; into the prior's metrics.json.

    The images come from a :class:`SampleStream` in ``streams`` (the temperature
    choice's, when it drew at this temperature), so none is drawn twice.

    A section already in metrics.json with the same ``scored_from`` (weights, ``n``,
    seed, feature network, data, sampling settings) is kept, not computed again; ``log``
    hears first whether every section was kept or some are scored.
    """
    prior_dir, vqvae_dir = Path(prior_dir), Path(vqvae_dir)
    say = log or (lambda _msg: None)
    want = _scores_wanted(
        prior_dir, vqvae_dir, data, features, n, seed, temperature, top_k, guidance
    )
    names = _score_names(prior_dir)
    out = _stored(prior_dir, vqvae_dir, want)
    scored_with = f"{n} images, features {features.sha256[:12]}"
    if len(out) == len(names):
        say(f"stage 4/4: scores ({scored_with}) match; skipped")
        return out
    say(f"stage 4/4: scoring the samples against their ceiling ({scored_with})")
    vqvae = load(vqvae_dir, family="vqvae").eval()
    stream = _stream(streams, prior_dir, vqvae_dir, seed, **_settings(temperature, top_k, guidance))
    options = EvalOptions(n=n, seed=seed, temperature=temperature, vqvae_dir=str(vqvae_dir))
    if "ceiling" not in out:
        say(f"  the ceiling: {n} of the VQ-VAE's test reconstructions, scored as samples")
        ev = evaluate_run(
            vqvae_dir,
            data,
            features,
            EvalOptions(n=n, seed=seed),
            progress=progress,
            sampler=ReconstructionSampler(vqvae, data.test),
            model=vqvae,
            only=("samples",),
        )
        out["ceiling"] = {**ev.sections["samples"], "scored_from": want["ceiling"]}
        update_metrics_json(vqvae_dir, {"ceiling": out["ceiling"]})
    fresh = {}
    if "samples" not in out:
        say(f"  the samples: {n} images of the prior")
        ev = evaluate_run(
            prior_dir,
            data,
            features,
            options,
            progress=progress,
            sampler=stream.sampler(),
            only=("samples",),
        )
        fresh["samples"] = {
            **ev.sections["samples"],
            "top_k": top_k,
            "guidance": guidance_record(guidance),
            "scored_from": want["samples"],
        }
        # the first images scored, where `aegen eval` puts them: the report shows them
        save_grid(ensure_dir(prior_dir / "samples") / "scored_samples.png", ev.samples)
    if "class_accuracy" in names and "class_accuracy" not in out:
        say(f"  class accuracy: the {n} samples, drawn for {stream.classes} labels in turn")
        images, labels = stream.take(n)
        section = class_accuracy(
            images, labels, stream.classes, features, data, seed, temperature, top_k, guidance
        )
        fresh["class_accuracy"] = {**section, "scored_from": want["class_accuracy"]}
    if fresh:
        update_metrics_json(prior_dir, fresh)  # both sections in one atomic write
    return {s: {**out, **fresh}[s] for s in names}


def _score_names(prior_dir: Path) -> tuple[str, ...]:
    """The score sections a prior gets: class accuracy only when it takes labels."""
    conditional = load_config(prior_dir).get("model_config", {}).get("num_classes", 0)
    return SCORE_SECTIONS if conditional else SCORE_SECTIONS[:2]


def _stored(
    prior_dir: Path, vqvae_dir: Path, want: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    have = {"prior": read_metrics_json(prior_dir), "vqvae": read_metrics_json(vqvae_dir)}
    out = {}
    for name in _score_names(prior_dir):
        section = have["vqvae" if name == "ceiling" else "prior"].get(name)
        if isinstance(section, dict) and section.get("scored_from") == want[name]:
            out[name] = section
    return out


def shown(value: float | None, spec: str) -> str:
    """A stored score as text: metrics.json keeps a score that was not a number as null."""
    return format(math.nan if value is None else value, spec)


def score_lines(scores: dict[str, dict[str, Any]]) -> list[str]:
    """One line per score section of :func:`score_pipeline`, as the pipeline prints them."""
    lines = []
    for name, what in (
        ("samples", "samples"),
        ("ceiling", "ceiling (VQ-VAE test reconstructions)"),
    ):
        if s := scores.get(name):
            lines.append(
                f"{what}: FID {shown(s['fid'], '.3f')}, precision {shown(s['precision'], '.3f')}, "
                f"recall {shown(s['recall'], '.3f')} ({s['n_samples']} images)"
            )
    if c := scores.get("class_accuracy"):
        lines.append(
            f"class accuracy: {100 * c['mean']:.1f}% of the samples drawn for a label are "
            f"classified as it ({c['n_per_class']} per class; the feature network gets "
            f"{100 * c['test_accuracy']:.1f}% of the test images right)"
        )
    return lines


# ================================================ the parallel prior: FID against sampling steps


def fid_against_steps(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    data: Dataset,
    features: DomainFeatures,
    steps: tuple[int, ...] = (4, 8, 16),
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Sample scores of a MaskGIT prior's images at each number of sampling steps: the
    ``samples_by_steps`` section of :func:`aegen.eval.steps.scores_by_steps` (FID, KID,
    precision, recall and sampling speed per step count, as ``aegen eval --steps``
    gives a diffusion model), the prior in ``prior_dir`` decoded by the VQ-VAE in
    ``vqvae_dir``."""
    prior_matches_vqvae(prior_dir, vqvae_dir)
    prior, vqvae = load_prior(prior_dir), load(vqvae_dir, family="vqvae")
    if not isinstance(prior, MaskGITPrior):
        raise UserError(f"{prior_dir}: not a maskgit prior; only a masked prior has sampling steps")
    return scores_by_steps(
        prior_dir,
        prior,
        data,
        features,
        steps,
        options,
        sample_at=lambda n, g, s: sample_with(prior, vqvae, n, generator=g, steps=s),
    )
