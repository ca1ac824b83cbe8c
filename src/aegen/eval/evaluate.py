"""Evaluating a run directory: what ``aegen eval`` computes, as an API.

Which scores a run gets depends on what its model can do (the Protocols of
:mod:`aegen.models.abilities`), asked in this order:

- it reconstructs (:class:`Reconstructs`): MSE, PSNR and SSIM on the test split;
- it samples (a *sampler* exists for the run, see below): FID, KID and
  precision/recall of ``n`` samples against ``n`` test images, on the features of
  a domain network (:mod:`aegen.eval.features`) whose SHA-256 is recorded, and
  ``class_coverage``: the histogram of the network's labels of the samples, the
  fraction of classes holding at least half a fair share, and its entropy in nats;
- it has a likelihood (:class:`ScoresLikelihood`: the VAE's IWAE bound, the flow's
  dequantization bound): NLL in nats per image and bits per dimension on test images.

A sampler is a function ``(n, generator) -> images (n, 1, 28, 28) in [0, 1]``.
:func:`sampler_for_run` finds one: a function registered for the run's family
with :func:`register_sampler` first, else the model's own ``sample`` method
(:class:`Samples`). Runs of family ``prior`` (a VQ-VAE's autoregressive prior)
are sampled through their VQ-VAE, :func:`aegen.prior_runs.sample_images`.

Everything is checked before anything is computed, and nothing is written here:
the caller merges the returned sections into ``metrics.json``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import prior_runs
from ..checkpoint import load, load_config
from ..data.datasets import Dataset, Split
from ..data.loader import to_float
from ..errors import UserError
from ..models.abilities import Reconstructs, Samples, ScoresLikelihood
from ..priors.sampling import balanced_sampler
from ..version import __version__
from .features import DomainFeatures
from .metrics import (
    class_coverage,
    frechet_distance,
    kernel_distance,
    precision_recall,
    reconstruction_metrics,
)

__all__ = [
    "EvalOptions",
    "Evaluation",
    "ReconstructionSampler",
    "Sampler",
    "data_record",
    "draw_samples",
    "evaluate_run",
    "register_sampler",
    "sampler_for_run",
]

Sampler = Callable[[int, torch.Generator], torch.Tensor]
SamplerFactory = Callable[[Path, "torch.nn.Module | None", "EvalOptions"], Sampler | None]

_SAMPLER_FACTORIES: dict[str, SamplerFactory] = {}

SECTIONS = ("reconstruction", "samples", "likelihood")

# the smallest --n that makes every sample score defined (k-NN balls need k+1 points)
MIN_SAMPLES = 10


@dataclass
class EvalOptions:
    """How much to evaluate, and with which seeds; recorded next to the scores."""

    n: int = 10_000  # samples drawn, and test images they are compared with (at most all)
    seed: int = 0  # seeds the samples, the test subset, the KID subsets and the IWAE draws
    k: int = 3  # neighbours for the precision/recall balls
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    temperature: float = 1.0
    nll_images: int = 1000  # test images for the likelihood (IWAE is k decoder passes each)
    iwae_k: int = 100  # importance samples per image
    batch_size: int = 500
    vqvae_dir: str | None = None  # for prior runs whose config does not name their VQ-VAE

    def check(self) -> None:
        if self.n < MIN_SAMPLES:
            raise UserError(f"--n must be at least {MIN_SAMPLES} for sample scores, got {self.n}")
        if not 1 <= self.k < self.n:
            raise UserError(f"k must be in [1, n), got {self.k}")
        for name in ("kid_subsets", "kid_subset_size", "nll_images", "iwae_k", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise UserError(f"temperature must be positive, got {self.temperature}")


def register_sampler(family: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Decorator: ``factory(run_dir, model, options) -> Sampler | None`` samples runs of ``family``."""

    def wrap(factory: SamplerFactory) -> SamplerFactory:
        _SAMPLER_FACTORIES[family] = factory
        return factory

    return wrap


@register_sampler("prior")
def _vq_prior_sampler(run_dir: Path, model: Any, options: EvalOptions) -> Sampler:
    """Images from a VQ-VAE decoding codes drawn from this prior (see :mod:`aegen.prior_runs`)."""
    cfg = load_config(run_dir)
    vqvae_dir = options.vqvae_dir or cfg.get("vqvae_dir") or cfg.get("data", {}).get("vqvae_dir")
    if not vqvae_dir:
        raise UserError(
            f"{run_dir}: a prior run needs its VQ-VAE run directory to make images; pass --vqvae DIR"
        )
    load(vqvae_dir, family="vqvae")  # refuses a missing or wrong directory in one line, early
    kw = {} if options.temperature == 1.0 else {"temperature": options.temperature}
    # a conditional prior draws the classes in turn, as the pipeline's stage 4 scores it
    return balanced_sampler(
        lambda n, g, y: prior_runs.sample_images(run_dir, vqvae_dir, n, g, label=y, **kw),
        cfg.get("model_config", {}).get("num_classes", 0),
    )


def sampler_for_run(
    run_dir: str | os.PathLike, model: torch.nn.Module | None, options: EvalOptions
) -> Sampler | None:
    """How to draw images from the run's model, or None when it does not generate."""
    d = Path(run_dir)
    family = load_config(d).get("family") or getattr(model, "family", None)
    if family in _SAMPLER_FACTORIES:
        return _SAMPLER_FACTORIES[family](d, model, options)
    if isinstance(model, Samples):
        if options.temperature == 1.0:
            return lambda n, g: model.sample(n, generator=g)
        return lambda n, g: model.sample(n, generator=g, temperature=options.temperature)
    return None


class ReconstructionSampler:
    """Draws ``model``'s reconstructions of ``split``'s images, each image once, in an order
    drawn from the generator. Scored like samples, they are the ceiling of a two-stage
    generator: a VQ-VAE decoding the codes a perfect prior would draw."""

    def __init__(self, model: torch.nn.Module, split: Split):
        self.model, self.split = model, split
        self.order: torch.Tensor | None = None
        self.next = 0

    def __call__(self, n: int, g: torch.Generator) -> torch.Tensor:
        if self.order is None:
            self.order = torch.randperm(len(self.split), generator=g)
        idx = self.order[torch.arange(self.next, self.next + n) % len(self.split)]
        self.next += n
        with torch.no_grad():
            return self.model.reconstruct(to_float(self.split.x[idx]))


@torch.no_grad()
def draw_samples(
    sampler: Sampler, n: int, seed: int, batch_size: int = 500, progress: bool = False
) -> torch.Tensor:
    """``n`` images (n, 1, 28, 28) in [0, 1] in batches, from one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out, done = [], 0
    with tqdm(total=n, desc="sampling", disable=not progress, leave=False, file=sys.stderr) as bar:
        while done < n:
            m = min(batch_size, n - done)
            x = sampler(m, g).detach().float().cpu()
            if x.ndim == 3:
                x = x.unsqueeze(1)
            if tuple(x.shape) != (m, 1, 28, 28):
                raise RuntimeError(f"the sampler returned shape {tuple(x.shape)} for {m} images")
            if not torch.isfinite(x).all():
                raise RuntimeError("the sampler returned non-finite pixels")
            out.append(x.clamp(0, 1))
            done += m
            bar.update(m)
    return torch.cat(out)


def data_record(data: Dataset) -> dict[str, Any]:
    """What a score records about the images it was measured on."""
    return {"name": data.name, "fingerprint": data.fingerprint(), "test_images": len(data.test)}


def _load_run_model(run_dir: Path) -> torch.nn.Module | None:
    """The run's model; None for a prior, which is only reached through its pipeline."""
    if load_config(run_dir).get("family") == "prior":
        return None
    return load(run_dir)


@dataclass
class Evaluation:
    """The ``metrics.json`` sections of one evaluation, and the first samples it scored."""

    sections: dict[str, Any]
    samples: torch.Tensor | None = None  # (≤ 100, 1, 28, 28) in [0, 1]


def evaluate_run(
    run_dir: str | os.PathLike,
    data: Dataset,
    features: DomainFeatures | None = None,
    options: EvalOptions | None = None,
    progress: bool = False,
    sampler: Sampler | None = None,
    model: torch.nn.Module | None = None,
    log: Callable[[str], None] | None = None,
    only: Collection[str] | None = None,
) -> Evaluation:
    """Score a run and return its ``metrics.json`` sections (nothing is written).

    ``sampler`` and ``model`` replace what would be found in the run directory;
    ``only`` limits the work to some of "reconstruction", "samples", "likelihood".
    Raises UserError, before computing anything, when the run samples and no
    feature network is given, or the network was trained on other data.
    """
    options = options or EvalOptions()
    options.check()
    wanted = set(SECTIONS if only is None else only)
    if wanted - set(SECTIONS):
        raise UserError(
            f"unknown score {sorted(wanted - set(SECTIONS))[0]!r}; choose from {', '.join(SECTIONS)}"
        )
    d = Path(run_dir)
    t0 = time.perf_counter()
    model = model if model is not None else _load_run_model(d)
    if "samples" not in wanted:
        sampler = None
    elif sampler is None:
        sampler = sampler_for_run(d, model, options)
    images = data.test.x.dtype == torch.uint8
    if not images:
        raise UserError(f"{data.name}: evaluation needs image data")
    if sampler is not None:
        if features is None:
            raise UserError(
                f"{d}: this model samples, and FID/KID need a feature network; train one with "
                f"'aegen features train --data {data.name}' or pass --features DIR"
            )
        if len(data.test) <= options.k:
            raise UserError(
                f"{data.name}: only {len(data.test)} test images; sample scores need more than {options.k}"
            )
        features.check_data(data.name)
    reconstructs = "reconstruction" in wanted and isinstance(model, Reconstructs)
    has_likelihood = "likelihood" in wanted and isinstance(model, ScoresLikelihood)
    if not (reconstructs or sampler is not None or has_likelihood):
        what = load_config(d).get("model", "this")
        offers = (
            "neither reconstructs, samples nor has a likelihood"
            if only is None
            else f"offers none of: {', '.join(sorted(wanted))}"
        )
        raise UserError(f"{d}: nothing to score: a {what} run {offers}")
    say = log or (lambda _msg: None)
    sections: dict[str, Any] = {}
    data_rec = data_record(data)

    if reconstructs:
        say("reconstruction: MSE, PSNR, SSIM")
        rec = reconstruction_metrics(model, data.test, with_ssim=True)
        sections["reconstruction"] = {**rec, "split": "test", "n": len(data.test), "data": data_rec}

    samples = None
    if sampler is not None:
        assert features is not None
        sections["samples"], samples = _sample_scores(
            sampler, data, features, options, progress, say
        )

    if has_likelihood:
        sections["likelihood"] = _likelihood(model, data, options, progress, say)

    sections["eval"] = {
        "aegen_version": __version__,
        "seed": options.seed,
        "data": data_rec,
        "options": asdict(options),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return Evaluation(sections, samples[:100] if samples is not None else None)


def _sample_scores(
    sampler: Sampler,
    data: Dataset,
    features: DomainFeatures,
    options: EvalOptions,
    progress: bool,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], torch.Tensor]:
    n_real = min(options.n, len(data.test))
    say(f"samples: {options.n} drawn, compared with {n_real} test images on domain features")
    fake_images = draw_samples(sampler, options.n, options.seed, options.batch_size, progress)
    if n_real < len(data.test):
        g = torch.Generator().manual_seed(options.seed)
        index = torch.randperm(len(data.test), generator=g)[:n_real].sort().values
        real_images = data.test.x[index]
    else:
        real_images = data.test.x
    real = features.embed(real_images, progress=progress, desc="features (test)")
    fake = features.embed(fake_images, progress=progress, desc="features (samples)")
    fid = frechet_distance(real, fake)
    kid_mean, kid_std = kernel_distance(
        real, fake, options.kid_subsets, options.kid_subset_size, options.seed
    )
    precision, recall = precision_recall(real, fake, k=options.k)
    coverage = class_coverage(features.classify(fake_images), features.num_classes)
    # the same measure on the test images: what a generator that matched the data would get
    reference = class_coverage(features.classify(real_images), features.num_classes)
    coverage["test_images"] = {k: reference[k] for k in ("covered", "entropy_nats")}
    section = {
        "fid": fid,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "class_coverage": coverage,
        "k": options.k,
        "n_samples": options.n,
        "n_real": n_real,
        "seed": options.seed,
        "temperature": options.temperature,
        "kid_subsets": options.kid_subsets,
        "kid_subset_size": min(options.kid_subset_size, n_real, options.n),
        "features": features.record(),
        "data": data_record(data),
    }
    return section, fake_images


@torch.no_grad()
def _likelihood(
    model: torch.nn.Module,
    data: Dataset,
    options: EvalOptions,
    progress: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    n = min(options.nll_images, len(data.test))
    say(f"likelihood: {options.iwae_k} importance samples per image on {n} test images")
    g = torch.Generator().manual_seed(options.seed)
    total, batch = 0.0, max(1, min(100, options.batch_size))
    model.eval()
    for s in tqdm(
        range(0, n, batch), desc="likelihood", disable=not progress, leave=False, file=sys.stderr
    ):
        x = to_float(data.test.x[s : min(n, s + batch)])
        ll = model.log_likelihood(x, k=options.iwae_k, generator=g)  # (B,) log p(x), nats
        total += float(ll.double().sum())
    nll = -total / n  # nats per image
    dims = data.test.x[0].numel()
    return {
        "nll_nats": nll,
        "bits_per_dim": nll / (dims * math.log(2)),
        "n": n,
        "importance_samples": options.iwae_k,
        "seed": options.seed,
        "split": "test",
        "data": data_record(data),
    }
