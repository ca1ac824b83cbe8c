"""Part II's probability primer: sampling a pmf through its inverse CDF, Gaussians and a
conditional, the histogram that cannot give back its picture, and the KL divergences
the VAE needs — each computed exactly and checked by Monte Carlo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..primer import FIGURES, run_primer
from .context import PartResult, Tour

KEY = "primer"
TITLE = "Part II · Probability primer"
INTRO = (
    "We need to refresh our understanding of probability and random variables: the pmf of an image's "
    "gray levels, generating random variables from a pmf by transforming uniform ones, scalar and "
    "vector Gaussians, conditional densities, and the KL divergence the VAE's loss uses."
)


@dataclass(frozen=True)
class PrimerBudget:
    samples: int  # draws behind every histogram and Monte Carlo estimate
    minutes: float


BUDGETS = {
    "tiny": PrimerBudget(samples=20_000, minutes=0.2),
    "quick": PrimerBudget(samples=200_000, minutes=0.1),
    "full": PrimerBudget(samples=1_000_000, minutes=1.0),
}

CAPTIONS = {
    "cameraman.png": "The cameraman photograph and its 256-bin histogram: the pmf of its gray levels.",
    "inverse_cdf.png": "Evenly spaced uniform numbers mapped through the inverse CDF: levels with much "
    "mass get many of them, so space is stretched there and compressed elsewhere.",
    "sampled_pmf.png": "A histogram of draws made that way, over the true pmf.",
    "iid_cameraman.png": "Pixels drawn i.i.d. from the histogram: the right gray levels, but no "
    "picture — the histogram knows nothing of neighbours.",
    "gaussian_1d.png": "g = m + s·randn: a histogram of draws against the Gaussian pdf.",
    "gaussian_2d.png": "2-D Gaussians, diagonal and correlated covariance: draws and density contours.",
    "conditional.png": "p(y | x = 1.5) of the 2-D Gaussian: a slice of the joint, renormalised — "
    "itself a Gaussian.",
    "kl_examples.png": "KL divergence of two pmfs and of two Gaussians, both directions, closed form "
    "and Monte Carlo: KL is not symmetric.",
    "kl_vae.png": "The VAE's KL term for one latent dimension, as μ and σ move away from the prior N(0, 1).",
}


def _kl_pairs(n: dict) -> list[dict]:
    """Every (closed form, Monte Carlo ± stderr) pair the primer computed."""
    pairs = [n["kl"][kind][d] for kind in ("categorical", "gaussian") for d in ("P||Q", "Q||P")]
    return pairs + list(n["kl_vae"]["points"])


def run(t: Tour, d: Path) -> PartResult:
    res = run_primer(d, samples=BUDGETS[t.budget.name].samples, seed=t.seed)
    n, r = res.numbers, PartResult()
    s, iid = n["sampled_pmf"], n["iid"]
    worst = max(abs(p["closed"] - p["mc"]) / max(p["mc_stderr"], 1e-300) for p in _kl_pairs(n))
    r.metrics.update(
        inverse_cdf_tv=s["total_variation"],
        inverse_cdf_tv_exact=s["expected_total_variation"],
        inverse_cdf_n=s["n"],
        corr_photo=iid["neighbour_correlation_original"],
        corr_iid=iid["neighbour_correlation_iid"],
        kl_cat=n["kl"]["categorical"]["P||Q"]["closed"],
        kl_gauss=n["kl"]["gaussian"]["P||Q"]["closed"],
        kl_worst_z=worst,
    )
    for name in FIGURES:
        caption = CAPTIONS.get(name, name)
        if name == "sampled_pmf.png":
            caption += f" {s['n']:,} draws: total variation {s['total_variation']:.4f}."
        if name == "iid_cameraman.png":
            caption += (
                f" Neighbour correlation {iid['neighbour_correlation_original']:.3f} in the photograph, "
                f"{iid['neighbour_correlation_iid']:.3f} here."
            )
        r.figures.append((t.rel(d / name), caption))
    r.numbers.append(
        (
            f"{s['n']:,} inverse-CDF draws: total variation from the pmf",
            f"{s['total_variation']:.4g}",
        )
    )
    r.numbers.append(
        (
            "neighbour correlation: photograph vs i.i.d. pixels",
            f"{iid['neighbour_correlation_original']:.3f} vs {iid['neighbour_correlation_iid']:.3f}",
        )
    )
    for label, kind in (("categorical", "categorical"), ("Gaussian", "gaussian")):
        k = n["kl"][kind]["P||Q"]
        r.numbers.append(
            (
                f"{label} KL(P‖Q), closed form vs Monte Carlo (nats)",
                f"{k['closed']:.4f} vs {k['mc']:.4f} ± {k['mc_stderr']:.4f}",
            )
        )
    return r
