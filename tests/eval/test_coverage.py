"""Class coverage of a generator's samples by a classifier (aegen.eval.coverage)."""

import math
from types import SimpleNamespace

import pytest
import torch

from aegen.eval.coverage import class_coverage, class_histogram


class _ByBrightness(torch.nn.Module):
    """A 'classifier' that puts an image in class round(mean pixel · (C − 1))."""

    def __init__(self, c: int):
        super().__init__()
        self.config = SimpleNamespace(num_classes=c)

    def forward(self, x):
        cls = (x.mean((1, 2, 3)) * (self.config.num_classes - 1)).round().long()
        return torch.nn.functional.one_hot(cls, self.config.num_classes).float()


def _images(classes, c=4):
    return torch.stack(
        [torch.full((28, 28), round(k / (c - 1) * 255), dtype=torch.uint8) for k in classes]
    )


def test_histogram_entropy_and_rare_classes_follow_the_labels():
    net = _ByBrightness(4)
    imgs = _images([0] * 50 + [1] * 40 + [2] * 9 + [3] * 1)
    assert class_histogram(net, imgs).tolist() == pytest.approx([0.5, 0.4, 0.09, 0.01])
    cov = class_coverage(net, imgs)  # rare: below 0.25 × 1/4 = 6.25 %
    assert cov["rare_classes"] == [3]
    p = torch.tensor([0.5, 0.4, 0.09, 0.01], dtype=torch.float64)
    assert cov["entropy_nats"] == pytest.approx(float(-(p * p.log()).sum()))
    assert cov["max_entropy_nats"] == pytest.approx(math.log(4))
    assert class_coverage(net, imgs, rare=0.5)["rare_classes"] == [2, 3]  # below 12.5 %


def test_one_class_is_zero_entropy_and_every_other_class_rare():
    cov = class_coverage(_ByBrightness(4), _images([2] * 30))
    assert cov["entropy_nats"] == 0.0 and cov["rare_classes"] == [0, 1, 3]
    with pytest.raises(ValueError, match="at least one"):
        class_coverage(_ByBrightness(4), torch.zeros(0, 28, 28, dtype=torch.uint8))
