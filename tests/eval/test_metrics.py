"""Scores against closed forms and independent references (scipy, scikit-image, numpy)."""

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import structural_similarity

from aegen.data.loader import to_float
from aegen.errors import CheckpointError
from aegen.eval.metrics import (
    check_metrics,
    frechet_distance,
    kernel_distance,
    knn_radii,
    precision_recall,
    psnr,
    ssim,
)

# ------------------------------------------------------------------ PSNR / SSIM


def test_psnr_known_cases():
    x = torch.zeros(3, 1, 28, 28)
    y = torch.stack([torch.full((1, 28, 28), v) for v in (0.1, 0.01, 1.0)])
    # MSE 0.01 → 20 dB, 1e-4 → 40 dB, 1 → 0 dB (peak 1)
    assert torch.allclose(psnr(x, y), torch.tensor([20.0, 40.0, 0.0]), atol=1e-4)
    assert psnr(y, y).min() >= 119.9  # identical images: capped by eps, not infinite


def test_ssim_of_identical_images_is_one():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("a,b", [(0.2, 0.2), (0.2, 0.6), (0.0, 1.0)])
def test_ssim_of_constant_images_has_a_closed_form(a, b):
    """No variance: SSIM reduces to the luminance term (2ab + C1) / (a² + b² + C1)."""
    c1 = 0.01**2
    x = torch.full((1, 1, 28, 28), a, dtype=torch.float64)
    y = torch.full((1, 1, 28, 28), b, dtype=torch.float64)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_ssim_matches_scikit_image(small_synthetic):
    g = torch.Generator().manual_seed(1)
    real = to_float(small_synthetic.test.x[:6])
    noisy = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(0, 1)
    pairs = [(real, noisy), (torch.rand(6, 1, 28, 28, generator=g), real)]
    for x, y in pairs:
        ours = ssim(x, y)
        ref = [
            structural_similarity(
                x[i, 0].double().numpy(),
                y[i, 0].double().numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for i in range(x.shape[0])
        ]
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-7, atol=1e-9)


def test_ssim_falls_as_noise_grows(small_synthetic):
    x = to_float(small_synthetic.test.x[:20])
    g = torch.Generator().manual_seed(2)
    scores = [
        ssim(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)).mean().item()
        for s in (0.02, 0.1, 0.3)
    ]
    assert scores[0] > scores[1] > scores[2]


# ------------------------------------------------------------------ FID / KID


def _scipy_fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """The textbook formula with scipy's matrix square root (an independent reference)."""
    a, b = a.double().numpy(), b.double().numpy()
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # dead ReLU units make Σ singular; sqrtm still converges
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # the usual guard for nearly singular products
        eps = np.eye(len(m1)) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + eps) @ (s2 + eps))
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


def _gaussian_sets(d=12, n=600, m=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64)
    a = torch.randn(n, d, generator=g, dtype=torch.float64) @ mix
    b = torch.randn(m, d, generator=g, dtype=torch.float64) @ (mix * 1.3) + 0.5
    return a, b


def test_fid_equals_scipy_reference_on_random_features():
    a, b = _gaussian_sets()
    assert frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)


def test_fid_equals_scipy_reference_on_domain_features(tiny_features, small_synthetic):
    feats = tiny_features.embed(small_synthetic.test.x)
    noise = tiny_features.embed(
        torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    )
    for a, b in [(feats[:500], feats[500:]), (feats, noise)]:
        assert frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-5, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    a, _ = _gaussian_sets()
    assert abs(frechet_distance(a, a)) < 1e-8 * a.var(0).sum().item()


def test_fid_of_a_shifted_set_is_the_squared_shift():
    """Equal covariances: the trace terms cancel and FID = ‖shift‖²."""
    a, _ = _gaussian_sets()
    shift = torch.linspace(-1, 1, a.shape[1], dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(shift.pow(2).sum().item(), rel=1e-6)


def _numpy_unbiased_mmd(a: np.ndarray, b: np.ndarray) -> float:
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    n, m = len(a), len(b)
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_kid_matches_the_unbiased_mmd_on_its_subset():
    a, b = _gaussian_sets(n=300, m=300)
    mean, std = kernel_distance(a, b, subsets=1, subset_size=100, seed=3)
    torch.manual_seed(3)  # the draw torchmetrics makes for its one subset
    ia, ib = torch.randperm(300)[:100], torch.randperm(300)[:100]
    assert mean == pytest.approx(_numpy_unbiased_mmd(a[ia].numpy(), b[ib].numpy()), rel=1e-9)
    assert std == 0.0  # one subset has no spread


def test_kid_subsets_are_smaller_than_the_sets_so_the_spread_is_real():
    # asked for subsets as large as the sets, KID takes half of each: the subsets then
    # differ, and the spread is a sampling spread, not rounding noise of one set
    a, b = _gaussian_sets(n=200, m=200)
    mean, std = kernel_distance(a, b, subsets=20, subset_size=1000)
    assert std > 1e-3 * abs(mean)
    assert std > 1e-9


def test_kid_subsets_are_seeded():
    a, b = _gaussian_sets()
    first = kernel_distance(a, b, subsets=20, subset_size=100, seed=5)
    state = torch.get_rng_state()
    assert kernel_distance(a, b, subsets=20, subset_size=100, seed=5) == first
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert kernel_distance(a, b, subsets=20, subset_size=100, seed=6) != first
    same = kernel_distance(a[:300], a[300:], subsets=20, subset_size=100)[0]
    assert abs(same) < first[0] / 10


# ------------------------------------------------------------------ precision / recall


def test_knn_radii_on_a_line():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(x, k=2).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_precision_recall_closed_forms():
    real = torch.arange(10, dtype=torch.float64)[:, None]  # k=1 balls of radius 1 on 0..9
    fake = torch.tensor([[0.5], [100.0]], dtype=torch.float64)
    # half the samples are inside the real manifold; the two fake balls (radius 99.5) cover all data
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)
    fake = torch.tensor([[2.0], [2.5], [3.0]], dtype=torch.float64)  # radii 0.5, 0.5, 0.5
    assert precision_recall(real, fake, k=1) == (1.0, 0.2)  # only 2 and 3 are covered


def test_precision_recall_of_identical_and_disjoint_sets():
    a, _ = _gaussian_sets()
    assert precision_recall(a, a, k=3) == (1.0, 1.0)
    assert precision_recall(a, a + 1e4, k=3) == (0.0, 0.0)


def test_precision_recall_chunking_does_not_change_results():
    a, b = _gaussian_sets()
    assert precision_recall(a, b, k=3, chunk=64) == precision_recall(a, b, k=3, chunk=5000)


# ------------------------------------------------------------------ metrics.json schema


def _valid():
    return {
        "reconstruction": {"mse": 0.01, "psnr": 20.0, "ssim": 0.8, "split": "test", "n": 100},
        "samples": {
            "fid": 3.0,
            "kid_mean": 0.001,
            "kid_std": 0.0002,
            "precision": 0.7,
            "recall": 0.6,
            "k": 3,
            "n_samples": 1000,
            "n_real": 1000,
            "seed": 0,
            "features": {"sha256": "ab" * 32},
        },
        "likelihood": {"nll_nats": 90.0, "bits_per_dim": 90 / (784 * math.log(2)), "n": 100},
        "eval": {"aegen_version": "0.1.0", "seed": 0, "data": {"name": "synthetic"}},
        "someone_else": {"anything": [1, 2]},
    }


def test_metrics_schema_accepts_valid_and_extra_sections():
    assert check_metrics(_valid()) == _valid()
    assert check_metrics({}) == {}
    prior = {"likelihood": {"bits_per_code": 2.5, "n": 1000, "split": "test"}}  # a VQ prior's
    assert check_metrics(prior) == prior
    with pytest.raises(CheckpointError, match="likelihood has none of"):
        check_metrics({"likelihood": {"n": 3}})


@pytest.mark.parametrize(
    "section,key,value,fragment",
    [
        ("samples", "fid", None, "samples.fid is missing"),
        ("samples", "n_samples", 10.5, "samples.n_samples has the wrong type"),
        ("reconstruction", "split", 3, "reconstruction.split has the wrong type"),
        ("likelihood", "n", True, "likelihood.n has the wrong type"),
        ("samples", "features", {}, "samples.features.sha256 is missing"),
        ("reconstruction", "ssim", "high", "reconstruction.ssim has the wrong type"),
        ("likelihood", "bits_per_dim", [1], "likelihood.bits_per_dim has the wrong type"),
    ],
)
def test_metrics_schema_names_what_is_wrong(section, key, value, fragment):
    m = _valid()
    if value is None:
        del m[section][key]
    else:
        m[section][key] = value
    with pytest.raises(CheckpointError, match=fragment.replace(".", r"\.")):
        check_metrics(m)
