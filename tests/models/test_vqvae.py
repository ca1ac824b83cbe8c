"""The VQ-VAE model: shapes, the round trip through codes, its quantizer options."""

import pytest
import torch

import aegen
from aegen.data.loader import Batch, to_float
from aegen.errors import ConfigError, DataError


@pytest.fixture
def vqvae():
    torch.manual_seed(0)
    return aegen.build_model("vqvae", num_codes=32, codebook_dim=8, channels=(8, 16), res_dim=8)


def test_vqvae_shapes_and_round_trip(vqvae, small_synthetic):
    x = to_float(small_synthetic.train.x[:64])
    vqvae.train()
    vqvae.loss(Batch(x, small_synthetic.train.y[:64]))  # k-means init
    vqvae.eval()
    idx = vqvae.encode_indices(x)
    assert idx.shape == (64, 7, 7) and idx.dtype == torch.long
    assert vqvae.codebook.shape == (32, 8)
    assert torch.equal(vqvae.encode(x), vqvae.codebook[idx].permute(0, 3, 1, 2))
    assert torch.equal(vqvae.decode_indices(idx), vqvae.reconstruct(x))
    assert vqvae.features(x).shape == (64, 8 * 49)


def test_vqvae_straight_through_reaches_the_encoder(vqvae, small_synthetic):
    x = to_float(small_synthetic.train.x[:8])
    loss, logs = vqvae.loss(Batch(x, small_synthetic.train.y[:8]))
    loss.backward()
    assert vqvae.encoder[0].weight.grad.abs().sum() > 0
    assert {"recon", "mse", "commitment", "perplexity", "codes_used"} <= set(logs)


def test_vqvae_refuses_bad_codes(vqvae):
    with pytest.raises(DataError, match="outside the codebook"):
        vqvae.decode_indices(torch.full((2, 7, 7), 32))
    with pytest.raises(DataError, match=r"\(N, 7, 7\)"):
        vqvae.decode_indices(torch.zeros(2, 6, 7, dtype=torch.long))
    with pytest.raises(DataError, match="integers"):
        vqvae.decode_indices(torch.zeros(2, 7, 7))


@pytest.mark.parametrize(
    "options",
    [
        {"cosine": True},
        {"rotation_trick": True},
        {"quantizer": "fsq", "fsq_levels": (2, 2, 2, 2, 2)},
    ],
)
def test_vqvae_with_quantizer_options_round_trips_and_learns(options, small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model(
        "vqvae", num_codes=32, codebook_dim=8, channels=(8, 16), res_dim=8, **options
    )
    x = to_float(small_synthetic.train.x[:64])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(40):
        loss, _ = model.loss(Batch(x, small_synthetic.train.y[:64]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.7 * first
    model.eval()
    idx = model.encode_indices(x)
    assert idx.min() >= 0 and idx.max() < 32
    assert torch.allclose(model.decode_indices(idx), model.reconstruct(x), atol=1e-6)
    assert model.codebook.shape == (32, 8)


def test_vqvae_quantizer_options_are_checked():
    with pytest.raises(ConfigError, match="make 256 codes"):
        aegen.build_model("vqvae", quantizer="fsq", num_codes=512)
    with pytest.raises(ConfigError, match="quantizer=vq only"):
        aegen.build_model("vqvae", quantizer="fsq", cosine=True)
    with pytest.raises(ConfigError, match="fsq_levels"):
        aegen.build_model("vqvae", quantizer="fsq", fsq_levels=(4, 1))
