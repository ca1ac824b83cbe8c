"""A test-only generative model whose samples and likelihood are known in advance.

``FakeSampler`` stands in for the VAE (family "vae") until the real one exists:
``sample`` returns either real synthetic images (a perfect generator), uniform
noise (a useless one) or real images with their pixels shuffled; its
``log_likelihood`` is the exact density of independent N(0.5, 1) pixels, so the
NLL evaluation reports has a closed form. It is registered only inside tests,
through :func:`registered`, never in the package registry.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch
from torch import nn

from aegen import registry
from aegen.checkpoint import save_model, write_config
from aegen.config import to_dict
from aegen.data.datasets import make_synthetic
from aegen.data.loader import to_float
from aegen.models.base import Autoencoder

NAME = "test-fake-sampler"


@dataclass
class FakeSamplerConfig:
    mode: Literal["data", "noise", "shuffled"] = "data"


class FakeSampler(Autoencoder):
    family = "vae"

    def __init__(self, config: FakeSamplerConfig):
        super().__init__(config)
        self.scale = nn.Parameter(torch.ones(()))  # something to save and load
        # a pool of real images the "data" sampler draws from (not the test images)
        self.register_buffer("pool", make_synthetic(600, seed=99).x, persistent=False)

    def encode(self, x):
        return x.flatten(1)

    def decode(self, z):
        return z.view(-1, 1, 28, 28) * self.scale

    def sample(self, n, generator=None, temperature=1.0):
        if self.config.mode == "noise":
            return torch.rand(n, 1, 28, 28, generator=generator)
        index = torch.randint(0, self.pool.shape[0], (n,), generator=generator)
        x = to_float(self.pool[index])
        if self.config.mode == "shuffled":
            perm = torch.randperm(28 * 28, generator=generator)
            x = x.flatten(1)[:, perm].view(n, 1, 28, 28)
        return x

    def log_likelihood(self, x, k=1, generator=None):
        """log N(x; 0.5, I) in nats: exact, so the importance samples do not matter."""
        d = x[0].numel()
        return -0.5 * (x - 0.5).pow(2).flatten(1).sum(1) - 0.5 * d * math.log(2 * math.pi)


@contextlib.contextmanager
def registered():
    """Make ``NAME`` loadable from run directories for the duration of the block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(
            registry._REGISTRY,
            NAME,
            registry.Entry(NAME, FakeSampler, FakeSamplerConfig, "model"),
        )
        mp.setattr(FakeSampler, "registry_name", NAME, raising=False)
        yield


def make_run(
    directory: Path, mode: str = "data", data: str = "synthetic", limit: int = 1200
) -> Path:
    """A run directory of the fake model, as training would leave it (no training needed)."""
    model = FakeSampler(FakeSamplerConfig(mode=mode))
    directory.mkdir(parents=True, exist_ok=True)
    write_config(
        directory,
        {
            "model": NAME,
            "model_config": to_dict(model.config),
            "data": {"name": data, "data_dir": None, "val_size": 200, "limit": limit},
            "family": model.family,
        },
    )
    save_model(directory / "model.safetensors", model)
    return directory
