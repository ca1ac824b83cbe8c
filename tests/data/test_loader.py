"""Batching by index and the uint8 → float conversion (aegen.data.loader)."""

import torch

from aegen.data.loader import epoch_batches, to_float


def test_epoch_batches_cover_each_index_once_and_shard():
    full = torch.cat(epoch_batches(103, 10, seed=1, epoch=2))
    assert full.numel() == 100 and full.unique().numel() == 100
    assert torch.equal(torch.cat(epoch_batches(103, 10, 1, 2)), full)
    assert not torch.equal(torch.cat(epoch_batches(103, 10, 1, 3)), full)
    r0 = epoch_batches(103, 10, 1, 2, rank=0, world=2)
    r1 = epoch_batches(103, 10, 1, 2, rank=1, world=2)
    for a, b, g in zip(r0, r1, epoch_batches(103, 10, 1, 2), strict=True):
        assert sorted(torch.cat([a, b]).tolist()) == sorted(g.tolist())


def test_to_float():
    x = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    f = to_float(x)
    assert f.shape == (1, 1, 1, 2) and f.dtype == torch.float32 and f.max() == 1.0
