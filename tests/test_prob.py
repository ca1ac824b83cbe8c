"""aegen.prob against closed forms and an independent reference (scipy / numpy)."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from aegen.prob import (
    bits,
    check_pmf,
    cholesky_factor,
    conditional_gaussian,
    empirical_pmf,
    gaussian_logpdf,
    gaussian_pdf,
    kl_categorical,
    kl_categorical_mc,
    kl_gaussian,
    kl_gaussian_mc,
    kl_vae,
    kl_vae_mc,
    mvn_logpdf,
    mvn_pdf,
    pmf_inverse_cdf,
    sample_gaussian,
    sample_mvn,
    sample_pmf,
)

P_LECTURE, Q_LECTURE = [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]
CORRELATED = [[3.0, 1.2], [1.2, 2.0]]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ pmfs

PMFS = {
    "uniform": np.full(6, 1 / 6),
    "skewed": np.array([0.7, 0.2, 0.05, 0.03, 0.02]),
    "zeros at both ends and inside": np.array([0, 0, 0.25, 0, 0.5, 0, 0.25, 0, 0]),
    "one tiny bin": np.array([0.499, 0.001, 0.5]),
    "geometric-ish 40 bins": (lambda a: a / a.sum())(0.85 ** np.arange(40)),
}


@pytest.mark.parametrize("name", list(PMFS))
def test_sample_pmf_passes_chi_square_goodness_of_fit(name):
    pmf = PMFS[name]
    n = 200_000
    counts = np.bincount(sample_pmf(torch.tensor(pmf), n, gen(1)).numpy(), minlength=len(pmf))
    zero = pmf == 0
    assert counts[zero].sum() == 0, "an outcome of zero mass was drawn"
    assert counts.sum() == n
    chi2 = stats.chisquare(counts[~zero], n * pmf[~zero])
    assert chi2.pvalue > 1e-3, (name, chi2)


def test_sample_pmf_on_the_cameraman_histogram():
    from skimage.data import camera

    img = camera()
    pmf = np.bincount(img.ravel(), minlength=256) / img.size
    n = 500_000
    counts = np.bincount(sample_pmf(torch.tensor(pmf), n, gen(2)).numpy(), minlength=256)
    # pool sparse bins so every expected count is at least 5 (the χ² approximation's rule)
    keep = n * pmf >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(n * pmf[keep], n * pmf[~keep].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_sample_pmf_batches_use_their_own_rows():
    pmf = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.5, 0.5]])
    s = sample_pmf(pmf.expand(2, 3, 3), 1000, gen())
    assert s.shape == (2, 3, 1000) and s.dtype == torch.long
    assert (s[:, 0] == 0).all() and (s[:, 1] == 2).all()
    assert set(s[:, 2].unique().tolist()) == {1, 2}


def test_inverse_cdf_matches_scipy_ppf_and_is_monotone():
    pmf = PMFS["zeros at both ends and inside"]
    u = torch.rand(5000, generator=gen(3), dtype=torch.float64)
    ref = stats.rv_discrete(values=(np.arange(len(pmf)), pmf)).ppf(u.numpy())
    np.testing.assert_array_equal(pmf_inverse_cdf(torch.tensor(pmf), u).numpy(), ref)
    grid = torch.linspace(0, 1, 1001, dtype=torch.float64)[:-1]
    k = pmf_inverse_cdf(torch.tensor(pmf), grid)
    assert (k.diff() >= 0).all() and set(k.tolist()) == {2, 4, 6}
    # a u just under 1 still lands on the last outcome with mass, despite round-off
    p32 = torch.full((7,), 1 / 7, dtype=torch.float32)
    assert pmf_inverse_cdf(p32, torch.tensor([1 - 1e-16], dtype=torch.float64)).item() == 6


def test_sample_pmf_is_seeded():
    a = sample_pmf([0.2, 0.8], 100, gen(5))
    assert torch.equal(a, sample_pmf([0.2, 0.8], 100, gen(5)))


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ([0.5, 0.6], "sum to 1"),
        ([1.2, -0.2], "negative"),
        ([float("nan"), 1.0], "non-finite"),
        ([float("inf"), 0.0], "non-finite"),
        ([3, 1], "sum to 1"),
        ([], "at least one outcome"),
        (1.0, "at least one outcome"),
    ],
)
def test_bad_pmfs_are_clear_value_errors(bad, fragment):
    for fn in (lambda: sample_pmf(bad, 5), lambda: kl_categorical(bad, [1.0])):
        with pytest.raises(ValueError, match=fragment):
            fn()


def test_empirical_pmf():
    p = empirical_pmf(torch.tensor([0, 2, 2, 3]), 5)
    torch.testing.assert_close(p, torch.tensor([0.25, 0, 0.5, 0.25, 0], dtype=torch.float64))
    check_pmf(p)
    with pytest.raises(ValueError, match="lie in"):
        empirical_pmf(torch.tensor([5]), 5)


# ------------------------------------------------------------------- Gaussians


def test_sample_gaussian_is_m_plus_s_randn():
    m, s = 1.5, 0.7
    g = sample_gaussian(m, s, 200_000, gen(4))
    assert g.dtype == torch.float64 and g.shape == (200_000,)
    assert stats.kstest(g.numpy(), stats.norm(m, s).cdf).pvalue > 1e-3
    eps = torch.randn(10, generator=gen(6), dtype=torch.float64)
    torch.testing.assert_close(sample_gaussian(m, s, 10, gen(6)), m + s * eps)
    batch = sample_gaussian(torch.tensor([0.0, 10.0]), torch.tensor([1.0, 0.0]), (5, 2), gen())
    assert batch.shape == (5, 2) and (batch[:, 1] == 10).all()
    with pytest.raises(ValueError, match="std"):
        sample_gaussian(0.0, -1.0, 3)


def test_gaussian_pdf_matches_scipy():
    x = torch.linspace(-5, 7, 101, dtype=torch.float64)
    np.testing.assert_allclose(
        gaussian_pdf(x, 1.0, 2.0).numpy(), stats.norm(1, 2).pdf(x), rtol=1e-12
    )
    np.testing.assert_allclose(
        gaussian_logpdf(x, -1.0, 0.3).numpy(), stats.norm(-1, 0.3).logpdf(x), rtol=1e-12
    )


@pytest.mark.parametrize(
    "cov", [CORRELATED, [[2.0, 0.3, -0.5], [0.3, 1.0, 0.2], [-0.5, 0.2, 1.5]], [[0.01]]]
)
def test_mvn_pdf_matches_scipy(cov):
    d = len(cov)
    mean = np.arange(1.0, d + 1)
    x = torch.randn(50, d, generator=gen(7), dtype=torch.float64) * 2 + torch.tensor(mean)
    ref = stats.multivariate_normal(mean, cov)
    np.testing.assert_allclose(mvn_pdf(x, mean.tolist(), cov).numpy(), ref.pdf(x), rtol=1e-10)
    np.testing.assert_allclose(mvn_logpdf(x, mean.tolist(), cov).numpy(), ref.logpdf(x), rtol=1e-10)


def test_mvn_logpdf_broadcasts_batches_of_gaussians():
    cov = torch.tensor([CORRELATED, [[1.0, 0.0], [0.0, 4.0]]], dtype=torch.float64)  # (2, 2, 2)
    x = torch.randn(5, 1, 2, generator=gen(8), dtype=torch.float64)
    out = mvn_logpdf(x, torch.zeros(2), cov)
    assert out.shape == (5, 2)
    for j in range(2):
        ref = stats.multivariate_normal(np.zeros(2), cov[j].numpy()).logpdf(x[:, 0].numpy())
        np.testing.assert_allclose(out[:, j].numpy(), ref, rtol=1e-10)


def test_sample_mvn_has_the_right_moments():
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.3, -0.5], [0.3, 1.0, 0.2], [-0.5, 0.2, 1.5]], dtype=torch.float64)
    x = sample_mvn(mean, cov, 200_000, gen(9))
    assert x.shape == (200_000, 3)
    torch.testing.assert_close(x.mean(0), mean, atol=0.015, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0)
    # whitening with the Cholesky factor gives independent N(0, 1) coordinates
    z = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), (x - mean).T, upper=False)
    for row in z:
        assert stats.kstest(row[:20_000].numpy(), "norm").pvalue > 1e-3
    batch = sample_mvn(torch.zeros(4, 2), torch.eye(2), 7, gen())
    assert batch.shape == (7, 4, 2)


@pytest.mark.parametrize(
    "cov, fragment",
    [
        ([[1.0, 0.5], [0.4, 1.0]], "not symmetric"),
        ([[1.0, 2.0], [2.0, 1.0]], "not positive definite"),
        ([[1.0, 0.0], [0.0, 0.0]], "not positive definite"),
        ([[1.0, float("nan")], [float("nan"), 1.0]], "non-finite"),
        ([1.0, 2.0], "square"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "square"),
    ],
)
def test_bad_covariances_are_clear_value_errors(cov, fragment):
    for fn in (
        lambda: cholesky_factor(cov),
        lambda: sample_mvn([0.0, 0.0], cov, 3),
        lambda: mvn_pdf([0.0, 0.0], [0.0, 0.0], cov),
        lambda: conditional_gaussian([0.0, 0.0], cov, 1.0),
    ):
        with pytest.raises(ValueError, match=fragment):
            fn()


def test_sample_mvn_refuses_a_mean_of_the_wrong_size():
    with pytest.raises(ValueError, match="mean"):
        sample_mvn([0.0, 0.0, 0.0], torch.eye(2), 3)


# ---------------------------------------------------------------- conditionals


def test_conditional_of_the_lecture_gaussian_ignores_x():
    # μ = (1, 2), Σ = diag(3, 2): y is independent of x, so p(y | x) = N(2, 2) for every x
    m, v = conditional_gaussian(
        [1.0, 2.0], [[3.0, 0.0], [0.0, 2.0]], torch.tensor([-3.0, 1.5, 9.0])
    )
    torch.testing.assert_close(m, torch.full((3,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(v, torch.full((3,), 2.0, dtype=torch.float64))


def test_conditional_matches_the_formula_and_the_normalised_slice():
    mean, x0 = [1.0, 2.0], 1.5
    m, v = conditional_gaussian(mean, CORRELATED, x0)
    # the textbook formula, written independently: μy + ρ σy/σx (x − μx), σy² (1 − ρ²)
    sx, sy = math.sqrt(3.0), math.sqrt(2.0)
    rho = 1.2 / (sx * sy)
    assert math.isclose(m.item(), 2.0 + rho * sy / sx * (x0 - 1.0), rel_tol=1e-12)
    assert math.isclose(v.item(), 2.0 * (1 - rho**2), rel_tol=1e-12)
    # the slice of scipy's joint density at x0, normalised numerically, has these moments
    joint = stats.multivariate_normal(mean, CORRELATED)

    def slice_(y):
        return joint.pdf([x0, y])

    z = integrate.quad(slice_, -30, 30)[0]
    assert math.isclose(z, stats.norm(1.0, sx).pdf(x0), rel_tol=1e-8)  # = the marginal p(x0)
    m_num = integrate.quad(lambda y: y * slice_(y), -30, 30)[0] / z
    v_num = integrate.quad(lambda y: (y - m_num) ** 2 * slice_(y), -30, 30)[0] / z
    assert math.isclose(m.item(), m_num, rel_tol=1e-7)
    assert math.isclose(v.item(), v_num, rel_tol=1e-7)


def test_conditional_matches_rejection_sampled_data():
    # draw from the joint with numpy (independent of aegen), keep points with x near x0
    rng = np.random.default_rng(0)
    mean, x0, h = np.array([1.0, 2.0]), -0.5, 0.02
    xy = rng.multivariate_normal(mean, CORRELATED, size=2_000_000)
    y = xy[np.abs(xy[:, 0] - x0) < h, 1]
    m, v = conditional_gaussian(mean.tolist(), CORRELATED, x0)
    assert len(y) > 5000
    # tolerances: 5 standard errors of the sample mean / variance (plus the window's width)
    assert abs(y.mean() - m.item()) < 5 * math.sqrt(v.item() / len(y)) + 0.01
    assert abs(y.var() - v.item()) < 5 * v.item() * math.sqrt(2 / len(y)) + 0.01
    assert stats.kstest(y, stats.norm(m.item(), math.sqrt(v.item())).cdf).pvalue > 1e-3


def test_conditional_is_batched():
    cov = torch.tensor([CORRELATED, [[1.0, -0.9], [-0.9, 1.0]]], dtype=torch.float64)
    m, v = conditional_gaussian(torch.zeros(2), cov, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(m, torch.tensor([0.4, -0.9], dtype=torch.float64))
    torch.testing.assert_close(v, torch.tensor([2 - 1.2**2 / 3, 1 - 0.81], dtype=torch.float64))
    with pytest.raises(ValueError, match="2-D"):
        conditional_gaussian([0.0, 0.0, 0.0], torch.eye(3), 1.0)


# -------------------------------------------------------------- KL divergences


def test_kl_categorical_lecture_table_and_scipy():
    kl = kl_categorical(P_LECTURE, Q_LECTURE)
    # the lecture's table: 0.1116 − 0.0863 + 0 = 0.0253 nats ≈ 0.036 bits
    assert math.isclose(
        kl.item(), 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.4), rel_tol=1e-12
    )
    assert round(kl.item(), 4) == 0.0253 and round(bits(kl).item(), 3) == 0.036
    assert math.isclose(kl.item(), stats.entropy(P_LECTURE, Q_LECTURE), rel_tol=1e-12)
    reverse = kl_categorical(Q_LECTURE, P_LECTURE)
    assert math.isclose(reverse.item(), stats.entropy(Q_LECTURE, P_LECTURE), rel_tol=1e-12)
    assert not math.isclose(kl.item(), reverse.item(), rel_tol=1e-3)  # asymmetric


def test_kl_categorical_zero_mass_and_batches():
    assert kl_categorical([0.0, 1.0], [0.5, 0.5]).item() == pytest.approx(math.log(2))
    assert kl_categorical([0.5, 0.5], [0.0, 1.0]).item() == math.inf
    ones = torch.ones(8, dtype=torch.float64)
    p = torch.distributions.Dirichlet(ones).sample((4, 3))  # (4, 3, 8)
    q = torch.distributions.Dirichlet(ones).sample((3,))  # (3, 8): broadcasts
    kl = kl_categorical(p, q)
    assert kl.shape == (4, 3) and (kl > 0).all()
    ref = stats.entropy(p.numpy(), np.broadcast_to(q.numpy(), p.shape), axis=-1)
    np.testing.assert_allclose(kl.numpy(), ref, rtol=1e-9)
    assert torch.equal(kl_categorical(p, p), torch.zeros(4, 3, dtype=torch.float64))


def test_kl_gaussian_lecture_example():
    # the lecture: P = N(0, 1), Q = N(1, 2²) → log 2 + 2/8 − 1/2 ≈ 0.4431 nats ≈ 0.64 bits
    kl = kl_gaussian(0.0, 1.0, 1.0, 2.0)
    assert math.isclose(kl.item(), math.log(2) + 0.25 - 0.5, rel_tol=1e-12)
    assert math.isclose(bits(kl).item(), 0.6393, abs_tol=1e-4)
    # the other direction: log ½ + (4 + 1)/2 − ½ ≈ 1.3069
    assert math.isclose(kl_gaussian(1.0, 2.0, 0.0, 1.0).item(), math.log(0.5) + 2.0, rel_tol=1e-12)


@pytest.mark.parametrize(
    "args", [(0.0, 1.0, 1.0, 2.0), (1.0, 2.0, 0.0, 1.0), (-3.0, 0.2, 0.5, 1.7)]
)
def test_kl_gaussian_matches_numerical_integration(args):
    mp, sp, mq, sq = args
    p, q = stats.norm(mp, sp), stats.norm(mq, sq)
    ref = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -60, 60, limit=200)[0]
    assert math.isclose(kl_gaussian(*args).item(), ref, rel_tol=1e-7)


def test_kl_gaussian_is_nonnegative_and_zero_for_equal_args():
    g = gen(10)
    mp, mq = torch.randn(1000, generator=g) * 3, torch.randn(1000, generator=g) * 3
    sp, sq = torch.rand(1000, generator=g) * 3 + 0.05, torch.rand(1000, generator=g) * 3 + 0.05
    assert (kl_gaussian(mp, sp, mq, sq) >= 0).all()
    assert torch.equal(kl_gaussian(mp, sp, mp, sp), torch.zeros(1000))


def test_kl_vae_matches_the_per_dimension_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 7, generator=g, dtype=torch.float64)
    per_dim = kl_gaussian(mu, torch.exp(0.5 * logvar), torch.zeros(()), torch.ones(()))
    assert kl_vae(mu, logvar).shape == (5,)
    torch.testing.assert_close(kl_vae(mu, logvar), per_dim.sum(-1))
    assert torch.all(kl_vae(torch.zeros(3, 4), torch.zeros(3, 4)) == 0)


def test_kl_vae_matches_torch_distributions():
    # an independent reference: torch.distributions' registered Normal–Normal KL
    g = gen(11)
    mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_vae(mu, logvar), ref, rtol=1e-5, atol=1e-6)
    assert (kl_vae(mu, logvar) >= 0).all()


# --------------------------------------------------------------- Monte Carlo


def _within(est, exact, k=5.0):
    """The closed form lies within k standard errors of the estimate, and the estimate is useful."""
    exact = torch.as_tensor(exact, dtype=torch.float64)
    assert (est.stderr > 0).all() and (est.stderr < 0.05).all()
    assert ((est.value - exact).abs() <= k * est.stderr).all(), (est, exact)


def test_monte_carlo_kl_categorical_both_directions():
    _within(
        kl_categorical_mc(P_LECTURE, Q_LECTURE, 200_000, gen(12)),
        kl_categorical(P_LECTURE, Q_LECTURE),
    )
    _within(
        kl_categorical_mc(Q_LECTURE, P_LECTURE, 200_000, gen(13)),
        kl_categorical(Q_LECTURE, P_LECTURE),
    )
    p = torch.distributions.Dirichlet(torch.ones(5)).sample((3,)).double()
    q = torch.distributions.Dirichlet(torch.ones(5)).sample((3,)).double()
    _within(kl_categorical_mc(p, q, 100_000, gen(14)), kl_categorical(p, q))
    same = kl_categorical_mc(p, p, 1000, gen())
    assert torch.equal(same.value, torch.zeros(3, dtype=torch.float64))


def test_monte_carlo_kl_gaussian_both_directions():
    _within(kl_gaussian_mc(0.0, 1.0, 1.0, 2.0, 200_000, gen(15)), kl_gaussian(0.0, 1.0, 1.0, 2.0))
    _within(kl_gaussian_mc(1.0, 2.0, 0.0, 1.0, 200_000, gen(16)), kl_gaussian(1.0, 2.0, 0.0, 1.0))
    mu = torch.tensor([[0.0, 1.0], [-2.0, 0.5]], dtype=torch.float64)
    est = kl_gaussian_mc(mu, 1.5, 0.0, torch.tensor([1.0, 2.0]), 100_000, gen(17))
    assert est.value.shape == (2, 2)
    _within(est, kl_gaussian(mu, 1.5, 0.0, torch.tensor([1.0, 2.0])))


def test_monte_carlo_kl_vae():
    g = gen(18)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64) * 0.5
    est = kl_vae_mc(mu, logvar, 100_000, gen(19))
    assert est.value.shape == (4,)
    _within(est, kl_vae(mu, logvar))
    with pytest.raises(ValueError, match="n >= 2"):
        kl_vae_mc(mu, logvar, 1)
