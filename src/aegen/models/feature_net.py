"""The domain feature network: a small CNN classifier whose penultimate layer embeds
28×28 grey images for FID, KID and precision/recall.

Only the network; training it, its directories and the embedding of images are
:mod:`aegen.eval.features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded
from ..data.loader import Batch
from ..registry import register

__all__ = ["MODEL_NAME", "FeatureNet", "FeatureNetConfig"]

MODEL_NAME = "feature-cnn"


@dataclass
class FeatureNetConfig:
    """conv → pool → conv → pool → linear (the features) → linear (class scores)."""

    channels: tuple[int, ...] = bounded((32, 64), ge=1, length=2)  # width at 28×28 and 14×14
    feature_dim: int = bounded(128, ge=2)
    num_classes: int = bounded(10, ge=2)
    # before the class layer only: the features themselves are not dropped
    dropout: float = bounded(0.3, ge=0, lt=1)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


@register(MODEL_NAME, FeatureNetConfig, kind="features")
class FeatureNet(nn.Module):
    """A small CNN classifier for 28×28 grey images; ``features(x)`` is its penultimate layer."""

    family: ClassVar[str] = "features"
    registry_name: ClassVar[str]

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.trunk = nn.Sequential(
            *_conv(1, c1), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            *_conv(c1, c2), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Flatten(),  # (B, c2·49)
            nn.Linear(c2 * 49, config.feature_dim), nn.ReLU(),  # (B, F): the features
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes)
        )

    @property
    def num_features(self) -> int:
        return self.config.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] → (B, F) penultimate activations."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))  # (B, classes) logits

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self(batch.x)
        ce = F.cross_entropy(logits, batch.y)
        acc = (logits.argmax(1) == batch.y).float().mean()
        return ce, {"acc": acc.detach()}
