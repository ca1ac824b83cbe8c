"""Class coverage: which classes a generator's samples look like, by the feature network.

A generator that has collapsed onto a few modes draws a few kinds of garment; the
domain feature network (:mod:`aegen.eval.features`), a classifier, labels each
sample, and the histogram of those labels shows it. Its entropy in nats is ln 10 ≈
2.30 for ten equally likely classes and 0 for one; the test images' own histogram
is the reference a generator is held to.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..data.loader import to_float

__all__ = ["class_coverage", "class_histogram"]


@torch.no_grad()
def class_histogram(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000):
    """(C,) float64 share of ``images`` (uint8 (N, 28, 28) or float (N, 1, 28, 28)) that the
    classifier ``net`` puts in each of its C classes (the shares sum to 1)."""
    net.eval()
    counts = None
    for s in range(0, images.shape[0], batch_size):
        pred = net(to_float(images[s : s + batch_size]).float()).argmax(1)
        c = torch.bincount(pred, minlength=net.config.num_classes).double()
        counts = c if counts is None else counts + c
    if counts is None:
        raise ValueError("class_histogram needs at least one image")
    return counts / counts.sum()


def class_coverage(
    net: torch.nn.Module, images: torch.Tensor, rare: float = 0.25
) -> dict[str, Any]:
    """The class histogram of ``images`` and what it says: its entropy (nats), and the classes
    that hold less than ``rare`` × an equal share (1/C) of them (``rare_classes``, indices)."""
    hist = class_histogram(net, images)
    p = hist[hist > 0]
    entropy = max(0.0, float(-(p * p.log()).sum()))  # no "-0.00" for one class
    n_classes = hist.numel()
    return {
        "histogram": [float(v) for v in hist],
        "entropy_nats": entropy,
        "max_entropy_nats": math.log(n_classes),
        "rare_classes": [i for i, v in enumerate(hist.tolist()) if v < rare / n_classes],
    }
