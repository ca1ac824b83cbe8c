"""Labeled subsets: the few training images that keep their labels in semi-supervised learning.

The labeled images are a class-balanced subset of the training split, chosen
from a seed; for one seed, a smaller fraction's subset is part of every larger
one. The validation split is held out before any of this, so it never holds a
labeled image.
"""

from __future__ import annotations

import torch

from ..config import check
from .datasets import Dataset, Split

__all__ = ["labeled_indices", "labeled_split"]


def labeled_indices(y: torch.Tensor, fraction: float, seed: int, num_classes: int) -> torch.Tensor:
    """Sorted indices of a class-balanced labeled subset of labels ``y``.

    Each class keeps ``round(fraction · N / num_classes)`` images (at least one, at
    most all it has), the first ones of a permutation drawn from ``seed``; so for a
    fixed seed, the subset of a smaller fraction lies inside that of a larger one.
    ``fraction == 1`` keeps every index.
    """
    check(0 < fraction <= 1, f"the labeled fraction must be in (0, 1], got {fraction}")
    n = y.shape[0]
    if fraction == 1:
        return torch.arange(n)
    per_class = max(1, round(fraction * n / num_classes))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)  # one permutation, then stable per-class prefixes
    ranked = y[order]
    picked = [order[ranked == c][:per_class] for c in range(num_classes)]
    return torch.cat(picked).sort().values


def labeled_split(data: Dataset, fraction: float, seed: int) -> Split:
    """The labeled training images: a balanced subset of ``data.train`` (never validation)."""
    return data.train.subset(labeled_indices(data.train.y, fraction, seed, data.num_classes))
