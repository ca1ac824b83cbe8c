"""Small building blocks shared by the models: MLP stacks and convolutional blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ResidualBlock", "activation", "mlp"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (relu, gelu, silu, tanh, sigmoid)."""
    return _ACTIVATIONS[name]()


def mlp(sizes: Sequence[int], act: str = "relu", last_act: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] → sizes[1] → … → sizes[-1]`` with ``act`` between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(conv3x3(act(x)))): the VQ-VAE paper's residual block, shape-preserving."""

    def __init__(self, channels: int, hidden: int | None = None, act: str = "relu"):
        super().__init__()
        hidden = hidden or channels
        self.block = nn.Sequential(
            activation(act),
            nn.Conv2d(channels, hidden, 3, padding=1),
            activation(act),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)
