import math

import torch

from aegen.prob import bits, kl_gaussian, kl_vae


def test_kl_gaussian_lecture_example():
    # the lecture: P = N(0, 1), Q = N(1, 2²) → log 2 + 2/8 − 1/2 ≈ 0.4431 nats ≈ 0.64 bits
    kl = kl_gaussian(0.0, 1.0, 1.0, 2.0)
    assert math.isclose(kl.item(), math.log(2) + 0.25 - 0.5, rel_tol=1e-12)
    assert math.isclose(bits(kl).item(), 0.6393, abs_tol=1e-4)


def test_kl_vae_matches_the_per_dimension_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 7, generator=g, dtype=torch.float64)
    per_dim = kl_gaussian(mu, torch.exp(0.5 * logvar), torch.zeros(()), torch.ones(()))
    assert kl_vae(mu, logvar).shape == (5,)
    torch.testing.assert_close(kl_vae(mu, logvar), per_dim.sum(-1))
    assert torch.all(kl_vae(torch.zeros(3, 4), torch.zeros(3, 4)) == 0)
