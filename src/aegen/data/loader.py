"""Batching in-memory uint8 data by index: no per-sample Python, no worker processes.

Each epoch's order is a permutation drawn from a generator seeded by
``(seed, epoch)``, so the order of any epoch can be rebuilt after a restart
(exact resume) and split across ranks without communication.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "Batch",
    "draw_images",
    "epoch_batches",
    "epoch_permutation",
    "float_like",
    "num_batches",
    "to_float",
]


class Batch(NamedTuple):
    """What ``model.loss`` receives: images (B, 1, 28, 28) float in [0, 1], labels (B,) int64."""

    x: torch.Tensor
    y: torch.Tensor


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, H, W) → float32 (B, 1, H, W) in [0, 1]; float data passes through.

    Data sets that are not images (the plane demo's 3-D points) are stored as float
    and reach the model as they are.
    """
    if x.dtype != torch.uint8:
        return x
    return x.unsqueeze(1).to(torch.float32).div_(255.0)


def draw_images(pool: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """``n`` random images of ``pool`` (uint8, (N, 28, 28)) on the device of the batch
    ``like``, drawn with the global torch RNG (which the Trainer checkpoints, so a
    resumed run draws the same ones)."""
    return pool[torch.randint(pool.shape[0], (n,))].to(like.device)


def float_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """uint8 images as float (B, 1, 28, 28) in the memory format of the batch ``like``."""
    x = to_float(x)
    if like.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation of range(n) fixed by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def epoch_batches(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    drop_last: bool = True,
    rank: int = 0,
    world: int = 1,
) -> list[torch.Tensor]:
    """Index tensors for each step of an epoch.

    ``batch_size`` is the global batch; with ``world`` > 1 rank ``r`` gets the
    r-th strided share of every global batch, so all ranks step together.
    """
    perm = epoch_permutation(n, seed, epoch)
    steps = num_batches(n, batch_size, drop_last)
    out = []
    for i in range(steps):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        out.append(idx[rank::world] if world > 1 else idx)
    return out
