"""What every autoencoder-family model offers, so trainer, CLI and evaluation stay generic.

A model is an ``nn.Module`` built from one dataclass config (``self.config``) with:

- ``encode(x) -> z`` and ``decode(z) -> x̂``; ``forward(x)`` is their composition;
  ``decode_logits(z)`` is the decoder's output before its last activation (the
  logits of a sigmoid output, a Gaussian decoder's mean), one name in every model;
- ``loss(batch) -> (loss, logs)``: a scalar to minimise and detached scalars to log
  (the trainer knows nothing else about models);
- ``reconstruct(x)``: images in [0, 1], the same shape as ``x``;
- ``features(x)``: one flat feature vector per image for classifiers (the code of
  an AE, μ of a VAE);
- ``family``: "ae", "vae", "vqvae", …, so a run of one family is never loaded as another;
- generative models add ``sample(n, generator=None)``; what a model can do beyond
  this is declared by the Protocols of :mod:`aegen.models.abilities`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..data.loader import Batch

__all__ = ["Autoencoder", "Logs"]

Logs = dict[str, torch.Tensor | float]


class Autoencoder(nn.Module):
    family: ClassVar[str] = "ae"
    registry_name: ClassVar[str]
    config_cls: ClassVar[type]

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1] of images ``x`` in [0, 1]."""
        return self(x).clamp(0, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) features for downstream classifiers; differentiable so encoders can be tuned."""
        return self.encode(x).flatten(1)
