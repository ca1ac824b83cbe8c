"""A classifier's scores: its predictions, the confusion matrix and accuracy."""

from __future__ import annotations

import torch

from ..data.loader import to_float
from ..models.classifier import Classifier
from ..train import autocast

__all__ = ["accuracy", "confusion_matrix", "predict"]


@torch.no_grad()
def predict(clf: Classifier, x: torch.Tensor, batch_size: int = 1000, amp: str = "off"):
    """Predicted classes (N,) for uint8 images (N, 28, 28), in eval mode."""
    was_training = clf.training
    clf.eval()
    out = []
    for start in range(0, x.shape[0], batch_size):
        with autocast(amp):
            out.append(clf(to_float(x[start : start + batch_size])).argmax(1))
    clf.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)  # (N,): none for N = 0


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (C, C): row = true class, column = predicted class."""
    flat = y.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def accuracy(cm: torch.Tensor) -> float:
    """Fraction correct from a confusion matrix."""
    return float(cm.diagonal().sum()) / max(1, int(cm.sum()))
