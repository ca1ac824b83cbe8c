"""Part II's VQ-VAE and its image generation, stage by stage: train the VQ-VAE, encode the
data to 7×7 grids of code indices, fit PixelCNN, PixelRNN and transformer priors to
the grids, then sample grids and decode them — scored beside the VAE of the previous part
and beside the ceiling a perfect prior would reach (the VQ-VAE's own reconstructions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...checkpoint import load
from ...data.loader import to_float
from ...eval.evaluate import ReconstructionSampler
from ...eval.metrics import read_metrics_json
from ...eval.vae import SHARPNESS_IMAGES, laplacian_variance
from ...files import ensure_dir
from ...runs import stage_state
from ..vq_prior import (
    codes_record,
    generate,
    load_codes,
    prior_run_config,
    run_pipeline,
    train_prior,
)
from .context import PartResult, Tour

KEY = "vqvae"
TITLE = "Part II · VQ-VAE and image generation"
INTRO = (
    "VQ (vector quantized)-VAE: the encoder's 7×7 grid of D-vectors is snapped to the nearest of K "
    "codebook vectors. Stage 1 trains the VQ-VAE; stage 2 encodes every image into a grid of integers; "
    "stage 3 trains a prior (PixelCNN, PixelRNN, transformer) to predict code indices one by one; "
    "stage 4 samples a grid from the prior and decodes it into a new image."
)
PRIORS = ("transformer", "pixelcnn", "pixelrnn")


@dataclass(frozen=True)
class VQBudget:
    vqvae_epochs: int
    prior_epochs: int
    minutes: float
    priors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # each prior's overrides


# the quick budget's priors are about half the default size: one epoch of each at the
# defaults would take much of the quick budget (measured: docs/tour.md)
SMALL_PRIORS = {
    "transformer": ("model.n_layers=2", "train.lr=2e-3", "train.warmup_steps=100"),
    "pixelcnn": (
        "model.d_model=32",
        "model.head_dim=128",
        "train.lr=2e-3",
        "train.warmup_steps=100",
    ),
    "pixelrnn": (
        "model.d_model=128",
        "model.embed_dim=64",
        "train.lr=4e-3",
        "train.warmup_steps=100",
        "train.grad_clip=1.0",
    ),
}
# the full budget keeps the default sizes, with the learning rates the small ones were given
FULL_PRIORS = {
    "transformer": ("train.lr=2e-3", "train.warmup_steps=100"),
    "pixelcnn": ("train.lr=2e-3", "train.warmup_steps=100"),
    "pixelrnn": ("train.lr=4e-3", "train.warmup_steps=100", "train.grad_clip=1.0"),
}
BUDGETS = {
    "tiny": VQBudget(vqvae_epochs=1, prior_epochs=1, minutes=0.5, priors=SMALL_PRIORS),
    "quick": VQBudget(vqvae_epochs=2, prior_epochs=1, minutes=3.7, priors=SMALL_PRIORS),
    "full": VQBudget(vqvae_epochs=6, prior_epochs=3, minutes=22.0, priors=FULL_PRIORS),
}


def _train_prior(t: Tour, d: Path, name: str, codes, b: VQBudget) -> Path:
    """A second or third prior on the pipeline's codes: trained, resumed, or reused when its
    directory holds one with these settings (other settings are refused, as in the pipeline)."""
    pdir = d / f"prior-{name}"
    overrides = list(b.priors.get(name, ()))
    run = prior_run_config(name, codes, overrides, epochs=b.prior_epochs, seed=t.seed)
    want = {**run.to_json(), "family": "prior", **codes_record(codes)}
    state = stage_state(pdir, want, ("model", "model_config", "train", "codes"), f"{name} prior")
    if state == "done" and "prior" in read_metrics_json(pdir):
        return pdir
    t.log(f"  {name} prior: {'training' if state == 'fresh' else 'resuming'} on the same codes")
    if state == "fresh":
        train_prior(
            d / "codes",
            name,
            pdir,
            overrides,
            progress=t.progress,
            codes=codes,
            epochs=b.prior_epochs,
            seed=t.seed,
        )
    else:
        train_prior(d / "codes", name, pdir, resume=True, progress=t.progress, codes=codes)
    return pdir


def run(t: Tour, d: Path) -> PartResult:
    b, r = BUDGETS[t.budget.name], PartResult()
    data = t.data()
    t.log("  VQ-VAE and the transformer prior: the four stages")
    run_pipeline(
        d,
        prior="transformer",
        # the 4 blocks its claims were measured with, not the pipeline's 2, and without
        # the pipeline's weight decay
        overrides=[
            "prior.model.n_layers=4",
            "prior.train.weight_decay=0",
            *(f"prior.{o}" for o in b.priors.get("transformer", ())),
        ],
        data=t.data_name,
        data_dir=t.data_dir,
        limit=t.budget.limit,
        vqvae_epochs=b.vqvae_epochs,
        prior_epochs=b.prior_epochs,
        seed=t.seed,
        progress=t.progress,
        eval_n=0,  # the part scores with the tour's own feature network and sample count
        guidance=1.0,  # its picture drawn as its scores are: unguided
    )
    vq_dir = d / "vqvae"
    vq = load(vq_dir).eval()
    rec = t.evaluate(vq_dir, ("reconstruction",))["reconstruction"]
    codes = load_codes(d / "codes")
    meta = codes.meta
    m = r.metrics
    m.update(codes_used=meta["test_codes_used"], num_codes=codes.num_codes, psnr=rec["psnr"])
    r.numbers.append(("VQ-VAE test PSNR / SSIM", f"{rec['psnr']:.2f} dB / {rec['ssim']:.4f}"))
    r.numbers.append(
        (
            "codes used on the test set; perplexity",
            f"{meta['test_codes_used']} of {codes.num_codes}; {meta['test_perplexity']:.1f}",
        )
    )
    s = min(len(data.test), SHARPNESS_IMAGES)
    x = to_float(data.test.x[:s])
    with torch.no_grad():
        sharp = laplacian_variance(vq.reconstruct(x)).mean() / laplacian_variance(x).mean()
    m["recon_sharpness"] = float(sharp)
    r.numbers.append(
        ("sharpness of reconstructions / of test images", f"{m['recon_sharpness']:.2f}")
    )

    # the ceiling: what a prior that drew the test set's own codes would score
    ceiling = t.evaluate(
        vq_dir, ("samples",), sampler=ReconstructionSampler(vq, data.test), section="ceiling"
    )["ceiling"]
    m["fid_ceiling"] = ceiling["fid"]
    r.numbers.append(
        (
            "ceiling: the VQ-VAE's own test reconstructions, FID / precision / recall",
            f"{ceiling['fid']:.2f} / {ceiling['precision']:.3f} / {ceiling['recall']:.3f}",
        )
    )
    priors = {"transformer": d / "prior"}
    priors.update({n: _train_prior(t, d, n, codes, b) for n in PRIORS[1:]})
    for name, pdir in priors.items():
        png = pdir / "samples" / "samples.png"
        if name != "transformer" and not png.is_file():
            ensure_dir(png.parent)
            generate(pdir, vq_dir, 100, png, seed=t.seed)
        sc = t.evaluate(pdir, ("samples",), vqvae_dir=str(vq_dir))
        p, sm = sc["prior"], sc["samples"]
        m[f"bits_{name}"] = p["test_nll_bits"]
        m["unigram_bits"] = p["test_unigram_entropy_bits"]
        m[f"fid_{name}"] = sm["fid"]
        r.numbers.append(
            (
                f"{name}: test NLL, bits per code (unigram entropy {p['test_unigram_entropy_bits']:.3f})",
                f"{p['test_nll_bits']:.3f}",
            )
        )
        r.numbers.append(
            (
                f"{name}: FID / precision / recall ({sm['n_samples']} samples)",
                f"{sm['fid']:.2f} / {sm['precision']:.3f} / {sm['recall']:.3f}",
            )
        )
        r.runs.append(t.rel(pdir))
    r.figures.append(
        (
            t.rel(vq_dir / "samples" / "reconstructions.png"),
            "Stage 1: test images (odd rows) through the VQ-VAE (even rows), each rebuilt from a 7×7 "
            f"grid of codebook indices: {m['psnr']:.2f} dB, sharpness {m['recon_sharpness']:.2f} × the data's.",
        )
    )
    samples = {"transformer": d / "samples" / "samples.png"}
    samples.update({n: priors[n] / "samples" / "samples.png" for n in PRIORS[1:]})
    for name, png in samples.items():
        r.figures.append(
            (
                t.rel(png),
                f"Stages 3–4: code grids drawn from the {name} prior (each for a random class) and decoded: "
                f"FID {m[f'fid_{name}']:.1f} (a perfect prior: {m['fid_ceiling']:.1f}).",
            )
        )
    return r
