"""The lecture's four-stage VQ-VAE generator, one directory per stage.

1. **Train a VQ-VAE** (``aegen train vqvae``): a run directory.
2. **Build the discrete data set** (:func:`encode_run`, ``aegen encode``): every
   image becomes an H×W grid of code indices, in a codes directory
   (:mod:`aegen.data.codes` holds its format, reading and writing).

3. **Train a prior** over the grids (:func:`train_prior`, ``aegen train-prior``):
   a run directory whose config.json records which codes (and so which VQ-VAE)
   it was trained on.
4. **Generate** (:func:`generate`, ``aegen generate``): sample grids from the
   prior, look the codes up in the VQ-VAE's codebook, decode
   (:mod:`aegen.priors.sampling` with the models, :mod:`aegen.prior_runs` with
   the two run directories); then **score** the samples beside their ceiling, the
   VQ-VAE's own test reconstructions, and a conditional prior's samples against the
   labels they were drawn for (:mod:`aegen.pipelines.vq_scores`, which also chooses
   the sampling temperature on the validation images).

:func:`run_pipeline` (``aegen pipeline vqvae``) runs all four into
``DIR/vqvae``, ``DIR/codes``, ``DIR/prior``, ``DIR/samples``. A stage whose
output exists and matches its inputs is skipped, an interrupted training stage is
resumed, and a stale derived output (codes, samples) is rebuilt — so a killed
pipeline, run again, continues where it stopped. Every check that can refuse
(codes ≥ K, a grid of the wrong shape, a prior trained on another VQ-VAE's codes,
a feature network of other data) happens before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CONFIG, MODEL, load, load_config, read_train_state, weights_hash
from ..config import RunConfig, TrainConfig, apply_overrides, from_dict
from ..data.codes import CodeSet, codes_match, encode_dataset, encode_split, load_codes
from ..data.datasets import Dataset
from ..errors import CheckpointError, ConfigError, UserError
from ..eval.evaluate import MIN_SAMPLES, EvalOptions
from ..eval.features import default_features_dir, find_features
from ..eval.metrics import read_metrics_json, update_metrics_json
from ..files import atomic_write_bytes, atomic_write_json, ensure_dir, npy_bytes
from ..models.abilities import ScoresCodeLikelihood
from ..models.vqvae import GRID as VQ_GRID
from ..prior_runs import load_prior, prior_matches_vqvae, sample_images
from ..priors.base import Guidance, PriorConfig, check_guidance, guidance_record
from ..priors.sampling import sample_codes
from ..quantize import entropy_bits
from ..registry import entry
from ..runs import (
    data_from_config,
    finish_run,
    make_run_config,
    run_config_from_json,
    stage_state,
    train_run,
)
from ..threads import own_cpu_seconds, read_steal, steal_share
from ..viz import save_grid
from .vq_scores import CHOICE_N, choose_temperature, guidance_key, score_pipeline

__all__ = [
    "CodeSet",  # re-exported from aegen.data.codes
    "codes_record",
    "default_guidance",
    "encode_run",
    "encode_split",  # re-exported from aegen.data.codes
    "pipeline_prior_settings",
    "generate",
    "load_codes",  # re-exported from aegen.data.codes
    "load_prior",  # re-exported from aegen.prior_runs
    "prior_matches_vqvae",  # re-exported from aegen.prior_runs
    "prior_run_config",
    "prior_score_line",
    "run_pipeline",
    "sample_codes",  # re-exported from aegen.priors.sampling
    "sample_images",  # re-exported from aegen.prior_runs
    "samples_record",
    "train_prior",
]


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


# =========================================================================== stage 2: codes


def encode_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    data: Dataset | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Stage 2: encode every image of ``data`` (default: the run's own) with the VQ-VAE in
    ``run_dir`` into the codes directory ``out_dir``; returns its meta.json.

    The directory is written under a temporary name and renamed into place, so it
    is either complete or absent.
    """
    run_dir, out = Path(run_dir), Path(out_dir)
    model = load(run_dir, family="vqvae")
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists; choose another --out")
    if data is None:
        data = data_from_config(run_config_from_json(load_config(run_dir)).data)
    source = {
        "vqvae_run": str(run_dir.resolve()),
        "vqvae_weights_sha256": weights_hash(run_dir / MODEL),
    }
    meta = encode_dataset(model, data, out, source)
    _log(
        f"encoded {sum(meta['counts'].values())} images into {out}: {meta['K']} codes, "
        f"{meta['test_codes_used']} used on test (perplexity {meta['test_perplexity']:.1f})",
        quiet,
    )
    return meta


# =========================================================================== stage 3: prior


def prior_run_config(
    prior: str,
    codes: CodeSet | tuple[int, tuple[int, int], int],
    overrides: list[str] | None = None,
    conditional: bool = True,
    **train_args: Any,
) -> RunConfig:
    """The prior's model and train config: the grid from the codes (a CodeSet, or
    (K, (H, W), number of classes)), then its train_defaults, ``train_args``
    (epochs=…, batch_size=…, seed=…) and ``model.x``/``train.x`` overrides."""
    e = entry(prior, "prior")
    if isinstance(codes, CodeSet):
        codes = (codes.num_codes, codes.grid, codes.data.num_classes)
    k, (h, w), n_classes = codes
    fixed = {
        "num_codes": k,
        "height": h,
        "width": w,
        "num_classes": n_classes if conditional else 0,
    }
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if not key.startswith(("model.", "train.")):
            raise ConfigError(f"unknown config key {key}; a prior takes model.NAME or train.NAME")
        if key.removeprefix("model.") in fixed:
            raise ConfigError(f"{key} is set by the codes directory; it cannot be overridden")
    train_values = {
        **getattr(e.cls, "train_defaults", {}),
        **{k: v for k, v in train_args.items() if v is not None},
    }
    run = RunConfig(
        model=prior,
        model_config=from_dict(e.config_cls, fixed, "model"),
        train=from_dict(TrainConfig, train_values, "train"),
        data=None,  # a prior trains on the codes its config.json records
    )
    return apply_overrides(run, overrides or [])


def codes_record(codes: CodeSet) -> dict[str, Any]:
    """What a prior's config.json says about its codes: which ones, from which VQ-VAE."""
    return {
        "codes": {
            "dir": str(codes.path.resolve()),
            "meta_sha256": codes.meta_sha256,
            "vqvae_weights_sha256": codes.meta["vqvae_weights_sha256"],
            "K": codes.num_codes,
            "H": codes.grid[0],
            "W": codes.grid[1],
        }
    }


@dataclass
class TrainedPrior:
    model: torch.nn.Module
    out_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def _prior_finished(out: Path) -> bool:
    try:
        state = read_train_state(out)
    except CheckpointError:
        return False
    return bool(state.get("finished")) and "prior" in read_metrics_json(out)


def train_prior(
    codes_dir: str | os.PathLike,
    prior: str,
    out_dir: str | os.PathLike,
    overrides: list[str] | None = None,
    conditional: bool = True,
    resume: bool = False,
    progress: bool = True,
    codes: CodeSet | None = None,
    **train_args: Any,
) -> TrainedPrior:
    """Stage 3: train prior ``prior`` on the codes in ``codes_dir`` into the run dir ``out_dir``.

    With ``resume=True`` the run in ``out_dir`` continues from its own config
    (and must have been trained on these very codes); ``epochs=N`` then extends it to N
    epochs, the other settings are its own. Writes metrics.json with
    the held-out NLL in bits per code next to the codes' unigram entropies.
    Training is :func:`aegen.runs.train_run`'s, as for every other model.
    """
    out = Path(out_dir)
    codes = codes if codes is not None else load_codes(codes_dir)
    if resume:
        stored = load_config(out)
        if stored.get("family") != "prior":
            raise CheckpointError(f"{out}: not a prior run")
        if stored.get("model") != prior:
            raise UserError(f"{out} holds a {stored.get('model')} prior, not {prior}")
        record = stored.get("codes")
        if not isinstance(record, dict) or record.get("meta_sha256") != codes.meta_sha256:
            raise UserError(f"{out} was trained on other codes than {codes.path}; cannot resume")
        run = None
    else:
        run = prior_run_config(prior, codes, overrides, conditional, **train_args)
    metrics: dict[str, Any] = {}

    def write_metrics(model: torch.nn.Module) -> None:
        metrics.update(_prior_metrics(model, codes))
        sections: dict[str, Any] = {"prior": metrics}
        if "test_nll_bits" in metrics:
            # the same number as a likelihood section, so `aegen report` lists it among the
            # scores; a masked prior has no likelihood to list
            sections["likelihood"] = {
                "bits_per_code": metrics["test_nll_bits"],
                "n": metrics["n_test"],
                "split": "test",
            }
        update_metrics_json(out, sections)

    trained = train_run(
        run,
        out,
        resume=resume,
        progress=progress,
        data=codes.data,
        record=codes_record(codes),
        finish=write_metrics,
        epochs=train_args.get("epochs") if resume else None,
    )
    return TrainedPrior(trained.model, out, metrics)


def _prior_metrics(model: torch.nn.Module, codes: CodeSet) -> dict[str, Any]:
    """The prior's held-out score beside the codes' unigram entropies.

    An autoregressive prior (:class:`ScoresCodeLikelihood`) gives its exact NLL,
    ``test_nll_bits``; a masked one (MaskGIT) only ``test_masked_ce_bits``, the
    cross-entropy of masked codes, which is not a likelihood (``exact_likelihood``
    says which).
    """
    c = model.config
    test = codes.data.test
    labels = test.y if c.num_classes else None
    entropy = entropy_bits(test.x, codes.num_codes)
    out: dict[str, Any] = {
        "test_unigram_entropy_bits": entropy,
        "train_unigram_entropy_bits": entropy_bits(codes.data.train.x, codes.num_codes),
        "n_test": len(test),
        "exact_likelihood": isinstance(model, ScoresCodeLikelihood),
    }
    if out["exact_likelihood"]:
        nll = model.nll_bits(test.x, labels)
        out["test_nll_bits"] = nll
        out["reduction_vs_unigram"] = 1.0 - nll / entropy if entropy > 0 else 0.0
    else:
        out["test_masked_ce_bits"] = model.masked_ce_bits(test.x, labels)
    return out


def prior_score_line(metrics: dict[str, Any]) -> str:
    """The prior's held-out score in words, as the commands print it."""
    entropy = f"unigram entropy of the test codes {metrics['test_unigram_entropy_bits']:.3f}"
    if "test_nll_bits" in metrics:
        return (
            f"test NLL {metrics['test_nll_bits']:.3f} bits/code; {entropy} bits/code "
            f"({100 * metrics['reduction_vs_unigram']:.1f}% lower)"
        )
    return (
        f"masked-code cross-entropy {metrics['test_masked_ce_bits']:.3f} bits "
        f"(not a likelihood: this prior has none); {entropy} bits/code"
    )


# =========================================================================== stage 4: samples


def generate(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    n: int,
    out_png: str | os.PathLike,
    seed: int = 0,
    label: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    use_cache: bool = True,
    guidance: Guidance = 1.0,
) -> dict[str, Any]:
    """Stage 4: sample ``n`` images into a PNG grid, the codes beside it (same name, .npy).

    Both paths are checked before anything is drawn or written.
    """
    out_png, out_npy = Path(out_png), Path(out_png).with_suffix(".npy")
    for p in (out_png, out_npy):
        if p.is_dir():
            raise UserError(
                f"{p} is a directory; the picture and its codes go to {out_png.name} and "
                f"{out_npy.name}: choose another --out"
            )
    g = torch.Generator().manual_seed(seed)
    images, codes = sample_images(
        prior_dir,
        vqvae_dir,
        n,
        generator=g,
        return_codes=True,
        label=label,
        temperature=temperature,
        top_k=top_k,
        use_cache=use_cache,
        guidance=guidance,
    )
    save_grid(out_png, images, nrow=min(10, n))
    atomic_write_bytes(out_npy, npy_bytes(codes.numpy().astype(np.uint16)))
    return samples_record(prior_dir, vqvae_dir, n, seed, label, temperature, top_k, guidance)


def samples_record(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    n: int,
    seed: int,
    label: int | None,
    temperature: float,
    top_k: int | None,
    guidance: Guidance = 1.0,
) -> dict[str, Any]:
    """What a stage-4 picture was drawn from and with: both models' weights and the settings.

    ``guidance`` is recorded when it is not 1 (:func:`guidance_key`).
    """
    record = {
        "prior_weights_sha256": weights_hash(Path(prior_dir) / MODEL),
        "vqvae_weights_sha256": weights_hash(Path(vqvae_dir) / MODEL),
        "n": n,
        "seed": seed,
        "label": label,
        "temperature": temperature,
        "top_k": top_k,
        **guidance_key(guidance),
    }
    return record


# The pipeline's class-conditional prior learns a "no label" class on this fraction of its
# grids, and stage 4 samples with this classifier-free guidance W: measured on full
# Fashion-MNIST (docs/vqvae.md, "Guidance"), a 3-epoch prior at W = 1.5 gave FID 44.6 and
# 91 % on-class against 56.5 and 84 % unguided; the 5-epoch prior at T = 1.1 gave FID 44.2,
# recall 0.527 and 88.5 % on-class at W = 1.5, and 44.7, 0.520 and 92.7 % at W = 2.
PIPELINE_LABEL_DROPOUT = 0.1
PIPELINE_GUIDANCE = 2.0
# ... except where a prior samples better with guidance that rises over the codes drawn
# (A:B, aegen.priors.base). MaskGIT at 1.5:3.5 against W = 2, two priors on two VQ-VAEs'
# codes (AMD EPYC Zen 4), its pipeline's stage 4 with the temperature auto: FID 44.7
# against 52.0 and 41.0 against 48.0, on-class 95.1 against 94.6 % and 94.7 against 93.8,
# precision 0.820 and 0.808 against 0.836 and 0.824, recall +0.033 and -0.020 (docs/vqvae.md,
# "Guidance that rises"). The transformer keeps W = 2: the ramp lowered its FID by 13-15 %
# too, but its precision by 0.02-0.04, to under 0.8 in one of three draws.
PIPELINE_PRIOR_GUIDANCE: dict[str, Guidance] = {"maskgit": (1.5, 3.5)}
# The pipeline's own recipe for a prior, where it has one: model settings (listed before
# the user's --set, which win) and the epochs unless --prior-epochs is given. The
# transformer gets 2 blocks instead of its own 4: on 2 cores of an AVX2 EPYC (Zen 3, fp32),
# on one VQ-VAE's codes, 2 blocks trained 1.9 times as many images a second (650-750
# against 346), and for the same minutes reached a lower validation NLL (4 epochs, 310 s:
# 4.086 bits/code; 4 blocks, 2 epochs, 318 s: 4.117); with 4 blocks for 5 epochs the
# default pipeline took 23-33 minutes there against the 20 of issue 22. 8 epochs, not 7
# or 9: on that CPU unstolen, 7 epochs gave FID 48.6, recall 0.464, on-class 93.8 % in
# 15.9 minutes; 8 gave 47.3, 0.472, 94.9 % in 17.8; 9 gave 42.7, 0.478, 94.7 % but took
# 18.4 and 20.3 minutes in two runs as the host's speed drifted (docs/vqvae.md, "The
# default command, end to end"). AdamW's weight decay 0.1 (the transformer's own is 0): by
# the 8th epoch the prior began to overfit (train 3.94 bits/code, validation 4.04); on the
# same codes and CPU, two prior seeds, it lowered the test NLL from 4.054 and 4.052 to
# 4.012 and 4.007 at no cost per step, and flattened the validation FID around T = 1, so
# the seed-0 pipeline samples at 1.1 and meets every target of issue 22 (recall 0.518;
# seed 1: 0.486 at T = 1.0, up from 0.470; docs/vqvae.md, "Weight decay for the prior").
# The tour and the generators' comparison pin the settings their numbers were measured
# with: weight decay 0, and the full tour's 4 blocks (its small budgets take 2).
# MaskGIT takes the same depth and epochs as the transformer it is compared with (not its
# weight decay, not measured for MaskGIT): on one VQ-VAE's codes (AMD EPYC Zen 4, bf16)
# 2 blocks for 7 epochs gave FID 51.9 and recall 0.413 in 561 s of training and 302 s of
# stage 4, its old 4 blocks for 5 epochs 56.6 and 0.372 in 801 s and 554 s (docs/vqvae.md,
# "At the transformer's depth"); at 9 epochs on one VQ-VAE's codes (AVX2 EPYC, fp32) FID
# 41.8 against the 9-epoch transformer's 42.7.
PIPELINE_PRIOR_RECIPE: dict[str, tuple[tuple[str, ...], int | None]] = {
    "transformer": (("model.n_layers=2", "train.weight_decay=0.1"), 8),
    "maskgit": (("model.n_layers=2",), 8),
}


def default_guidance(prior: str, config: PriorConfig) -> Guidance:
    """What stage 4 guides ``prior`` with when the user says nothing: its entry in
    :data:`PIPELINE_PRIOR_GUIDANCE`, else :data:`PIPELINE_GUIDANCE`, when the prior can be
    guided (it is conditional and its label dropout is above 0), else W = 1."""
    if not (config.num_classes and config.label_dropout > 0):
        return 1.0
    return PIPELINE_PRIOR_GUIDANCE.get(prior, PIPELINE_GUIDANCE)


def pipeline_prior_settings(
    prior: str, overrides: list[str], conditional: bool, epochs: int | None
) -> tuple[list[str], int | None]:
    """The prior's overrides and epochs in the pipeline: its label dropout (conditional
    priors) and :data:`PIPELINE_PRIOR_RECIPE` first, the user's ``overrides`` after them
    (they win), and the recipe's epochs unless ``epochs`` is given (None: the prior's own)."""
    recipe, recipe_epochs = PIPELINE_PRIOR_RECIPE.get(prior, ((), None))
    dropout = [f"model.label_dropout={PIPELINE_LABEL_DROPOUT}"] if conditional else []
    return [*dropout, *recipe, *overrides], recipe_epochs if epochs is None else epochs


# =========================================================================== all four


def _split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    vq, pr = [], []
    for text in overrides:
        stage, _, rest = text.partition(".")
        if stage == "vqvae" and rest:
            vq.append(rest)
        elif stage == "prior" and rest:
            pr.append(rest)
        else:
            raise ConfigError(
                f"pipeline --set takes vqvae.SECTION.KEY=V or prior.SECTION.KEY=V, got {text!r}"
            )
    return vq, pr


def run_pipeline(
    out_dir: str | os.PathLike,
    prior: str = "transformer",
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    limit: int | None = None,
    overrides: list[str] | None = None,
    vqvae_epochs: int | None = None,
    prior_epochs: int | None = None,
    seed: int = 0,
    n: int = 100,
    temperature: float | None = None,
    top_k: int | None = None,
    conditional: bool = True,
    progress: bool = True,
    features_dir: str | os.PathLike | None = None,
    eval_n: int = EvalOptions.n,
    guidance: Guidance | None = None,
) -> dict[str, Any]:
    """All four stages into ``out_dir``/{vqvae,codes,prior,samples}; returns a summary.

    ``overrides`` are ``vqvae.model.K=V``, ``vqvae.train.K=V``, ``prior.model.K=V``,
    ``prior.train.K=V``. Run it again after an interruption: finished stages whose
    inputs are unchanged are skipped, an interrupted training resumes.

    Stage 4 ends with :func:`score_pipeline` on ``eval_n`` images (0: no scores) when a
    feature network is there: ``features_dir``, else the data set's default one
    (``aegen features train``); without one the scores are skipped, with a line that
    says how to train it. The summary holds them under ``scores``.

    ``temperature=None`` ("auto") samples and scores at the temperature
    :func:`choose_temperature` picks on the validation images when there is a feature
    network and ``eval_n`` is not 0, else at 1. ``guidance`` W != 1 (classifier-free
    guidance, a prior trained with ``prior.model.label_dropout`` > 0) applies to all of
    stage 4: the temperature choice, the samples and their scores.

    A conditional prior trains with ``model.label_dropout`` =
    :data:`PIPELINE_LABEL_DROPOUT` unless ``overrides`` set it, and ``guidance=None``
    (the default) samples at :func:`default_guidance`.
    """
    quiet = False  # the one line per stage is always shown; progress bars follow `progress`
    clock = _Clock()
    out = Path(out_dir)
    vq_over, prior_over = _split_overrides(overrides or [])
    prior_over, prior_epochs = pipeline_prior_settings(prior, prior_over, conditional, prior_epochs)
    entry(prior, "prior")  # an unknown prior name fails before any work
    vq_run = make_run_config(
        "vqvae",
        data=data,
        overrides=vq_over,
        epochs=vqvae_epochs,
        seed=seed,
        limit=limit,
        data_dir=data_dir,
    )
    dataset = data_from_config(vq_run.data)
    if eval_n != 0 and eval_n < MIN_SAMPLES:
        raise UserError(f"--eval-n must be 0 (no scores) or at least {MIN_SAMPLES}, got {eval_n}")
    # the feature network is found and checked now, not after three stages have trained
    features = find_features(dataset.name, features_dir) if eval_n else None
    if features is not None:
        features.check_data(dataset.name)
    # the prior's settings are checked now, not after stage 1 has trained
    grid = (vq_run.model_config.num_codes, VQ_GRID, dataset.num_classes)
    planned = prior_run_config(prior, grid, prior_over, conditional, epochs=prior_epochs, seed=seed)
    if guidance is None:
        guidance = default_guidance(prior, planned.model_config)
    check_guidance(planned.model_config, guidance)
    if (out / CONFIG).exists():  # a run's own directory: the stages would go in beside it
        raise UserError(f"{out} holds a training run; give the pipeline a directory of its own")
    ensure_dir(out)
    dirs = {s: out / s for s in ("vqvae", "codes", "prior", "samples")}
    summary: dict[str, Any] = {"dir": str(out)}

    # ---- stage 1: the VQ-VAE
    state = stage_state(
        dirs["vqvae"], vq_run.to_json(), ("model", "model_config", "train", "data"), "VQ-VAE"
    )
    if state == "done" and "reconstruction" in read_metrics_json(dirs["vqvae"]):
        _log(f"stage 1/4: {dirs['vqvae']} is done; skipped", quiet)
    else:
        _log(f"stage 1/4: training the VQ-VAE into {dirs['vqvae']} ({state})", quiet)
        if state == "done":
            trained = train_run(None, dirs["vqvae"], resume=True, progress=progress, data=dataset)
        else:
            trained = train_run(
                None if state == "resume" else vq_run,
                dirs["vqvae"],
                resume=state == "resume",
                progress=progress,
                data=dataset,
            )
        finish_run(trained)
    summary["vqvae"] = read_metrics_json(dirs["vqvae"]).get("reconstruction", {})

    clock.mark("vqvae")
    # ---- stage 2: codes
    if codes_match(dirs["codes"], weights_hash(dirs["vqvae"] / MODEL), dataset):
        _log(f"stage 2/4: {dirs['codes']} matches the VQ-VAE; skipped", quiet)
    else:
        _log(f"stage 2/4: encoding into {dirs['codes']}", quiet)
        encode_run(dirs["vqvae"], dirs["codes"], data=dataset, overwrite=True, quiet=quiet)
    codes = load_codes(dirs["codes"])
    summary["codes"] = {k: v for k, v in codes.meta.items() if k not in ("files", "classes")}

    clock.mark("codes")
    # ---- stage 3: the prior
    prior_run = prior_run_config(
        prior, codes, prior_over, conditional, epochs=prior_epochs, seed=seed
    )
    want = {**prior_run.to_json(), "family": "prior", **codes_record(codes)}
    state = stage_state(dirs["prior"], want, ("model", "model_config", "train", "codes"), "prior")
    if state == "done" and _prior_finished(dirs["prior"]):
        _log(f"stage 3/4: {dirs['prior']} matches the codes; skipped", quiet)
    else:
        _log(f"stage 3/4: training the {prior} prior into {dirs['prior']} ({state})", quiet)
        if state == "fresh":
            train_prior(
                dirs["codes"],
                prior,
                dirs["prior"],
                prior_over,
                conditional,
                progress=progress,
                codes=codes,
                epochs=prior_epochs,
                seed=seed,
            )
        else:
            train_prior(
                dirs["codes"], prior, dirs["prior"], resume=True, progress=progress, codes=codes
            )
    summary["prior"] = read_metrics_json(dirs["prior"]).get("prior", {})

    clock.mark("prior")
    # ---- stage 4: samples, at the temperature chosen on the validation images
    streams: dict = {}  # every image drawn once, for the choice and the scores alike
    if temperature is None:
        temperature = 1.0
        if features is not None:
            choice = choose_temperature(
                dirs["prior"], dirs["vqvae"], dataset, features, n=min(CHOICE_N, eval_n),
                seed=seed, top_k=top_k, log=lambda msg: _log(msg, quiet), guidance=guidance,
                streams=streams,
            )  # fmt: skip
            temperature = choice["temperature"]
            fids = ", ".join(f"{t}: {f:.1f}" for t, f in choice["fid_on_val"].items())
            _log(f"stage 4/4: temperature {temperature} (FID on validation images {fids})", quiet)
            summary["temperature_choice"] = choice
    summary["temperature"], summary["guidance"] = temperature, guidance_record(guidance)
    png, record = dirs["samples"] / "samples.png", dirs["samples"] / "samples.json"
    wanted = samples_record(
        dirs["prior"], dirs["vqvae"], n, seed, None, temperature, top_k, guidance
    )
    done = False
    if record.is_file() and png.is_file() and png.with_suffix(".npy").is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            done = json.loads(record.read_text()) == wanted
    if done:
        _log(f"stage 4/4: {png} matches the prior; skipped", quiet)
    else:
        _log(f"stage 4/4: sampling {n} images into {png}", quiet)
        ensure_dir(dirs["samples"])
        info = generate(
            dirs["prior"], dirs["vqvae"], n, png, seed=seed, temperature=temperature,
            top_k=top_k, guidance=guidance,
        )  # fmt: skip
        atomic_write_json(record, info)
    summary["samples"] = str(png)

    # ---- stage 4, scored
    if features is not None:
        summary["scores"] = score_pipeline(
            dirs["prior"], dirs["vqvae"], dataset, features, eval_n, seed, temperature, top_k,
            progress=progress, log=lambda msg: _log(msg, quiet), guidance=guidance,
            streams=streams,
        )  # fmt: skip
    elif eval_n:
        _log(
            f"stage 4/4: no feature network for {dataset.name} in "
            f"{default_features_dir(dataset.name)}; scoring skipped (train one with "
            f"'aegen features train --data {dataset.name}', or pass --features DIR)",
            quiet,
        )
    clock.mark("samples")
    summary["time"] = clock.record()
    _log(f"pipeline: {clock.line()}", quiet)
    atomic_write_json(out / "summary.json", summary)
    return summary


class _Clock:
    """This invocation's wall seconds per stage, CPU seconds, and the CPU time a hypervisor
    stole meanwhile (:func:`~aegen.threads.read_steal`): a wall time is only comparable
    with another measured at about the same steal."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.cpu0, self.steal0 = own_cpu_seconds(), read_steal()
        self.stages: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self.last, 1)
        self.last = now

    def record(self) -> dict[str, Any]:
        return {
            "wall_s": round(time.perf_counter() - self.t0, 1),
            "cpu_s": round(own_cpu_seconds() - self.cpu0, 1),
            "steal": steal_share(self.steal0, read_steal()),
            "stages_wall_s": dict(self.stages),
        }

    def line(self) -> str:
        r = self.record()
        steal = "not measured" if r["steal"] is None else f"{100 * r['steal']:.0f} % stolen"
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in r["stages_wall_s"].items())
        return f"{r['wall_s'] / 60:.1f} min wall ({stages}), {r['cpu_s']:.0f} CPU-s, {steal}"
