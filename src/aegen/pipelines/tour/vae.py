"""Part II's variational autoencoder: samples, reconstructions, the likelihood bound,
active units, a 2-D latent's manifold, and two of the lecture's "issues with VAE" measured:
blur, and hybrids halfway between garments of different classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data.loader import to_float
from ...latent import slerp
from ...viz import save_grid
from .context import PartResult, Tour

KEY = "vae"
TITLE = "Part II · Variational autoencoder"
INTRO = (
    "A probabilistic encoder q(z|x) and decoder p(x|z), trained on image reconstruction + the KL "
    "divergence between q(z|x) and N(0, I): a model we can sample from and whose likelihood we can "
    "bound. The lecture lists its issues; two of them are measured here."
)


@dataclass(frozen=True)
class VAEBudget:
    epochs: int  # the 16-D VAE, whose samples are scored against the VQ-VAE's
    epochs_2d: int  # the 2-D one, drawn as a map
    minutes: float


BUDGETS = {
    "tiny": VAEBudget(epochs=1, epochs_2d=1, minutes=0.2),
    "quick": VAEBudget(epochs=10, epochs_2d=5, minutes=1.4),
    "full": VAEBudget(epochs=30, epochs_2d=15, minutes=5.0),
}
VAE = ["train.lr=2e-3"]  # picked on the validation ELBO (docs/tour.md)
PAIRS = 200  # test-image pairs of different classes behind the hybrid measurement
STEPS = 9  # points on each path, ends included (the middle one is halfway)


@torch.no_grad()
def interpolation_confidence(vae, features, x: torch.Tensor, y: torch.Tensor, pairs: int):
    """Mean top-class probability (feature network) along spherical paths between pairs of
    test images of different classes: (STEPS,) tensor, and the decoded paths (pairs, STEPS, ...)."""
    a, b = [], []
    for i in range(x.shape[0] - 1):
        if y[i] != y[i + 1] and len(a) < pairs:
            a.append(i)
            b.append(i + 1)
    mu = vae.encode(x)
    paths = torch.stack([vae.decode(slerp(mu[i], mu[j], STEPS)) for i, j in zip(a, b, strict=True)])
    logits = features.net(paths.flatten(0, 1))  # (pairs·STEPS, classes)
    conf = logits.softmax(1).amax(1).view(len(a), STEPS)
    return conf.mean(0), paths


def run(t: Tour, d: Path) -> PartResult:
    b, r = BUDGETS[t.budget.name], PartResult()
    data = t.data()
    run_dir, vae = t.train(d, "vae-mlp", "vae-mlp", VAE, epochs=b.epochs)
    two_d, _ = t.train(d, "vae-mlp-2d", "vae-mlp", [*VAE, "model.latent_dim=2"], epochs=b.epochs_2d)
    for rd in (run_dir, two_d):
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
    main = t.evaluate(run_dir, ("reconstruction", "samples"))
    sharp = main["vae"]["sharpness"]
    r.metrics.update(
        fid=main["samples"]["fid"],
        sample_sharpness=sharp["samples_vs_data"],
        recon_sharpness=sharp["reconstructions_vs_data"],
    )
    n_test = min(len(data.test), 4 * PAIRS)
    conf, paths = interpolation_confidence(
        vae, t.features(), to_float(data.test.x[:n_test]), data.test.y[:n_test], PAIRS
    )
    mid = STEPS // 2
    r.metrics.update(
        interp_conf_ends=float((conf[0] + conf[-1]) / 2), interp_conf_mid=float(conf[mid])
    )
    save_grid(d / "interpolation.png", paths[:6].flatten(0, 1), nrow=STEPS)
    m = r.metrics
    r.numbers.append(
        (
            "top-class confidence along paths between classes: ends vs halfway",
            f"{m['interp_conf_ends']:.1%} vs {m['interp_conf_mid']:.1%}",
        )
    )
    figures = [
        (run_dir / "samples" / "samples.png", "Samples: decode z ~ N(0, I). Garments, blurrier than the "
         f"data: their sharpness is {m['sample_sharpness']:.2f} × the test images'."),
        (run_dir / "samples" / "reconstructions.png", "Test images (odd rows) and their reconstructions "
         f"through μ(x) (even rows): the shape is kept, detail is lost (sharpness {m['recon_sharpness']:.2f} × the data's)."),
        (d / "interpolation.png", "Each row: a spherical path between the codes of two test images of "
         f"different classes, decoded. Halfway the feature network is {m['interp_conf_mid']:.0%} sure of "
         f"its class, at the ends {m['interp_conf_ends']:.0%}: the middle is a hybrid."),
        (run_dir / "samples" / "kl_per_dim.png", "KL per latent dimension: dimensions near zero are "
         "inactive (the posterior collapsed there); the others carry the information."),
        (two_d / "samples" / "manifold.png", "A 2-D latent decoded over a grid of the prior's quantiles: "
         "the learned manifold of garments, classes blending into each other."),
        (two_d / "samples" / "latent_scatter.png", "The test set's μ(x) in that 2-D latent, coloured by "
         "class: the prior N(0, I) is filled, classes overlap where they look alike."),
    ]  # fmt: skip
    r.figures += [(t.rel(p), caption) for p, caption in figures if p.is_file()]
    return r
