"""The VAE's diagnostics: blur, active units, collapse (aegen.eval.vae)."""

import math

import pytest
import torch

import aegen
from aegen.eval.vae import active_units, laplacian_variance, vae_diagnostics


def test_laplacian_variance_against_scipy_and_blur():
    from scipy.signal import convolve2d

    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 1, 28, 28, generator=g)
    k = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    ref = [convolve2d(im[0].double().numpy(), k, mode="valid").var(ddof=1) for im in imgs]
    torch.testing.assert_close(
        laplacian_variance(imgs).double(), torch.tensor(ref), rtol=1e-4, atol=0
    )
    blurred = torch.nn.functional.avg_pool2d(imgs, 3, stride=1, padding=1)
    assert (laplacian_variance(blurred) < laplacian_variance(imgs) / 4).all()
    assert laplacian_variance(torch.full((1, 1, 28, 28), 0.3)).item() == 0


def test_active_units_and_collapse_warning(small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model("vae-mlp", hidden=(64,), latent_dim=6).eval()
    with torch.no_grad():  # dims 0 and 1 follow the input strongly; dims 2..5 ignore it
        model.to_params.weight[:6].zero_()
        model.to_params.weight[:2] = torch.randn(2, 64)
    diag = vae_diagnostics(model, small_synthetic.test, k=4, nll_images=50, sharpness_images=20)
    assert diag["active"] == [True, True, False, False, False, False]
    assert diag["active_units"] == 2 and diag["posterior_collapse"]
    assert "posterior collapse" in diag["warnings"][0]
    assert diag["nll"] <= -diag["elbo"] + 1.0  # IWAE NLL is not above −ELBO (beyond noise)
    assert math.isclose(diag["nll_bits_per_dim"], diag["nll"] / (784 * math.log(2)))
    assert sum(diag["kl_per_dim"]) == pytest.approx(diag["kl"], rel=1e-5)
    mu = torch.cat([torch.randn(500, 1), 0.01 * torch.randn(500, 1)], 1)
    assert active_units(mu).tolist() == [True, False]
