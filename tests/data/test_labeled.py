"""The labeled subsets semi-supervised learning draws (aegen.data.labeled)."""

from __future__ import annotations

import hashlib

import pytest
import torch

import aegen
from aegen.data.labeled import labeled_indices, labeled_split


def _hashes(x: torch.Tensor) -> set[str]:
    return {hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in x}


def test_labeled_subset_is_balanced_reproducible_nested(synthetic):
    y = synthetic.train.y
    a = labeled_indices(y, 0.05, seed=3, num_classes=10)
    counts = torch.bincount(y[a], minlength=10)
    per_class = round(0.05 * len(y) / 10)
    assert counts.tolist() == [per_class] * 10
    assert torch.equal(a, labeled_indices(y, 0.05, seed=3, num_classes=10))  # reproducible
    assert not torch.equal(a, labeled_indices(y, 0.05, seed=4, num_classes=10))
    assert a.unique().numel() == a.numel()
    bigger = labeled_indices(y, 0.2, seed=3, num_classes=10)
    assert set(a.tolist()) <= set(bigger.tolist())  # nested across fractions
    assert torch.equal(labeled_indices(y, 1.0, seed=3, num_classes=10), torch.arange(len(y)))


def test_labeled_subset_is_disjoint_from_validation(synthetic):
    labeled = labeled_split(synthetic, 0.2, seed=0)
    assert len(labeled) == 2 * round(0.2 * len(synthetic.train) / 10) * 5
    assert _hashes(labeled.x).isdisjoint(_hashes(synthetic.val.x))
    assert _hashes(labeled.x) <= _hashes(synthetic.train.x)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_labeled_fraction_outside_unit_interval_is_refused(synthetic, bad):
    with pytest.raises(aegen.ConfigError, match="fraction"):
        labeled_indices(synthetic.train.y, bad, 0, 10)
