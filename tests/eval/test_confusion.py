"""Predictions, the confusion matrix and accuracy (aegen.eval.classify)."""

from __future__ import annotations

import pytest
import torch

from aegen.eval.classify import accuracy, confusion_matrix


def test_confusion_matrix_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (300,), generator=g)
    pred = torch.where(
        torch.rand(300, generator=g) < 0.6, y, torch.randint(0, 4, (300,), generator=g)
    )
    cm = confusion_matrix(pred, y, 4)
    ref = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(y.tolist(), pred.tolist(), strict=True):
        ref[t, p] += 1
    assert torch.equal(cm, ref)
    assert accuracy(cm) == pytest.approx((pred == y).float().mean().item())
