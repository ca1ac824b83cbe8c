"""The lecture's probability primer, computed and drawn: what ``aegen primer --out DIR`` writes.

Six sections, each a figure (or two) and its numbers, all made with :mod:`aegen.prob`:

1. the cameraman image (scikit-image's bundled copy) and its 256-bin pmf;
2. evenly spaced uniform points through the inverse CDF (space stretched and
   compressed), and a histogram of many samples over the true pmf;
3. "can we generate the cameraman from its histogram?": i.i.d. pixels from the pmf;
4. a 1-D Gaussian drawn as m + s · randn against its pdf;
5. the 2-D Gaussian μ = (1, 2), Σ = diag(3, 2), its slice at x = 1.5 and the
   conditional p(y | x = 1.5), beside a correlated Σ where the conditional moves;
6. the lecture's KL examples in closed form and by Monte Carlo, both directions,
   and the VAE's KL term as a function of μ and σ.

The numbers go to ``primer.json`` and, with the figures, into ``primer.md``
(written last, so its presence means the primer is complete). Every random draw
comes from a generator seeded per section, so a run is reproducible and the
tests can recompute any number from the seed recorded beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write_json, atomic_write_text, ensure_dir
from ..prob import (
    bits,
    conditional_gaussian,
    empirical_pmf,
    gaussian_pdf,
    kl_categorical,
    kl_categorical_mc,
    kl_gaussian,
    kl_gaussian_mc,
    kl_vae,
    kl_vae_mc,
    mvn_pdf,
    pmf_inverse_cdf,
    sample_gaussian,
    sample_mvn,
    sample_pmf,
)
from ..viz import figure, save_figure

__all__ = [
    "FIGURES",
    "MIN_SAMPLES",
    "PrimerResult",
    "load_cameraman",
    "primer_markdown",
    "run_primer",
    "section_seed",
    "summary_lines",
]

# The lecture's examples.
LEVELS = 256  # gray levels of an 8-bit image
GAUSS_1D = (1.0, 2.0)  # (m, s): the Q of the lecture's Gaussian KL example, N(1, 2²)
MEAN_2D = (1.0, 2.0)
COV_2D = ((3.0, 0.0), (0.0, 2.0))
COV_CORRELATED = ((3.0, 1.2), (1.2, 2.0))  # ours: the same marginals with correlation 0.49
X_SLICE = 1.5
WINDOW = 0.05  # rejection sampling keeps draws with |x − 1.5| < WINDOW
P_CAT, Q_CAT = (0.5, 0.3, 0.2), (0.4, 0.4, 0.2)
GAUSS_P, GAUSS_Q = (0.0, 1.0), (1.0, 2.0)  # (μ, σ)
VAE_POINTS = ((0.0, 1.0), (1.0, 1.0), (0.0, 0.5), (0.0, 2.0), (2.0, 0.5))  # (μ, σ)
U_GRID = 32  # evenly spaced points drawn through the inverse CDF
MIN_SAMPLES = 1000  # fewer leaves rejection sampling with almost nothing to show

FIGURES = (
    "cameraman.png",
    "inverse_cdf.png",
    "sampled_pmf.png",
    "iid_cameraman.png",
    "gaussian_1d.png",
    "gaussian_2d.png",
    "conditional.png",
    "kl_examples.png",
    "kl_vae.png",
)
SECTIONS = ("sampled_pmf", "iid", "gaussian_1d", "gaussian_2d", "kl", "kl_vae")


def section_seed(seed: int, section: str) -> int:
    """The seed of one section's generator: a change in one section leaves the others' draws alone."""
    return seed * 1000 + SECTIONS.index(section)


def _gen(seed: int, section: str) -> torch.Generator:
    return torch.Generator().manual_seed(section_seed(seed, section))


def load_cameraman() -> torch.Tensor:
    """The cameraman photograph bundled with scikit-image (no download): (512, 512) uint8."""
    from skimage.data import camera

    return torch.from_numpy(np.ascontiguousarray(camera()))


@dataclass
class PrimerResult:
    """Where the primer went and what it measured (the same numbers as ``primer.json``)."""

    out: Path
    numbers: dict[str, Any]
    files: list[Path]


def run_primer(out_dir: str | Path, samples: int = 1_000_000, seed: int = 0) -> PrimerResult:
    """Compute every example, write the figures, ``primer.json`` and ``primer.md`` into ``out_dir``.

    ``samples`` is the number of draws behind each histogram and Monte Carlo
    estimate (the lecture's 10⁶ by default); files of the same names in
    ``out_dir`` are replaced.
    """
    if samples < MIN_SAMPLES:
        raise ValueError(f"samples must be at least {MIN_SAMPLES}, got {samples}")
    out = ensure_dir(out_dir)
    img = load_cameraman()
    pmf = empirical_pmf(img, LEVELS)  # (256,) float64
    numbers: dict[str, Any] = {"samples": samples, "seed": seed}
    numbers["cameraman"] = _cameraman(out, img, pmf)
    numbers["inverse_cdf"] = _inverse_cdf(out, pmf)
    numbers["sampled_pmf"] = _sampled_pmf(out, pmf, samples, seed)
    numbers["iid"] = _iid_cameraman(out, img, pmf, seed)
    numbers["gaussian_1d"] = _gaussian_1d(out, samples, seed)
    numbers["gaussian_2d"] = _gaussian_2d(out, samples, seed)
    numbers["kl"] = _kl_examples(out, samples, seed)
    numbers["kl_vae"] = _kl_vae(out, samples, seed)
    atomic_write_json(out / "primer.json", numbers)
    atomic_write_text(out / "primer.md", primer_markdown(numbers))
    files = [out / f for f in FIGURES] + [out / "primer.json", out / "primer.md"]
    return PrimerResult(out, numbers, files)


# --------------------------------------------------------------- 1. the cameraman


def _cameraman(out: Path, img: torch.Tensor, pmf: torch.Tensor) -> dict[str, Any]:
    fig = figure(11, 4.5)
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"cameraman, {img.shape[0]}×{img.shape[1]} pixels")
    ax.axis("off")
    ax = fig.add_subplot(1, 2, 2)
    _pmf_bars(ax, pmf)
    ax.set_title("its pmf: the histogram divided by the pixel count")
    save_figure(fig, out / "cameraman.png")
    mode = int(pmf.argmax())
    return {
        "height": img.shape[0],
        "width": img.shape[1],
        "levels_used": int((pmf > 0).sum()),
        "mode": mode,
        "mode_mass": float(pmf[mode]),
        "mean_level": float((pmf * torch.arange(LEVELS)).sum()),
    }


def _pmf_bars(ax, pmf: torch.Tensor, label: str | None = None, **kw) -> None:
    ax.bar(np.arange(LEVELS), pmf.numpy(), width=1.0, label=label, **kw)
    ax.set_xlim(-1, LEVELS)
    ax.set_xlabel("pixel value")
    ax.set_ylabel("probability mass")


# ------------------------------------------------------- 2. the inverse-CDF transform


def _inverse_cdf(out: Path, pmf: torch.Tensor) -> dict[str, Any]:
    u = (torch.arange(U_GRID, dtype=torch.float64) + 0.5) / U_GRID  # evenly spaced in (0, 1)
    k = pmf_inverse_cdf(pmf, u)  # (U_GRID,) pixel values
    cdf = torch.cumsum(pmf, 0).numpy()
    levels = np.arange(LEVELS)

    fig = figure(9, 7)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(grid[0])
    ax.step(levels, cdf, where="post", color="black", lw=1.2, label="CDF F(k)")
    for uj, kj in zip(u.tolist(), k.tolist(), strict=True):
        ax.plot([0, kj, kj], [uj, uj, 0], color="tab:blue", lw=0.6, alpha=0.7)
    ax.plot(np.zeros(U_GRID), u.numpy(), "o", color="tab:blue", ms=3, label="evenly spaced u")
    ax.set_xlim(0, LEVELS)
    ax.set_ylim(0, 1)
    ax.set_ylabel("u ~ Uniform[0, 1)")
    ax.set_title(
        "inverse CDF: u ↦ smallest k with F(k) > u\n"
        "points crowd where the pmf is high (space compressed) and spread where it is low (stretched)"
    )
    ax.legend(loc="lower right")
    ax = fig.add_subplot(grid[1], sharex=ax)
    _pmf_bars(ax, pmf, color="0.7")
    ax.plot(k.numpy(), np.zeros(U_GRID), "|", color="tab:blue", ms=18, mew=1.2)
    ax.set_title("where the points land, over the cameraman pmf")
    save_figure(fig, out / "inverse_cdf.png")
    gaps = k.diff().double()
    return {
        "u_points": U_GRID,
        "landed_on": k.tolist(),
        "smallest_gap": float(gaps.min()),
        "largest_gap": float(gaps.max()),
    }


def _sampled_pmf(out: Path, pmf: torch.Tensor, n: int, seed: int) -> dict[str, Any]:
    g = _gen(seed, "sampled_pmf")
    # sample_pmf(pmf, n, g) written open, to show the uniform draws it transforms
    u = torch.rand(n, generator=g, dtype=torch.float64)
    k = pmf_inverse_cdf(pmf, u)
    est = empirical_pmf(k, LEVELS)
    tv = 0.5 * float((est - pmf).abs().sum())

    fig = figure(12, 4.5)
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(u.numpy(), bins=50, range=(0, 1), density=True, color="tab:blue", alpha=0.8)
    ax.axhline(1.0, color="black", lw=1)
    ax.set_title(f"{n:,} uniform draws u")
    ax.set_xlabel("u")
    ax.set_ylabel("density")
    ax = fig.add_subplot(1, 2, 2)
    _pmf_bars(ax, est, label="histogram of the samples", color="tab:blue", alpha=0.7)
    ax.step(np.arange(LEVELS), pmf.numpy(), where="mid", color="black", lw=0.8, label="true pmf")
    ax.set_title(f"their images k = F⁻¹(u): total variation {tv:.4f} from the pmf")
    ax.legend()
    save_figure(fig, out / "sampled_pmf.png")
    return {
        "seed": section_seed(seed, "sampled_pmf"),
        "n": n,
        "total_variation": tv,
        # what any exact sampler shows with n draws: E|p̂ − p| = sqrt(2p(1 − p)/(πn)) per level
        # (normal approximation), halved and summed
        "expected_total_variation": float((pmf * (1 - pmf) / (2 * math.pi * n)).sqrt().sum()),
        "max_abs_error": float((est - pmf).abs().max()),
    }


# --------------------------------------------------- 3. cameraman from its histogram


def _neighbour_correlation(img: torch.Tensor) -> float:
    """Correlation between horizontally adjacent pixels: how much a pixel tells about its neighbour."""
    a = img[:, :-1].reshape(-1).double()
    b = img[:, 1:].reshape(-1).double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def _iid_cameraman(out: Path, img: torch.Tensor, pmf: torch.Tensor, seed: int) -> dict[str, Any]:
    h, w = img.shape
    iid = sample_pmf(pmf, h * w, _gen(seed, "iid")).reshape(h, w).to(torch.uint8)
    iid_pmf = empirical_pmf(iid, LEVELS)

    fig = figure(10, 9)
    for col, (picture, hist, title) in enumerate(
        [(img, pmf, "the original"), (iid, iid_pmf, "i.i.d. pixels drawn from its pmf")]
    ):
        ax = fig.add_subplot(2, 2, col + 1)
        ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{title}\nneighbour correlation {_neighbour_correlation(picture):.3f}")
        ax.axis("off")
        ax = fig.add_subplot(2, 2, col + 3)
        _pmf_bars(ax, hist, color="0.3")
        ax.set_title("its histogram")
    fig.suptitle(
        "Can we generate the cameraman from its histogram? No: the pmf keeps no spatial organisation"
    )
    save_figure(fig, out / "iid_cameraman.png")
    return {
        "seed": section_seed(seed, "iid"),
        "total_variation": 0.5 * float((iid_pmf - pmf).abs().sum()),
        "neighbour_correlation_original": _neighbour_correlation(img),
        "neighbour_correlation_iid": _neighbour_correlation(iid),
    }


# ------------------------------------------------------------------ 4. 1-D Gaussian


def _gaussian_1d(out: Path, n: int, seed: int) -> dict[str, Any]:
    m, s = GAUSS_1D
    g = sample_gaussian(m, s, n, _gen(seed, "gaussian_1d"))  # m + s · randn(n)
    xs = torch.linspace(m - 5 * s, m + 5 * s, 400, dtype=torch.float64)
    within = float(((g - m).abs() < s).double().mean())

    fig = figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(
        g.numpy(),
        bins=120,
        range=(m - 5 * s, m + 5 * s),
        density=True,
        alpha=0.6,
        label=f"{n:,} draws of m + s·randn",
    )
    ax.plot(xs.numpy(), gaussian_pdf(xs, m, s).numpy(), color="black", lw=1.5, label="pdf")
    ax.set_title(
        f"N(m = {m:g}, s² = {s:g}²): sample mean {float(g.mean()):.4f}, std {float(g.std()):.4f}"
    )
    ax.set_xlabel("g")
    ax.set_ylabel("density")
    ax.legend()
    save_figure(fig, out / "gaussian_1d.png")
    return {
        "seed": section_seed(seed, "gaussian_1d"),
        "mean": m,
        "std": s,
        "sample_mean": float(g.mean()),
        "sample_std": float(g.std()),
        "within_one_std": within,
        "within_one_std_exact": math.erf(1 / math.sqrt(2)),
    }


# ------------------------------------------------------- 5. 2-D Gaussian, conditional


def _conditional_case(mean, cov, xy: torch.Tensor) -> dict[str, Any]:
    """p(y | x = X_SLICE) three ways: the formula, the normalised slice, rejection sampling."""
    cm, cv = conditional_gaussian(mean, cov, X_SLICE)
    marginal = gaussian_pdf(X_SLICE, mean[0], math.sqrt(cov[0][0]))  # p(x = 1.5)
    ys = torch.linspace(cm - 5 * cv.sqrt(), cm + 5 * cv.sqrt(), 201, dtype=torch.float64)
    slice_ = mvn_pdf(torch.stack([torch.full_like(ys, X_SLICE), ys], -1), mean, cov)  # p(1.5, y)
    cond_pdf = gaussian_pdf(ys, cm, cv.sqrt())
    kept = xy[(xy[:, 0] - X_SLICE).abs() < WINDOW, 1]
    return {
        "mean": list(mean),
        "cov": [list(r) for r in cov],
        "x": X_SLICE,
        "marginal_pdf": float(marginal),
        "cond_mean": float(cm),
        "cond_var": float(cv),
        "slice_vs_conditional_max_error": float((slice_ / marginal - cond_pdf).abs().max()),
        "rejection": {
            "window": WINDOW,
            "kept": int(kept.numel()),
            "mean": float(kept.mean()) if kept.numel() else math.nan,
            "var": float(kept.var()) if kept.numel() > 1 else math.nan,
        },
        "_curves": (ys, slice_, cond_pdf, kept),  # for the figure; dropped before saving
    }


def _gaussian_2d(out: Path, n: int, seed: int) -> dict[str, Any]:
    g = _gen(seed, "gaussian_2d")
    draws = {
        name: sample_mvn(MEAN_2D, cov, n, g)
        for name, cov in (("diagonal", COV_2D), ("correlated", COV_CORRELATED))
    }  # (n, 2) each
    cases = {
        "diagonal": _conditional_case(MEAN_2D, COV_2D, draws["diagonal"]),
        "correlated": _conditional_case(MEAN_2D, COV_CORRELATED, draws["correlated"]),
    }
    shown = draws["diagonal"][:400]

    # the joint density on a grid: surface and contours, with the slice at x = 1.5
    xs = torch.linspace(-4, 6, 81, dtype=torch.float64)  # step 1/8: x = 1.5 is column 44
    ys = torch.linspace(-2.5, 6.5, 73, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (73, 81)
    dens = mvn_pdf(torch.stack([gx, gy], -1), MEAN_2D, COV_2D)  # (73, 81)
    cut = int(torch.argmin((xs - X_SLICE).abs()))
    slice_p = mvn_pdf(torch.stack([torch.full_like(ys, X_SLICE), ys], -1), MEAN_2D, COV_2D)

    fig = figure(13, 5.5)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    # the part with x < 1.5 as a faint wireframe, the rest solid: the slice is the cut face's edge
    gxn, gyn, dn = gx.numpy(), gy.numpy(), dens.numpy()
    ax.plot_wireframe(
        gxn[:, : cut + 1],
        gyn[:, : cut + 1],
        dn[:, : cut + 1],
        rstride=4,
        cstride=4,
        color="0.6",
        lw=0.4,
    )
    ax.plot_surface(gxn[:, cut:], gyn[:, cut:], dn[:, cut:], cmap="viridis", alpha=0.85, lw=0)
    ax.plot(
        np.full(len(ys), X_SLICE),
        ys.numpy(),
        slice_p.numpy(),
        color="red",
        lw=2.5,
        label="p(x = 1.5, y)",
    )
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("p(x, y), μ = (1, 2), Σ = diag(3, 2), sliced at x = 1.5")
    ax.legend(loc="upper left")
    ax = fig.add_subplot(1, 2, 2)
    ax.contour(gx.numpy(), gy.numpy(), dens.numpy(), levels=10, cmap="viridis")
    ax.scatter(
        shown[:, 0].numpy(), shown[:, 1].numpy(), s=3, color="0.4", label="400 draws (Cholesky)"
    )
    ax.axvline(X_SLICE, color="red", lw=1.5, label="x = 1.5")
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("contours of p(x, y)")
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, out / "gaussian_2d.png")

    fig = figure(12, 4.5)
    for i, case in enumerate(cases.values()):
        ys_c, slice_c, cond_c, kept = case.pop("_curves")
        ax = fig.add_subplot(1, 2, i + 1)
        if kept.numel():
            ax.hist(
                kept.numpy(),
                bins=40,
                density=True,
                alpha=0.4,
                color="tab:green",
                label=f"{kept.numel():,} draws with |x − 1.5| < {WINDOW:g}",
            )
        ax.plot(ys_c.numpy(), cond_c.numpy(), color="black", lw=1.5, label="p(y | x = 1.5)")
        ax.plot(
            ys_c.numpy()[::8],
            (slice_c / case["marginal_pdf"]).numpy()[::8],
            "o",
            color="red",
            ms=4,
            label="slice p(1.5, y) / p(x = 1.5)",
        )
        cov = case["cov"]
        ax.set_title(
            f"Σ = [[{cov[0][0]:g}, {cov[0][1]:g}], [{cov[1][0]:g}, {cov[1][1]:g}]]: "
            f"mean {case['cond_mean']:.4f}, variance {case['cond_var']:.4f}"
        )
        ax.set_xlabel("y")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    save_figure(fig, out / "conditional.png")
    return {"seed": section_seed(seed, "gaussian_2d"), **cases}


# ---------------------------------------------------------------------- 6. KL


def _kl_pair(closed: torch.Tensor, mc) -> dict[str, float]:
    return {
        "closed": float(closed),
        "closed_bits": float(bits(closed)),
        "mc": float(mc.value),
        "mc_stderr": float(mc.stderr),
    }


def _kl_examples(out: Path, n: int, seed: int) -> dict[str, Any]:
    g = _gen(seed, "kl")
    p, q = torch.tensor(P_CAT, dtype=torch.float64), torch.tensor(Q_CAT, dtype=torch.float64)
    cat = {
        "P": list(P_CAT),
        "Q": list(Q_CAT),
        "terms": (p * torch.log(p / q)).tolist(),  # the lecture's table: P(i) ln P(i)/Q(i)
        "P||Q": _kl_pair(kl_categorical(p, q), kl_categorical_mc(p, q, n, g)),
        "Q||P": _kl_pair(kl_categorical(q, p), kl_categorical_mc(q, p, n, g)),
    }
    (mp, sp), (mq, sq) = GAUSS_P, GAUSS_Q
    gauss = {
        "P": [mp, sp],
        "Q": [mq, sq],
        "P||Q": _kl_pair(kl_gaussian(mp, sp, mq, sq), kl_gaussian_mc(mp, sp, mq, sq, n, g)),
        "Q||P": _kl_pair(kl_gaussian(mq, sq, mp, sp), kl_gaussian_mc(mq, sq, mp, sp, n, g)),
    }

    fig = figure(13, 4.8)
    ax = fig.add_subplot(1, 2, 1)
    idx = np.arange(3)
    ax.bar(idx - 0.2, P_CAT, width=0.4, label="P")
    ax.bar(idx + 0.2, Q_CAT, width=0.4, label="Q")
    ax.set_xticks(idx, ["a", "b", "c"])
    ax.set_ylabel("probability")
    ax.set_title(
        f"KL(P‖Q) = {cat['P||Q']['closed']:.4f} nats (MC {cat['P||Q']['mc']:.4f})\n"
        f"KL(Q‖P) = {cat['Q||P']['closed']:.4f} nats (MC {cat['Q||P']['mc']:.4f})"
    )
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    x = torch.linspace(-7, 9, 600, dtype=torch.float64)
    pp, qq = gaussian_pdf(x, mp, sp), gaussian_pdf(x, mq, sq)
    ax.plot(x.numpy(), pp.numpy(), label=f"P = N({mp:g}, {sp:g}²)")
    ax.plot(x.numpy(), qq.numpy(), label=f"Q = N({mq:g}, {sq:g}²)")
    ax.fill_between(
        x.numpy(), (pp * torch.log(pp / qq)).numpy(), alpha=0.3, label="p ln(p/q): area = KL(P‖Q)"
    )
    ax.fill_between(
        x.numpy(), (qq * torch.log(qq / pp)).numpy(), alpha=0.3, label="q ln(q/p): area = KL(Q‖P)"
    )
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylim(-0.25, 0.6)
    ax.set_title(
        f"KL(P‖Q) = {gauss['P||Q']['closed']:.4f} nats (MC {gauss['P||Q']['mc']:.4f})\n"
        f"KL(Q‖P) = {gauss['Q||P']['closed']:.4f} nats (MC {gauss['Q||P']['mc']:.4f})"
    )
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, out / "kl_examples.png")
    return {"seed": section_seed(seed, "kl"), "categorical": cat, "gaussian": gauss}


def _kl_vae(out: Path, n: int, seed: int) -> dict[str, Any]:
    g = _gen(seed, "kl_vae")
    table = []
    for mu, sigma in VAE_POINTS:
        m = torch.tensor([mu], dtype=torch.float64)  # one latent dimension
        lv = torch.tensor([2 * math.log(sigma)], dtype=torch.float64)
        table.append({"mu": mu, "sigma": sigma, **_kl_pair(kl_vae(m, lv), kl_vae_mc(m, lv, n, g))})

    mus = torch.linspace(-3, 3, 121, dtype=torch.float64)
    sigmas = torch.linspace(0.05, 3, 119, dtype=torch.float64)
    gm, gs = torch.meshgrid(mus, sigmas, indexing="xy")  # (119, 121)
    kl = kl_vae(gm.unsqueeze(-1), (2 * torch.log(gs)).unsqueeze(-1))  # (119, 121) nats

    fig = figure(13, 4.8)
    ax = fig.add_subplot(1, 2, 1)
    cs = ax.contourf(
        gm.numpy(),
        gs.numpy(),
        kl.numpy(),
        levels=[0, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6],
        cmap="magma_r",
    )
    fig.colorbar(cs, ax=ax, label="KL (nats)")
    ax.plot([0], [1], "*", color="tab:cyan", ms=14, label="μ = 0, σ = 1: KL = 0")
    ax.set_xlabel("μ")
    ax.set_ylabel("σ")
    ax.set_title("½(μ² + σ² − ln σ² − 1) for one latent dimension")
    ax.legend(loc="upper right")
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(
        mus.numpy(),
        kl_vae(mus[:, None], torch.zeros_like(mus)[:, None]).numpy(),
        label="σ = 1, as μ varies: μ²/2",
    )
    s_line = torch.linspace(0.05, 3, 200, dtype=torch.float64)
    ax.plot(
        s_line.numpy(),
        kl_vae(torch.zeros_like(s_line)[:, None], 2 * torch.log(s_line)[:, None]).numpy(),
        label="μ = 0, as σ varies: ½(σ² − ln σ² − 1)",
    )
    ax.set_ylim(0, 4)
    ax.set_xlabel("μ or σ")
    ax.set_ylabel("KL (nats)")
    ax.set_title("the VAE's KL term pulls μ → 0 and σ → 1")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, out / "kl_vae.png")
    return {"seed": section_seed(seed, "kl_vae"), "points": table}


# --------------------------------------------------------------------- reporting


def _f(x: float, d: int = 4) -> str:
    return f"{x + 0.0:.{d}f}"  # + 0.0 turns −0.0 (e.g. −½ · 0) into 0.0


def summary_lines(numbers: dict[str, Any]) -> list[str]:
    """The primer's headline numbers, one line each (what ``aegen primer`` prints)."""
    c, s, iid = numbers["cameraman"], numbers["sampled_pmf"], numbers["iid"]
    g1 = numbers["gaussian_1d"]
    d, r = numbers["gaussian_2d"]["diagonal"], numbers["gaussian_2d"]["correlated"]
    cat, gau = numbers["kl"]["categorical"], numbers["kl"]["gaussian"]
    lines = [
        f"1. cameraman {c['height']}×{c['width']}: {c['levels_used']} of {LEVELS} gray levels used, "
        f"most common {c['mode']} (mass {_f(c['mode_mass'])})",
        f"2. {s['n']:,} draws through the inverse CDF: total variation {_f(s['total_variation'])} from the pmf",
        f"3. i.i.d. cameraman: neighbour correlation {_f(iid['neighbour_correlation_original'], 3)} "
        f"(original) vs {_f(iid['neighbour_correlation_iid'], 3)} (i.i.d.)",
        f"4. N({g1['mean']:g}, {g1['std']:g}²): sample mean {_f(g1['sample_mean'])}, std {_f(g1['sample_std'])}",
    ]
    for name, case in (("Σ = diag(3, 2)", d), ("correlated Σ", r)):
        lines.append(
            f"5. p(y | x = {case['x']:g}), {name}: mean {_f(case['cond_mean'])}, variance {_f(case['cond_var'])} "
            f"(rejection sampling: {_f(case['rejection']['mean'])}, {_f(case['rejection']['var'])})"
        )
    for label, block in (("categorical", cat), ("Gaussian", gau)):
        for direction in ("P||Q", "Q||P"):
            k = block[direction]
            lines.append(
                f"6. {label} KL({direction.replace('||', '‖')}) = {_f(k['closed'])} nats "
                f"({_f(k['closed_bits'])} bits); Monte Carlo {_f(k['mc'])} ± {_f(k['mc_stderr'])}"
            )
    for row in numbers["kl_vae"]["points"]:
        lines.append(
            f"6. VAE KL at μ = {row['mu']:g}, σ = {row['sigma']:g}: {_f(row['closed'])} nats; "
            f"Monte Carlo {_f(row['mc'])} ± {_f(row['mc_stderr'])}"
        )
    return lines


def primer_markdown(numbers: dict[str, Any]) -> str:
    """The primer as Markdown: each figure with the numbers behind it."""
    n = numbers["samples"]
    c, ic, s, iid = (numbers[k] for k in ("cameraman", "inverse_cdf", "sampled_pmf", "iid"))
    g1 = numbers["gaussian_1d"]
    g2 = numbers["gaussian_2d"]
    cat, gau = numbers["kl"]["categorical"], numbers["kl"]["gaussian"]
    out = [
        "# The probability primer, computed",
        "",
        f"Made by `aegen primer` with {n:,} samples per histogram and Monte Carlo estimate "
        f"(seed {numbers['seed']}). Every number below comes from `aegen.prob`; KL divergences "
        "are in nats (bits = nats / ln 2). The same numbers are in `primer.json`.",
        "",
        "## 1. A pmf: the cameraman's histogram",
        "",
        "![cameraman and its pmf](cameraman.png)",
        "",
        f"The pixel values of the {c['height']}×{c['width']} cameraman image are random variables; "
        f"its 256-bin histogram divided by the pixel count is their pmf. {c['levels_used']} of the "
        f"256 gray levels occur; the most common is {c['mode']} (mass {_f(c['mode_mass'])}); the mean "
        f"value is {c['mean_level']:.2f}.",
        "",
        "## 2. Sampling from a pmf: uniform draws through the inverse CDF",
        "",
        "![evenly spaced u through the inverse CDF](inverse_cdf.png)",
        "",
        "`sample_pmf` draws u ~ Uniform[0, 1) and returns the smallest k with F(k) > u, where F is "
        "the cumulative sum of the pmf: the unit interval is cut into pieces of length p(k) and u "
        f"picks the piece it falls in. The {ic['u_points']} evenly spaced points above land "
        f"between {_f(ic['smallest_gap'], 0)} and {_f(ic['largest_gap'], 0)} gray levels apart: "
        "compressed where the pmf is high, stretched where it is low.",
        "",
        "![uniform draws and the histogram of their images](sampled_pmf.png)",
        "",
        f"{s['n']:,} draws: their histogram is {_f(s['total_variation'])} in total variation from "
        f"the true pmf (½ Σ |p̂ − p|), largest error in one bin {s['max_abs_error']:.2e}.",
        "",
        "## 3. Can we generate the cameraman from its histogram?",
        "",
        "![the cameraman and i.i.d. pixels from its pmf](iid_cameraman.png)",
        "",
        "No. Drawing every pixel independently from the pmf gives the same histogram "
        f"(total variation {_f(iid['total_variation'])}) but noise: the correlation between a "
        f"pixel and its right neighbour is {_f(iid['neighbour_correlation_original'], 3)} in the "
        f"photograph and {_f(iid['neighbour_correlation_iid'], 3)} in the i.i.d. image. The pmf "
        "keeps no spatial organisation; a generative model of images must model the joint "
        "distribution of pixels, not their marginal.",
        "",
        "## 4. A 1-D Gaussian: g = m + s · randn",
        "",
        "![1-D Gaussian histogram against its pdf](gaussian_1d.png)",
        "",
        "| | m | s | share within m ± s |",
        "|---|---|---|---|",
        f"| true | {g1['mean']:g} | {g1['std']:g} | {_f(g1['within_one_std_exact'])} |",
        f"| {n:,} draws | {_f(g1['sample_mean'])} | {_f(g1['sample_std'])} | {_f(g1['within_one_std'])} |",
        "",
        "## 5. A 2-D Gaussian and a conditional density",
        "",
        "![the 2-D Gaussian and its slice at x = 1.5](gaussian_2d.png)",
        "",
        "`sample_mvn` draws x = μ + L ε with L the Cholesky factor of Σ (L Lᵀ = Σ) and ε ~ N(0, I). "
        "The conditional p(y | x = 1.5) is the joint's slice at x = 1.5 divided by the marginal "
        "p(x = 1.5), so that it integrates to 1; for a 2-D Gaussian it is again Gaussian, with mean "
        "μy + Σyx/Σxx (x − μx) and variance Σyy − Σyx²/Σxx (`conditional_gaussian`). For the lecture's "
        "diagonal Σ, y does not depend on x and the conditional is the marginal N(2, 2); with "
        "correlation it moves with x and narrows.",
        "",
        "![p(y | x = 1.5): formula, normalised slice, rejection sampling](conditional.png)",
        "",
        "| Σ | p(x = 1.5) | E[y given x] | Var[y given x] | max slice/p(x) − formula | draws kept | their mean | their variance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in (g2["diagonal"], g2["correlated"]):
        cov, rj = case["cov"], case["rejection"]
        out.append(
            f"| [[{cov[0][0]:g}, {cov[0][1]:g}], [{cov[1][0]:g}, {cov[1][1]:g}]] | {_f(case['marginal_pdf'])} "
            f"| {_f(case['cond_mean'])} | {_f(case['cond_var'])} | {case['slice_vs_conditional_max_error']:.1e} "
            f"| {rj['kept']:,} | {_f(rj['mean'])} | {_f(rj['var'])} |"
        )
    out += [
        "",
        f"(Rejection sampling keeps the draws with |x − 1.5| < {WINDOW:g} from {n:,} per covariance.)",
        "",
        "## 6. KL divergence",
        "",
        "![the lecture's KL examples](kl_examples.png)",
        "",
        "D_KL(P ‖ Q) = Σᵢ P(i) ln(P(i)/Q(i)): the expected number of extra nats per sample when "
        "coding for Q while nature draws from P. The lecture's table:",
        "",
        "| outcome | P(i) | Q(i) | P(i) ln(P(i)/Q(i)) |",
        "|---|---|---|---|",
    ]
    for name, pi, qi, t in zip("abc", cat["P"], cat["Q"], cat["terms"], strict=True):
        out.append(f"| {name} | {pi:g} | {qi:g} | {_f(t)} |")
    out += [
        f"| sum | | | {_f(cat['P||Q']['closed'])} nats ({_f(cat['P||Q']['closed_bits'])} bits) |",
        "",
        f"Closed form against Monte Carlo (the mean of ln p(x) − ln q(x) over {n:,} draws x ~ P, "
        "± its standard error), both directions — KL is not symmetric:",
        "",
        "| P | Q | KL(P‖Q) nats | bits | Monte Carlo | KL(Q‖P) nats | bits | Monte Carlo |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for block, pname, qname in (
        (
            cat,
            f"({', '.join(f'{v:g}' for v in cat['P'])})",
            f"({', '.join(f'{v:g}' for v in cat['Q'])})",
        ),
        (gau, f"N({gau['P'][0]:g}, {gau['P'][1]:g}²)", f"N({gau['Q'][0]:g}, {gau['Q'][1]:g}²)"),
    ):
        a, b = block["P||Q"], block["Q||P"]
        out.append(
            f"| {pname} | {qname} | {_f(a['closed'])} | {_f(a['closed_bits'])} | {_f(a['mc'])} ± {_f(a['mc_stderr'])} "
            f"| {_f(b['closed'])} | {_f(b['closed_bits'])} | {_f(b['mc'])} ± {_f(b['mc_stderr'])} |"
        )
    out += [
        "",
        "### The VAE's KL term",
        "",
        "![the VAE KL term as a function of μ and σ](kl_vae.png)",
        "",
        "D_KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − ln σ² − 1) per latent dimension (`kl_vae`, summed "
        "over dimensions): zero only at μ = 0, σ = 1, growing as μ²/2 away from the origin and "
        "sharply as σ → 0. It is the VAE's pull of every encoding towards the standard normal.",
        "",
        "| μ | σ | KL nats | bits | Monte Carlo |",
        "|---|---|---|---|---|",
    ]
    for row in numbers["kl_vae"]["points"]:
        out.append(
            f"| {row['mu']:g} | {row['sigma']:g} | {_f(row['closed'])} | {_f(row['closed_bits'])} "
            f"| {_f(row['mc'])} ± {_f(row['mc_stderr'])} |"
        )
    return "\n".join(out) + "\n"
