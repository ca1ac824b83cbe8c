"""The contract of every generative model, checked for all registered ones at once.

A model that samples (:class:`aegen.models.abilities.Samples`) returns n images
(n, 1, 28, 28) in [0, 1]; the same generator seed gives the same images and
another seed other images. A prior samples code grids; paired with a VQ-VAE
(:func:`aegen.priors.sampling.sample_with`) it is held to the same contract.
Every model is untrained and small: the contract is about the interface, not
about quality. New sampling models must add a small config to ``SMALL``.
"""

from __future__ import annotations

import pytest
import torch

import aegen
from aegen.models.abilities import Reconstructs, Samples
from aegen.priors.sampling import sample_with
from aegen.registry import available, entry

VQVAE = {"num_codes": 8, "codebook_dim": 4, "channels": (4, 8), "res_blocks": 0}
# one small config per registered model that samples (priors model the VQ-VAE's grids)
SMALL = {
    "vae-mlp": {"hidden": (32,), "latent_dim": 4},
    "vae-conv": {"channels": (4, 8), "latent_dim": 4},
    "m2": {"channels": (4, 8), "latent_dim": 4, "hidden": 16},
    "flow": {"steps": 1, "channels": (4, 4)},
    "diffusion": {"channels": (4, 8, 8), "embed_dim": 8, "sample_steps": 3, "guidance": 2.0},
    "gan": {"channels": (4, 8), "latent_dim": 4},
    "pixelcnn": {"num_codes": 8, "d_model": 8, "n_layers": 1, "head_dim": 8},
    "pixelrnn": {"num_codes": 8, "embed_dim": 8, "d_model": 8, "n_layers": 1},
    "transformer": {"num_codes": 8, "d_model": 16, "n_layers": 1, "n_heads": 2},
    "maskgit": {"num_codes": 8, "d_model": 16, "n_layers": 1, "n_heads": 2},
}


def _samplers() -> list[str]:
    return [n for n in available(None) if isinstance(_build(n, strict=False), Samples)]


def _build(name: str, strict: bool = True):
    torch.manual_seed(0)
    if strict or name in SMALL:
        return aegen.build_model(name, SMALL[name])
    return aegen.build_model(name)


def _images(name: str, n: int, seed: int) -> torch.Tensor:
    model = _build(name)
    g = torch.Generator().manual_seed(seed)
    if entry(name).kind == "prior":
        torch.manual_seed(1)
        return sample_with(model, aegen.build_model("vqvae", VQVAE).eval(), n, generator=g)
    return model.eval().sample(n, generator=g)


def test_every_sampling_model_has_a_small_config():
    assert sorted(_samplers()) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_samples_are_images_in_0_1(name):
    x = _images(name, 5, seed=0)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_images_other_seed_other_images(name):
    a, b, c = _images(name, 4, seed=3), _images(name, 4, seed=3), _images(name, 4, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


AUTOENCODERS = [
    n for n in available("model") if callable(getattr(entry(n).cls, "reconstruct", None))
]


def test_the_generators_that_do_not_reconstruct_are_not_autoencoders():
    assert {"ae-mlp", "vae-conv", "vqvae"} <= set(AUTOENCODERS)
    assert not {"gan", "flow", "diffusion"} & set(AUTOENCODERS)


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_every_autoencoder_decodes_its_logits(name):
    """decode_logits(z) is the decoder's output before its activation, of the image's shape,
    and decode(z) is an image in [0, 1] computed from it."""
    model = _build(name, strict=False).eval()
    assert isinstance(model, Reconstructs)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = model.encode(x)
        logits, images = model.decode_logits(z), model.decode(z)
    assert logits.shape == images.shape == x.shape
    assert images.min() >= 0 and images.max() <= 1
    assert not torch.equal(logits, images)  # an activation (sigmoid or clamp) lies between
