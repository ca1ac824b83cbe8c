"""The claims table: what the lecture says, the numbers the tour measured, ✓ or ✗.

Each claim is a pure function of the numbers the parts record in ``tour.json``
(``parts.<part>.metrics``), so the table is rebuilt from those numbers alone and
a changed number changes its mark. A claim whose numbers are missing (its part
did not run) is shown as not measured, never as holding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CLAIMS", "Claim", "ClaimSpec", "evaluate_claims"]

Numbers = Mapping[str, float]


@dataclass(frozen=True)
class Claim:
    """One row of the table; ``holds`` is None when the numbers were not measured."""

    key: str
    part: str  # the tour part whose section shows the evidence
    slide: str  # the lecture's slide, in its own words
    text: str
    evidence: str
    holds: bool | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClaimSpec:
    """How to judge a claim: the numbers it needs (``part.name``), its test and its evidence line."""

    key: str
    part: str
    slide: str
    text: str
    needs: tuple[str, ...]
    holds: Callable[[Numbers], bool]
    evidence: Callable[[Numbers], str]
    per_prior: bool = False  # also needs the numbers of at least one prior (vqvae.bits_*)


def _db(x: float) -> str:
    return f"{x:.2f} dB"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _acc_se(n: Numbers) -> float:
    """Standard error of the difference of the two 20 %-label test accuracies (independent
    binomials on the same number of test images): what one seed cannot resolve."""
    a, b, m = (
        n["classification.more_ae"],
        n["classification.more_scratch"],
        n["classification.n_test"],
    )
    return ((a * (1 - a) + b * (1 - b)) / m) ** 0.5


def _prior_names(n: Numbers) -> list[str]:
    return sorted(k.split(".")[1].removeprefix("bits_") for k in n if k.startswith("vqvae.bits_"))


def _every_prior(n: Numbers, test: Callable[[str], bool]) -> bool:
    names = _prior_names(n)
    return bool(names) and all(test(p) for p in names)


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "ae_beats_pca",
        "autoencoders",
        "Representation learning by autoencoders: extract underlying (low) dimensionality",
        "An autoencoder's code keeps more of an image than PCA with as many numbers",
        ("autoencoders.pca_psnr", "autoencoders.mlp_psnr", "autoencoders.code_dim"),
        lambda n: n["autoencoders.mlp_psnr"] > n["autoencoders.pca_psnr"],
        lambda n: (
            f"test PSNR: MLP AE {_db(n['autoencoders.mlp_psnr'])} vs PCA "
            f"{_db(n['autoencoders.pca_psnr'])}, both {n['autoencoders.code_dim']:.0f} numbers per image"
        ),
    ),
    ClaimSpec(
        "plane",
        "autoencoders",
        "Even though the data points are 3D, they more or less lie on a 2D plane",
        "A linear 3→2→3 autoencoder finds the plane: its error reaches the PCA optimum",
        ("autoencoders.plane_ratio",),
        lambda n: n["autoencoders.plane_ratio"] <= 1.01,
        lambda n: (
            f"test MSE / PCA optimum = {n['autoencoders.plane_ratio']:.4f} (within 1 % counts)"
        ),
    ),
    ClaimSpec(
        "conv_beats_mlp",
        "autoencoders",
        "Convolutional AE: replace fully connected layers by all convolutional layers",
        "The convolutional AE reconstructs better than the MLP AE with the same code size",
        (
            "autoencoders.conv_psnr",
            "autoencoders.mlp_at_conv_psnr",
            "autoencoders.code_dim",
            "autoencoders.conv_epochs",
        ),
        lambda n: n["autoencoders.conv_psnr"] > n["autoencoders.mlp_at_conv_psnr"],
        lambda n: (
            f"test PSNR: conv {_db(n['autoencoders.conv_psnr'])} vs MLP "
            f"{_db(n['autoencoders.mlp_at_conv_psnr'])}: code {n['autoencoders.code_dim']:.0f}, "
            f"{n['autoencoders.conv_epochs']:.0f} epochs each (the same optimizer steps)"
        ),
    ),
    ClaimSpec(
        "denoising_gaussian",
        "autoencoders",
        "Denoising AE: add noise",
        "On noisy inputs (Gaussian), the denoising AE rebuilds the clean image better than the plain AE",
        ("autoencoders.gaussian_dae_psnr", "autoencoders.gaussian_plain_psnr"),
        lambda n: n["autoencoders.gaussian_dae_psnr"] > n["autoencoders.gaussian_plain_psnr"],
        lambda n: (
            f"noisy test inputs → clean: denoising {_db(n['autoencoders.gaussian_dae_psnr'])} "
            f"vs plain {_db(n['autoencoders.gaussian_plain_psnr'])}"
        ),
    ),
    ClaimSpec(
        "denoising_dropout",
        "autoencoders",
        "Denoising AE: insert a dropout layer",
        "On inputs with dropped pixels, the AE trained with input dropout rebuilds them better than the plain AE",
        ("autoencoders.dropout_dae_psnr", "autoencoders.dropout_plain_psnr"),
        lambda n: n["autoencoders.dropout_dae_psnr"] > n["autoencoders.dropout_plain_psnr"],
        lambda n: (
            f"masked test inputs → clean: dropout-trained {_db(n['autoencoders.dropout_dae_psnr'])} "
            f"vs plain {_db(n['autoencoders.dropout_plain_psnr'])}"
        ),
    ),
    ClaimSpec(
        "phased",
        "autoencoders",
        "Phased training in AE",
        "Phased (layer-by-layer) training, then fine-tuning, ends at least as good as end-to-end training",
        ("autoencoders.phased_psnr", "autoencoders.mlp_psnr"),
        lambda n: n["autoencoders.phased_psnr"] >= n["autoencoders.mlp_psnr"],
        lambda n: (
            f"test PSNR: phased {_db(n['autoencoders.phased_psnr'])} vs end to end "
            f"{_db(n['autoencoders.mlp_psnr'])}, same number of epochs"
        ),
    ),
    ClaimSpec(
        "semisup_few",
        "classification",
        "Semi-supervised learning: how do we make use of unlabeled data?",
        "With few labels, a classifier on the AE's features (learned from unlabeled images) beats the "
        "same network trained from scratch",
        ("classification.few_fraction", "classification.few_ae", "classification.few_scratch"),
        lambda n: n["classification.few_ae"] > n["classification.few_scratch"],
        lambda n: (
            f"{_pct(n['classification.few_fraction'])} of the labels: AE-based "
            f"{_pct(n['classification.few_ae'])} vs scratch {_pct(n['classification.few_scratch'])} test accuracy"
        ),
    ),
    ClaimSpec(
        "semisup_more",
        "classification",
        "Semi-supervised learning: 80 % unlabeled, 20 % labeled",
        "With a fifth of the labels, the AE-based classifier is not below training from scratch "
        "(not lower by more than the standard error of the difference)",
        (
            "classification.more_fraction",
            "classification.more_ae",
            "classification.more_scratch",
            "classification.n_test",
        ),
        lambda n: n["classification.more_ae"] - n["classification.more_scratch"] >= -_acc_se(n),
        lambda n: (
            f"{_pct(n['classification.more_fraction'])} of the labels: AE-based "
            f"{_pct(n['classification.more_ae'])} vs scratch {_pct(n['classification.more_scratch'])}; "
            f"difference {100 * (n['classification.more_ae'] - n['classification.more_scratch']):+.2f} ± "
            f"{100 * _acc_se(n):.2f} points on {n['classification.n_test']:,.0f} test images"
        ),
    ),
    ClaimSpec(
        "inverse_cdf",
        "primer",
        "Sampling random variables from a pmf: transform a uniform r.v.",
        "Uniform numbers through the inverse CDF follow the cameraman pmf",
        ("primer.inverse_cdf_tv", "primer.inverse_cdf_tv_exact", "primer.inverse_cdf_n"),
        lambda n: n["primer.inverse_cdf_tv"] < 1.5 * n["primer.inverse_cdf_tv_exact"],
        lambda n: (
            f"{n['primer.inverse_cdf_n']:,.0f} draws: total variation "
            f"{n['primer.inverse_cdf_tv']:.4f} from the pmf; an exact sampler shows "
            f"{n['primer.inverse_cdf_tv_exact']:.4f} on average (within 1.5× counts)"
        ),
    ),
    ClaimSpec(
        "histogram_loses_picture",
        "primer",
        "Can we generate the cameraman picture from its histogram? No",
        "Pixels drawn i.i.d. from the histogram lose all spatial organisation",
        ("primer.corr_photo", "primer.corr_iid"),
        lambda n: n["primer.corr_photo"] > 0.5 and abs(n["primer.corr_iid"]) < 0.05,
        lambda n: (
            f"neighbour correlation: photograph {n['primer.corr_photo']:.3f}, "
            f"i.i.d. pixels {n['primer.corr_iid']:.3f}"
        ),
    ),
    ClaimSpec(
        "kl",
        "primer",
        "KL-divergence examples: 0.0253 nats, 0.4431 nats",
        "The KL closed forms equal their Monte Carlo estimates",
        ("primer.kl_worst_z", "primer.kl_cat", "primer.kl_gauss"),
        lambda n: n["primer.kl_worst_z"] < 4.0,
        lambda n: (
            f"KL(P‖Q): categorical {n['primer.kl_cat']:.4f}, Gaussian {n['primer.kl_gauss']:.4f} "
            f"nats; the largest closed-form vs Monte Carlo gap is {n['primer.kl_worst_z']:.2f} standard errors"
        ),
    ),
    ClaimSpec(
        "vae_blurry",
        "vae",
        "Issues with VAE: 1. blurry reconstructions",
        "VAE samples are blurrier than the data",
        ("vae.sample_sharpness",),
        lambda n: n["vae.sample_sharpness"] < 1.0,
        lambda n: (
            f"sharpness (variance of the Laplacian) of samples / of test images = "
            f"{n['vae.sample_sharpness']:.2f}"
        ),
    ),
    ClaimSpec(
        "vae_hybrids",
        "vae",
        "Issues with VAE: 4. interpolations between unrelated images create hybrid results",
        "Halfway between two garments of different classes, the VAE decodes a hybrid that no class claims",
        ("vae.interp_conf_ends", "vae.interp_conf_mid"),
        lambda n: n["vae.interp_conf_mid"] < n["vae.interp_conf_ends"],
        lambda n: (
            f"feature network's confidence in its top class: {_pct(n['vae.interp_conf_ends'])} "
            f"at the ends, {_pct(n['vae.interp_conf_mid'])} halfway"
        ),
    ),
    ClaimSpec(
        "vq_sharper",
        "vqvae",
        "Why VQ-VAE works better than a VAE: 2. sharper reconstructions",
        "VQ-VAE reconstructions are sharper than the VAE's",
        ("vqvae.recon_sharpness", "vae.recon_sharpness"),
        lambda n: n["vqvae.recon_sharpness"] > n["vae.recon_sharpness"],
        lambda n: (
            f"sharpness of reconstructions / of the test images: VQ-VAE "
            f"{n['vqvae.recon_sharpness']:.2f} vs VAE {n['vae.recon_sharpness']:.2f}"
        ),
    ),
    ClaimSpec(
        "priors_beat_unigram",
        "vqvae",
        "Stage 3: the prior learns the distribution of valid index patterns",
        "Every prior predicts the codes better than their frequencies alone (the unigram entropy)",
        ("vqvae.unigram_bits",),
        lambda n: _every_prior(n, lambda p: n[f"vqvae.bits_{p}"] < n["vqvae.unigram_bits"]),
        lambda n: (
            "test bits per code: "
            + ", ".join(f"{p} {n[f'vqvae.bits_{p}']:.3f}" for p in _prior_names(n))
            + f"; unigram entropy {n['vqvae.unigram_bits']:.3f}"
        ),
        per_prior=True,
    ),
    ClaimSpec(
        "codebook_used",
        "vqvae",
        "Why VQ-VAE works better: 4. no collapse — encoder and codebook stay aligned",
        "The VQ-VAE uses most of its codebook",
        ("vqvae.codes_used", "vqvae.num_codes"),
        lambda n: n["vqvae.codes_used"] > n["vqvae.num_codes"] / 2,
        lambda n: (
            f"{n['vqvae.codes_used']:.0f} of {n['vqvae.num_codes']:.0f} codes appear in the "
            "test set's grids"
        ),
    ),
    ClaimSpec(
        "vq_beats_vae",
        "vqvae",
        "VQ-VAE image generation: stage 4, sample the prior and decode",
        "VQ-VAE + prior samples are closer to the data than the VAE's samples (FID)",
        ("vae.fid",),
        lambda n: _every_prior(n, lambda p: n.get(f"vqvae.fid_{p}", float("inf")) < n["vae.fid"]),
        lambda n: (
            "FID ↓: "
            + ", ".join(
                f"VQ-VAE + {p} {n[f'vqvae.fid_{p}']:.1f}"
                for p in _prior_names(n)
                if f"vqvae.fid_{p}" in n
            )
            + f"; VAE {n['vae.fid']:.1f}"
        ),
        per_prior=True,
    ),
)


def _flatten(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {f"{part}.{k}": float(v) for part, m in metrics.items() for k, v in m.items()}


def evaluate_claims(
    metrics: Mapping[str, Mapping[str, float]], specs: tuple[ClaimSpec, ...] = CLAIMS
) -> list[Claim]:
    """Every claim judged on ``metrics`` ({part: {name: number}}), in the lecture's order."""
    n = _flatten(metrics)
    out = []
    for s in specs:
        missing = [k for k in s.needs if k not in n]
        if s.per_prior and not _prior_names(n):
            missing.append("vqvae.bits_*")
        if missing:
            parts = sorted({k.split(".")[0] for k in missing})
            out.append(
                Claim(
                    s.key,
                    s.part,
                    s.slide,
                    s.text,
                    f"not measured (run the {', '.join(parts)} part)",
                    None,
                )
            )
        else:
            out.append(Claim(s.key, s.part, s.slide, s.text, s.evidence(n), bool(s.holds(n))))
    return out
