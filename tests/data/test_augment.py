"""Batched augmentations: shape, dtype and range kept; seeded; each op does what it says."""

from __future__ import annotations

import pytest
import torch

from aegen.data.augment import contrast_brightness, cutout, shift_flip, strong_view
from aegen.data.loader import to_float

OPS = {
    "weak": lambda x, g: shift_flip(x, 2, generator=g),
    "strong": lambda x, g: strong_view(x, 3, generator=g),
    "cutout": lambda x, g: cutout(x, 10, generator=g),
    "contrast": lambda x, g: contrast_brightness(x, generator=g),
}


def _images(n: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=_g(123))


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("as_float", [False, True])
def test_shape_dtype_range_and_seeding(name, as_float):
    x = _images()
    if as_float:
        x = to_float(x)  # (B, 1, 28, 28) in [0, 1], as a training step sees it
    op = OPS[name]
    a, b, c = op(x, _g(0)), op(x, _g(0)), op(x, _g(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    top = 1.0 if as_float else 255
    assert a.min() >= 0 and a.max() <= top
    assert torch.equal(a, b)  # same seed, same batch
    assert not torch.equal(a, c)  # another seed, another batch
    assert not torch.equal(a, x)  # it changed something


def test_strong_view_differs_from_weak_view():
    x = _images()
    assert not torch.equal(strong_view(x, 2, generator=_g(0)), shift_flip(x, 2, generator=_g(0)))


def test_shift_flip_moves_each_image_by_its_own_offset():
    """A single bright pixel lands within max_shift of where it was (or of its mirror),
    and with many images every offset in the range occurs."""
    n, s = 400, 2
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 10, 5] = 255
    out = shift_flip(x, s, generator=_g(0))
    assert (out == 255).flatten(1).sum(1).eq(1).all()  # the pixel survives, nothing else lit
    where = (out == 255).flatten(1).float().argmax(1)
    r, c = where // 28, where % 28
    assert ((r - 10).abs() <= s).all()
    plain, mirrored = (c - 5).abs() <= s, (c - 22).abs() <= s  # 27 − 5 = 22
    assert (plain | mirrored).all()
    assert plain.any() and mirrored.any()
    assert set((r - 10).tolist()) == set(range(-s, s + 1))


def test_shift_brings_in_zeros_and_flip_mirrors():
    x = torch.full((200, 28, 28), 7, dtype=torch.uint8)
    out = shift_flip(x, 3, flip=False, generator=_g(0))
    assert set(out.unique().tolist()) == {0, 7}  # zeros enter at the border
    ramp = torch.arange(28, dtype=torch.uint8).expand(200, 28, 28).contiguous()
    flipped = shift_flip(ramp, 0, generator=_g(0))
    is_mirror = (flipped == ramp.flip(-1)).flatten(1).all(1)
    is_same = (flipped == ramp).flatten(1).all(1)
    assert (is_mirror | is_same).all() and is_mirror.any() and is_same.any()


def test_cutout_zeros_one_square_of_the_given_size():
    x = torch.full((50, 28, 28), 200, dtype=torch.uint8)
    out = cutout(x, 6, generator=_g(0))
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros <= 36).all() and (zeros > 0).all() and (zeros == 36).any()
    assert ((out == 0) | (out == 200)).all()
