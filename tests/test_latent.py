"""Paths and grids in a latent space (aegen.latent)."""

import math

import torch
from torch.distributions import Normal

from aegen.latent import lerp, prior_quantile_grid, slerp


def test_interpolation_paths():
    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    for path in (lerp, slerp):
        p = path(a, b, 5)
        assert p.shape == (5, 3)
        torch.testing.assert_close(p[0], a)
        torch.testing.assert_close(p[-1], b)
    torch.testing.assert_close(lerp(a, b, 3)[1], (a + b) / 2)
    # slerp: norms move linearly, direction along the great circle (45° at the middle)
    s = slerp(a, b, 5)
    torch.testing.assert_close(s.norm(dim=1), torch.linspace(3, 1, 5))
    torch.testing.assert_close(s[2] / s[2].norm(), torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2))
    torch.testing.assert_close(slerp(a, 2 * a, 3), lerp(a, 2 * a, 3))  # parallel: a line


def test_prior_quantile_grid():
    z = prior_quantile_grid(5, 0.1, 0.9)
    assert z.shape == (25, 2)
    assert z[12].abs().max() < 1e-6  # the centre is the median (0, 0)
    q = Normal(0.0, 1.0).cdf(z[:5, 0])
    torch.testing.assert_close(q, torch.linspace(0.1, 0.9, 5))
    assert (z[:5, 1] == z[0, 1]).all() and z[0, 1] > z[-1, 1]  # top row: largest z2
