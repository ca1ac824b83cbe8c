"""Class coverage: which classes a generator's samples look like, by the feature network.

A generator that has collapsed onto a few modes draws a few kinds of garment; the
domain feature network (:mod:`aegen.eval.features`), a classifier, labels each
sample, and the histogram of those labels shows it. Its entropy in nats is ln 10 ≈
2.30 for ten equally likely classes and 0 for one; the test images' own histogram
is the reference a generator is held to.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.loader import to_float
from .metrics import class_coverage as coverage_of_labels

__all__ = ["class_coverage", "class_histogram", "predicted_classes"]


@torch.no_grad()
def predicted_classes(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000):
    """(N,) the class the classifier ``net`` gives each of ``images`` (uint8 (N, 28, 28) or
    float (N, 1, 28, 28))."""
    if images.shape[0] == 0:
        raise ValueError("class coverage needs at least one image")
    net.eval()
    return torch.cat(
        [
            net(to_float(images[s : s + batch_size]).float()).argmax(1)
            for s in range(0, images.shape[0], batch_size)
        ]
    )


def class_histogram(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000):
    """(C,) float64 share of ``images`` that the classifier ``net`` puts in each of its C
    classes (the shares sum to 1)."""
    pred = predicted_classes(net, images, batch_size)
    counts = torch.bincount(pred, minlength=net.config.num_classes).double()
    return counts / counts.sum()


def class_coverage(
    net: torch.nn.Module, images: torch.Tensor, rare: float = 0.25
) -> dict[str, Any]:
    """The class histogram of ``images`` (as shares) and what it says: its entropy (nats),
    and the classes that hold less than ``rare`` × an equal share (1/C) of them
    (``rare_classes``, indices). The numbers are :func:`aegen.eval.metrics.class_coverage`'s."""
    k = net.config.num_classes
    cov = coverage_of_labels(predicted_classes(net, images), k, min_share=rare / k)
    counts = torch.tensor(cov["histogram"], dtype=torch.float64)
    share = counts / counts.sum()
    return {
        "histogram": [float(v) for v in share],
        "entropy_nats": max(0.0, cov["entropy_nats"]),  # no "-0.00" for one class
        "max_entropy_nats": cov["max_entropy_nats"],
        "rare_classes": [i for i, v in enumerate(share.tolist()) if v < rare / k],
    }
