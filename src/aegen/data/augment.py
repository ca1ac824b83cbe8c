"""Batched image augmentations for consistency training: weak (shift, flip) and strong views.

Every function takes a batch of images, ``(B, H, W)`` uint8 as the data sets hold
them in memory or ``(B, 1, H, W)`` float in [0, 1] as a training step sees them,
and returns a batch of the same shape, dtype and range. Each image gets its own
random parameters, drawn at once for the whole batch from ``generator`` (None: the
global torch RNG, which the Trainer checkpoints, so a resumed run draws the same
views); the work is a handful of tensor ops, with no Python loop over images.

- :func:`shift_flip` (the weak view): each image moves by up to ``max_shift``
  pixels in x and y, with zeros entering at the border (pad and crop at a random
  offset, done as one gather), and is mirrored left-right with probability ½.
- :func:`cutout`: one square of zeros per image, at a random centre (it may reach
  over the border, as in DeVries & Taylor 2017).
- :func:`contrast_brightness`: ``(x − mean) · c + mean + b``, with a random contrast
  factor c and brightness offset b per image, clipped back to the range.
- :func:`strong_view`: shift and flip, then contrast/brightness, then cutout.

Vertical flips are left out on purpose: on Fashion-MNIST they turn shoes and bags
upside down, which the test images never are.
"""

from __future__ import annotations

import torch

__all__ = ["contrast_brightness", "cutout", "shift_flip", "strong_view"]


def _as_planes(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(B, H, W) from (B, H, W) or (B, 1, H, W); the flag says whether to add the channel back."""
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"expected one channel, got shape {tuple(x.shape)}")
        return x[:, 0], True
    if x.ndim != 3:
        raise ValueError(f"expected images (B, H, W) or (B, 1, H, W), got shape {tuple(x.shape)}")
    return x, False


def _back(x: torch.Tensor, channel: bool) -> torch.Tensor:
    return x.unsqueeze(1) if channel else x


def _top(x: torch.Tensor) -> float:
    """The brightest value of the dtype's range: 255 for uint8, 1 for float images."""
    return 255.0 if x.dtype == torch.uint8 else 1.0


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)


def shift_flip(
    x: torch.Tensor,
    max_shift: int = 2,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random translation by up to ``max_shift`` px (zeros enter) and a left-right flip (p = ½)."""
    planes, channel = _as_planes(x)
    b, h, w = planes.shape
    dev = planes.device
    dy = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator, device=dev)
    dx = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator, device=dev)
    mirror = torch.rand(b, generator=generator, device=dev) < 0.5 if flip else None
    rows = torch.arange(h, device=dev)[None, :] - dy[:, None]  # (B, H): source row of each row
    cols = torch.arange(w, device=dev)[None, :] - dx[:, None]  # (B, W)
    if mirror is not None:
        cols = torch.where(mirror[:, None], w - 1 - cols, cols)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = torch.arange(b, device=dev)[:, None, None]
    moved = planes[batch, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    out = torch.where(inside, moved, torch.zeros((), dtype=planes.dtype, device=dev))
    return _back(out, channel)  # (B, H, W) gathered in one indexing op


def cutout(
    x: torch.Tensor, size: int = 10, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero one ``size`` × ``size`` square per image, centred anywhere in the image."""
    planes, channel = _as_planes(x)
    b, h, w = planes.shape
    dev = planes.device
    cy = torch.randint(0, h, (b,), generator=generator, device=dev)
    cx = torch.randint(0, w, (b,), generator=generator, device=dev)
    lo_y, lo_x = cy - size // 2, cx - size // 2
    r = torch.arange(h, device=dev)[None, :]
    c = torch.arange(w, device=dev)[None, :]
    in_rows = (r >= lo_y[:, None]) & (r < lo_y[:, None] + size)  # (B, H)
    in_cols = (c >= lo_x[:, None]) & (c < lo_x[:, None] + size)  # (B, W)
    square = in_rows[:, :, None] & in_cols[:, None, :]
    out = planes.masked_fill(square, 0)
    return _back(out, channel)


def contrast_brightness(
    x: torch.Tensor,
    contrast: tuple[float, float] = (0.5, 1.5),
    brightness: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per image: contrast factor c ~ U(contrast), offset b ~ U(±brightness · top), clipped.

    ``top`` is the brightest value (255 for uint8); uint8 results are rounded.
    """
    planes, channel = _as_planes(x)
    b = planes.shape[0]
    dev = planes.device
    top = _top(planes)
    c = _uniform(b, *contrast, generator, dev)[:, None, None]
    off = _uniform(b, -brightness, brightness, generator, dev)[:, None, None] * top
    f = planes.float()
    mean = f.mean(dim=(1, 2), keepdim=True)
    out = ((f - mean) * c + mean + off).clamp(0, top)
    if planes.dtype == torch.uint8:
        out = out.round()
    return _back(out.to(planes.dtype), channel)


def strong_view(
    x: torch.Tensor,
    max_shift: int = 3,
    cutout_size: int = 10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The strong view: shift and flip, contrast and brightness, then cutout."""
    x = shift_flip(x, max_shift, generator=generator)
    x = contrast_brightness(x, generator=generator)
    return cutout(x, cutout_size, generator=generator)
