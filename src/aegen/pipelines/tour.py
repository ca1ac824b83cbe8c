"""``aegen tour --out DIR``: the whole lecture, run on a budget, in one HTML report.

The parts follow the lecture's order — autoencoders, using what they learned
(classification, semi-supervised), the probability primer, VAEs, VQ-VAE with
its priors — and each writes its runs and figures under ``DIR/<n>-<part>/``.
When a part finishes, its numbers and figure list go into ``DIR/tour.json``
(atomically); a tour run again into the same directory skips the parts
recorded there, and inside an interrupted part the runs that finished are
reused and an interrupted training resumes from its checkpoint. The report,
``DIR/report.html``, is rebuilt from ``tour.json`` at the end.

Budgets: ``quick`` (about 10 minutes on 2 CPU cores: a subset of the images,
a few epochs), ``full`` (about an hour: all images, more epochs) and ``tiny``
(seconds on ``synthetic`` data: what the tests run).
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..checkpoint import CONFIG, TRAIN_STATE, load
from ..data.datasets import Dataset, load_data
from ..data.loader import to_float
from ..errors import UserError
from ..eval.metrics import METRICS_JSON, psnr, read_metrics_json, update_metrics_json
from ..files import RunLock, atomic_write_json, atomic_write_text, ensure_dir
from ..runs import discard_unfinished, finish_run, make_run_config, stage_state, train_run
from ..viz import save_grid

__all__ = ["BUDGETS", "PARTS", "Budget", "run_tour", "render_tour"]

TOUR_JSON = "tour.json"
REPORT = "report.html"


@dataclass(frozen=True)
class Budget:
    """How much of everything a tour does; ``minutes`` is the plan per part (for the time left)."""

    name: str
    limit: int  # first N training and test images (0: all)
    ae_epochs: int
    phased_epochs: int  # per layer pair, and again for the fine-tuning
    plane_epochs: int
    semisup_ae_epochs: int
    classify_epochs: int
    fractions: tuple[float, ...]
    primer_samples: int
    vae_epochs: int
    vq_epochs: int
    prior_epochs: int
    eval_n: int  # samples scored by FID/KID/precision/recall
    nll_images: int
    iwae_k: int
    features_epochs: int  # only when no feature network is cached for the data
    minutes: tuple[float, ...]  # planned minutes per part, in PARTS order


BUDGETS = {
    "tiny": Budget(
        "tiny", limit=600, ae_epochs=1, phased_epochs=1, plane_epochs=20, semisup_ae_epochs=1,
        classify_epochs=1, fractions=(0.1, 1.0), primer_samples=20_000, vae_epochs=1, vq_epochs=1,
        prior_epochs=1, eval_n=20, nll_images=20, iwae_k=4, features_epochs=1,
        minutes=(0.3, 0.3, 0.2, 0.2, 0.5),
    ),
    "quick": Budget(
        "quick", limit=10_000, ae_epochs=2, phased_epochs=1, plane_epochs=100, semisup_ae_epochs=6,
        classify_epochs=3, fractions=(0.01, 0.1, 1.0), primer_samples=200_000, vae_epochs=4,
        vq_epochs=2, prior_epochs=3, eval_n=1000, nll_images=200, iwae_k=50, features_epochs=3,
        minutes=(1.6, 3.0, 0.3, 1.5, 3.5),
    ),
    "full": Budget(
        "full", limit=0, ae_epochs=8, phased_epochs=3, plane_epochs=200, semisup_ae_epochs=8,
        classify_epochs=8, fractions=(0.01, 0.05, 0.2, 1.0), primer_samples=1_000_000, vae_epochs=20,
        vq_epochs=8, prior_epochs=4, eval_n=10_000, nll_images=1000, iwae_k=100, features_epochs=4,
        minutes=(10.0, 12.0, 1.0, 6.0, 30.0),
    ),
}  # fmt: skip


@dataclass
class PartResult:
    """What a part shows: numbers (label, text), figures (path relative to the tour dir,
    a two-line caption), and the run directories whose scores are tabled side by side."""

    numbers: list[tuple[str, str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PartResult:
        return cls(
            [tuple(x) for x in d.get("numbers", [])],
            [tuple(x) for x in d.get("figures", [])],
            list(d.get("runs", [])),
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
        """The feature network FID/KID use: the cached one for this data set, else one trained here."""
        from ..eval.features import default_features_dir, load_features, train_features

        if self._features is not None:
            return self._features
        cached = default_features_dir(self.data().name)
        if (cached / "features.json").is_file():
            self._features = load_features(cached)
            return self._features
        local = self.out / "features"
        if (local / "features.json").is_file():
            self._features = load_features(local)
            return self._features
        if local.exists():  # a killed training: nothing of value
            discard_unfinished(local)
        self.log(
            f"  training a feature network for FID/KID ({self.budget.features_epochs} epochs) into {local}"
        )
        self._features = train_features(
            self.data(),
            local,
            epochs=self.budget.features_epochs,
            seed=self.seed,
            progress=self.progress,
        )
        return self._features

    # ------------------------------------------------------------------ helpers for the parts

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
        from ..eval.evaluate import EvalOptions

        n = min(self.budget.eval_n, len(self.data().test))
        return EvalOptions(
            n=n,
            seed=self.seed,
            nll_images=min(self.budget.nll_images, len(self.data().test)),
            iwae_k=self.budget.iwae_k,
            kid_subset_size=min(1000, n),
            kid_subsets=20,
            **kw,
        )

    def evaluate(self, run_dir: Path, only: tuple[str, ...], **opts) -> dict[str, Any]:
        """``aegen eval`` on a run, unless its metrics.json already holds these scores."""
        from ..eval.evaluate import evaluate_run

        have = read_metrics_json(run_dir)
        # finish_run's reconstruction section has no SSIM; aegen eval's has
        if all(s in have and (s != "reconstruction" or "ssim" in have[s]) for s in only):
            return have
        features = self.features() if "samples" in only else None
        ev = evaluate_run(run_dir, self.data(), features, self.options(**opts), only=only)
        if ev.samples is not None:
            save_grid(ensure_dir(run_dir / "samples") / "scored_samples.png", ev.samples)
        return update_metrics_json(run_dir, ev.sections)


def _f(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


# ---------------------------------------------------------------------------- the parts

# bf16 autocast (where the CPU has it) and channels_last: about 2.5× for the conv AE (docs/performance.md)
FAST_CONV = ["train.amp=auto", "train.channels_last=true"]


def part_autoencoders(t: Tour, d: Path) -> PartResult:
    from ..commands.demo import latent_scatter
    from ..models.ae import corrupt
    from ..plane import run_plane_demo

    b, r = t.budget, PartResult()
    runs = {
        "ae-mlp": t.train(d, "ae-mlp", "ae-mlp", epochs=b.ae_epochs),
        "ae-conv": t.train(d, "ae-conv", "ae-conv", FAST_CONV, epochs=b.ae_epochs),
        "ae-conv-denoising": t.train(
            d,
            "ae-conv-denoising",
            "ae-conv",
            [*FAST_CONV, "model.noise=gaussian", "model.noise_level=0.3"],
            epochs=b.ae_epochs,
        ),
        "ae-mlp-phased": t.train(
            d,
            "ae-mlp-phased",
            "ae-mlp",
            epochs=b.phased_epochs,
            phased={"finetune_epochs": b.phased_epochs},
        ),
    }
    for key, (run_dir, _) in runs.items():
        rec = t.evaluate(run_dir, ("reconstruction",))["reconstruction"]
        r.numbers.append((f"{key}: test PSNR / SSIM", f"{rec['psnr']:.2f} dB / {rec['ssim']:.4f}"))
        r.runs.append(t.rel(run_dir))
    conv_dir, conv = runs["ae-conv"]
    r.figures.append(
        (
            t.rel(conv_dir / "samples" / "reconstructions.png"),
            "Test images (odd rows) and the conv AE's reconstructions (even rows): the code keeps "
            "the shape and the shading, and loses fine texture.",
        )
    )
    scatter = latent_scatter(d / "latent_scatter.png", conv, t.data())
    r.figures.append(
        (
            t.rel(scatter),
            "The test set's codes, first two principal components, coloured by "
            "class: classes form regions although no label was used in training.",
        )
    )

    # denoising: the same noisy inputs through the plain and the denoising conv AE
    den = runs["ae-conv-denoising"][1]
    x = to_float(t.data().test.x[:1000])
    noisy = corrupt(x, "gaussian", 0.3, torch.Generator().manual_seed(t.seed))
    with torch.no_grad():
        plain_out, den_out = conv.reconstruct(noisy), den.reconstruct(noisy)
    p_plain, p_den = float(psnr(plain_out, x).mean()), float(psnr(den_out, x).mean())
    grid = torch.cat([x[:10], noisy[:10].clamp(0, 1), plain_out[:10], den_out[:10]])
    save_grid(d / "denoising.png", grid)
    r.figures.append(
        (
            t.rel(d / "denoising.png"),
            "Rows: clean test images, with Gaussian noise (σ = 0.3), "
            "the plain conv AE's output, the denoising AE's output (trained on noisy inputs).",
        )
    )
    r.numbers.append(
        ("noisy inputs → clean: PSNR plain AE vs denoising AE", f"{p_plain:.2f} vs {p_den:.2f} dB")
    )

    plane = run_plane_demo(d / "plane", epochs=b.plane_epochs, seed=t.seed)
    r.figures.append(
        (
            t.rel(d / "plane" / "plane.png"),
            "3-D points that lie near a plane, and a linear "
            "3→2→3 autoencoder's reconstructions: it finds the plane, as PCA does.",
        )
    )
    r.numbers.append(("plane: linear AE test MSE / PCA optimum", f"{plane['ratio']:.4f}"))
    return r


def part_classification(t: Tour, d: Path) -> PartResult:
    from ..classify import ClassifyConfig
    from .semisup import COLUMNS, markdown_table, run_semisup

    b, r = t.budget, PartResult()
    columns = [c for c in COLUMNS if c.name in ("probe", "finetune", "scratch")]
    min_steps = {"tiny": 20, "quick": 200}.get(
        b.name, 500
    )  # optimiser steps even for 1 % of the labels
    rows = run_semisup(
        d,
        t.data(),
        b.fractions,
        1,
        models=("ae-conv",),
        ae_epochs=b.semisup_ae_epochs,
        base=ClassifyConfig(
            epochs=b.classify_epochs, min_steps=min_steps, head_steps=min_steps // 2
        ),
        columns=columns,
        progress=t.progress,
        log=t.log,
    )
    for row in sorted(rows, key=lambda r: (r["fraction"], r["column"])):
        r.numbers.append(
            (
                f"{row['fraction']:g} of labels ({row['n_labeled']}), {row['column']}",
                f"{row['test_acc']:.2%}",
            )
        )
    for name, caption in (
        (
            "accuracy_vs_labels.png",
            "Test accuracy against the share of labelled images: a classifier on the "
            "AE's features against one trained from scratch on the same labels.",
        ),
        (
            "confusion_best.png",
            "Confusion matrix of the best classifier: which classes it mixes up (shirts, "
            "T-shirts, pullovers and coats on Fashion-MNIST).",
        ),
    ):
        if (d / name).is_file():
            r.figures.append((t.rel(d / name), caption))
    (d / "table.md").write_text(markdown_table(rows) + "\n") if rows else None
    return r


PRIMER_CAPTIONS = {
    "cameraman.png": "The cameraman photograph and its 256-bin histogram: the pmf of its gray levels.",
    "inverse_cdf.png": "Evenly spaced uniform numbers mapped through the inverse CDF: levels with much mass "
    "get many of them, so space is stretched there and compressed elsewhere.",
    "sampled_pmf.png": "A histogram of draws made that way, over the true pmf: the transform samples the pmf.",
    "iid_cameraman.png": "Pixels drawn i.i.d. from the histogram: the right gray levels, but no image — "
    "the histogram knows nothing of neighbours.",
    "gaussian_1d.png": "g = m + s·randn: a histogram of draws against the Gaussian pdf.",
    "gaussian_2d.png": "2-D Gaussians, diagonal and correlated covariance: draws and density contours.",
    "conditional.png": "p(y | x) of a 2-D Gaussian: a slice of the joint, renormalised — itself a Gaussian.",
    "kl_examples.png": "KL divergence of two pmfs and of two Gaussians, both directions: closed form and "
    "Monte Carlo agree, and KL is not symmetric.",
    "kl_vae.png": "The VAE's KL term for one latent dimension, as μ and σ move away from the prior N(0, 1).",
}


def part_primer(t: Tour, d: Path) -> PartResult:
    from .primer import FIGURES, run_primer

    res = run_primer(d, samples=t.budget.primer_samples, seed=t.seed)
    n, r = res.numbers, PartResult()
    for name in FIGURES:
        r.figures.append((t.rel(d / name), PRIMER_CAPTIONS.get(name, name)))
    s, iid = n["sampled_pmf"], n["iid"]
    r.numbers.append(
        (f"{s['n']:,} inverse-CDF draws: total variation from the pmf", _f(s["total_variation"]))
    )
    r.numbers.append(
        (
            "neighbour correlation: photograph vs i.i.d. pixels",
            f"{iid['neighbour_correlation_original']:.3f} vs {iid['neighbour_correlation_iid']:.3f}",
        )
    )
    for label, block in (
        ("categorical", n["kl"]["categorical"]),
        ("Gaussian", n["kl"]["gaussian"]),
    ):
        k = block["P||Q"]
        r.numbers.append(
            (
                f"{label} KL(P‖Q), closed form vs Monte Carlo (nats)",
                f"{_f(k['closed'])} vs {_f(k['mc'])}",
            )
        )
    return r


def part_vae(t: Tour, d: Path) -> PartResult:
    from ..latent import slerp

    b, r = t.budget, PartResult()
    run_dir, vae = t.train(d, "vae-mlp", "vae-mlp", epochs=b.vae_epochs)
    two_d, _ = t.train(d, "vae-mlp-2d", "vae-mlp", ["model.latent_dim=2"], epochs=b.vae_epochs)
    for rd in (run_dir, two_d):
        # the run's own likelihood (IWAE over the test set, written by training) is kept
        m = t.evaluate(rd, ("reconstruction", "samples"))
        v, s = m["vae"], m["samples"]
        r.numbers.append(
            (
                f"{rd.name}: test NLL (IWAE, k = {v['nll_k']}) and ELBO",
                f"{v['nll']:.2f} nats ({v['nll_bits_per_dim']:.4f} bits/dim); ELBO {v['elbo']:.2f}",
            )
        )
        r.numbers.append(
            (
                f"{rd.name}: FID / precision / recall ({s['n_samples']} samples)",
                f"{s['fid']:.2f} / {s['precision']:.3f} / {s['recall']:.3f}",
            )
        )
        r.numbers.append(
            (
                f"{rd.name}: active units; sharpness of samples / data",
                f"{v['active_units']} of {v['latent_dim']}; {v['sharpness']['samples_vs_data']:.2f}",
            )
        )
        r.runs.append(t.rel(rd))
    # spherical interpolation between pairs of test images' posterior means
    x = to_float(t.data().test.x[:8])
    with torch.no_grad():
        mu = vae.encode(x)
        rows = [vae.decode(slerp(mu[i], mu[i + 1], 10)) for i in range(0, 8, 2)]
    save_grid(d / "interpolation.png", torch.cat(rows), nrow=10)
    figures = [
        (run_dir / "samples" / "samples.png", "Samples: decode z ~ N(0, I). Recognisable garments, and "
         "blurrier than the data: the decoder averages over what z leaves open (sharpness above)."),
        (run_dir / "samples" / "reconstructions.png", "Test images (odd rows) and their reconstructions "
         "through μ(x) (even rows): detail is lost, the shape is kept."),
        (d / "interpolation.png", "Each row: spherical interpolation between two test images' codes, "
         "decoded. The latent space is smooth: every point in between is a garment."),
        (run_dir / "samples" / "kl_per_dim.png", "KL per latent dimension: dimensions near zero are "
         "inactive (posterior collapse there); the others carry the information."),
        (two_d / "samples" / "manifold.png", "A 2-D latent decoded over a grid of the prior's quantiles: "
         "the learned manifold of garments, classes blending into each other."),
        (two_d / "samples" / "latent_scatter.png", "The test set's μ(x) in that 2-D latent, coloured by "
         "class: the prior N(0, I) is filled, classes overlap where they look alike."),
    ]  # fmt: skip
    r.figures += [(t.rel(p), caption) for p, caption in figures if p.is_file()]
    return r


def part_vqvae(t: Tour, d: Path) -> PartResult:
    from .vq_prior import generate, load_codes, run_pipeline, train_prior

    b, r = t.budget, PartResult()
    t.log("  VQ-VAE and the transformer prior: the four stages")
    run_pipeline(
        d,
        prior="transformer",
        data=t.data_name,
        data_dir=t.data_dir,
        limit=t.budget.limit,
        vqvae_epochs=b.vq_epochs,
        prior_epochs=b.prior_epochs,
        seed=t.seed,
        progress=t.progress,
    )
    vq = d / "vqvae"
    rec = t.evaluate(vq, ("reconstruction",))["reconstruction"]
    codes = load_codes(d / "codes")
    r.numbers.append(("VQ-VAE test PSNR / SSIM", f"{rec['psnr']:.2f} dB / {rec['ssim']:.4f}"))
    meta = codes.meta
    r.numbers.append(
        (
            "codes used on the test set; perplexity (of K)",
            f"{meta['test_codes_used']}; {meta['test_perplexity']:.1f} (of {codes.num_codes})",
        )
    )
    priors = {"transformer": d / "prior"}
    for name in ("pixelcnn", "pixelrnn"):
        pdir = d / f"prior-{name}"
        if not (pdir / METRICS_JSON).is_file() or "prior" not in read_metrics_json(pdir):
            resume = (pdir / CONFIG).is_file() and (pdir / TRAIN_STATE).is_file()
            if pdir.exists() and not resume:
                discard_unfinished(pdir)
            t.log(f"  {name} prior: {'resuming' if resume else 'training'} on the same codes")
            if resume:
                train_prior(d / "codes", name, pdir, resume=True, progress=t.progress, codes=codes)
            else:
                train_prior(
                    d / "codes",
                    name,
                    pdir,
                    progress=t.progress,
                    codes=codes,
                    epochs=b.prior_epochs,
                    seed=t.seed,
                )
        png = pdir / "samples" / "samples.png"
        if not png.is_file():
            ensure_dir(png.parent)
            generate(pdir, vq, 100, png, seed=t.seed)
        priors[name] = pdir
    for name, pdir in priors.items():
        m = t.evaluate(pdir, ("samples",), vqvae_dir=str(vq))
        s = m["samples"]
        r.numbers.append(
            (
                f"{name}: test NLL, bits per code",
                f"{m['prior']['test_nll_bits']:.3f} "
                f"(unigram entropy {m['prior']['test_unigram_entropy_bits']:.3f})",
            )
        )
        r.numbers.append(
            (
                f"{name}: FID / precision / recall ({s['n_samples']} samples)",
                f"{s['fid']:.2f} / {s['precision']:.3f} / {s['recall']:.3f}",
            )
        )
        r.runs.append(t.rel(pdir))
    r.figures.append(
        (
            t.rel(vq / "samples" / "reconstructions.png"),
            "Stage 1: test images (odd rows) through the VQ-VAE (even rows): each is rebuilt "
            "from a 7×7 grid of codebook indices.",
        )
    )
    samples = {
        "transformer": d / "samples" / "samples.png",
        **{n: priors[n] / "samples" / "samples.png" for n in ("pixelcnn", "pixelrnn")},
    }
    for name, png in samples.items():
        r.figures.append(
            (
                t.rel(png),
                f"Stages 3–4: code grids drawn from the {name} prior (one class per row) "
                "and decoded by the VQ-VAE into new images.",
            )
        )
    return r


PARTS: dict[str, tuple[str, str, Callable[[Tour, Path], PartResult]]] = {
    "autoencoders": (
        "Autoencoders",
        "An encoder squeezes each image into a short code and a decoder rebuilds the image from it; "
        "MLP and fully convolutional AEs, greedy layer-wise (phased) training, denoising, and the plane "
        "that 3-D data may lie on.",
        part_autoencoders,
    ),
    "classification": (
        "Using what an autoencoder learned",
        "The encoder's features train a classifier. When only a fraction of the images have labels, do "
        "features learned from all of them beat a network trained from scratch on the few? On all of "
        "Fashion-MNIST at 1 % labels they do, by 4 points (docs/semisup.md); a short budget may not show it.",
        part_classification,
    ),
    "primer": (
        "The probability primer",
        "Sampling a pmf by transforming uniform numbers, Gaussians in 1-D and 2-D, conditionals, and "
        "the KL divergence the VAE's loss uses — computed exactly and checked by Monte Carlo.",
        part_primer,
    ),
    "vae": (
        "Variational autoencoders",
        "A probabilistic encoder and decoder trained on reconstruction + KL: a model we can sample from "
        "and whose likelihood we can bound — and whose samples are blurrier than the data.",
        part_vae,
    ),
    "vqvae": (
        "VQ-VAE and autoregressive priors",
        "The four stages: train a VQ-VAE, encode the data to integer grids, fit PixelCNN, PixelRNN and "
        "transformer priors to the grids, then sample grids and decode them into new images.",
        part_vqvae,
    ),
}


# ---------------------------------------------------------------------------- running


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


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
    plan = dict(zip(keys, tour.budget.minutes, strict=True))
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
            tour.log(f"{n} {_clock(elapsed)} elapsed, about {_clock(left)} left")
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
        atomic_write_json(out / TOUR_JSON, state)
        report = out / REPORT
        atomic_write_text(report, render_tour(out, state))
    tour.log(f"tour done in {_clock(time.perf_counter() - t0)}: {report}")
    return report


# ---------------------------------------------------------------------------- the report


def render_tour(out: Path, state: dict[str, Any]) -> str:
    """The tour's page: a section per lecture part, in the lecture's order."""
    from ..eval.report import _data_uri, collect_run, page_head, scores_html

    e = html.escape
    total = sum(p.get("seconds", 0) for p in state["parts"].values())
    meta = (
        f"budget {e(state['budget'])} · data {e(state['data'])} · seed {state['seed']} · "
        f"{_clock(total)} of computing · aegen {e(__version__)}"
    )
    body = page_head("aegen tour: autoencoders and image generation", meta)
    body.append(
        "<nav><ol>"
        + "".join(f'<li><a href="#part-{k}">{e(v[0])}</a></li>' for k, v in PARTS.items())
        + "</ol></nav>"
    )
    for key, (title, intro, _) in PARTS.items():
        body.append(f'<section class="part" id="part-{key}"><h2>{e(title)}</h2><p>{e(intro)}</p>')
        part = state["parts"].get(key)
        if part is None:
            body.append(
                '<p class="warnings">not run yet: run the tour again to add this part</p></section>'
            )
            continue
        res = PartResult.from_json(part)
        body.append(
            f'<p class="meta">{_clock(part.get("seconds", 0))} · files in '
            f"{e(str(out / f'{list(PARTS).index(key) + 1}-{key}'))}</p>"
        )
        if res.numbers:
            body.append('<table class="numbers"><tbody>')
            body += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in res.numbers]
            body.append("</tbody></table>")
        body.append('<div class="figures">')
        for rel, caption in res.figures:
            p = out / rel
            if p.is_file():
                body.append(
                    f'<figure><img src="{_data_uri(p.read_bytes())}" alt="{e(caption)}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
        body.append("</div>")
        runs = [out / rd for rd in res.runs if (out / rd / CONFIG).is_file()]
        if runs:
            summaries = [collect_run(rd, rd.name) for rd in runs]
            body.append("<h3>Scores of this part's runs</h3>")
            body += scores_html(summaries, table_id=f"scores-{key}")
        body.append("</section>")
    body.append("</body></html>")
    return "\n".join(body) + "\n"
