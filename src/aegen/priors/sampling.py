"""Sampling images from a prior and a VQ-VAE: draw code grids, look them up, decode.

The models only, no directories (for those see :mod:`aegen.prior_runs`)::

    codes = sample_codes(prior, 100, generator=g)         # (100, H, W) long
    images = decode_codes(vqvae, codes)                    # (100, 1, 28, 28) in [0, 1]
    images = sample_with(prior, vqvae, 100, generator=g)   # both steps, checked
    sampler = balanced_sampler(lambda n, g, y: sample_with(prior, vqvae, n, g, label=y), 10)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import UserError

__all__ = ["balanced_sampler", "check_pair", "decode_codes", "sample_codes", "sample_with"]


def sample_codes(
    prior: torch.nn.Module,
    n: int,
    generator: torch.Generator | None = None,
    batch_size: int = 500,
    **kw: Any,
) -> torch.Tensor:
    """``n`` code grids (n, H, W) from ``prior``, ``batch_size`` at a time (same ``kw`` as sample)."""
    parts = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        label = kw.get("label")
        if isinstance(label, torch.Tensor) and label.dim():
            kw = {**kw, "label": label[start : start + m]}
        parts.append(prior.sample(m, generator=generator, **kw))
    return torch.cat(parts)


def check_pair(prior: torch.nn.Module, vqvae: torch.nn.Module) -> None:
    """Refuse a prior whose grids (K codes, H×W) are not the VQ-VAE's, with one line."""
    c = prior.config
    if c.num_codes != vqvae.num_codes or (c.height, c.width) != tuple(vqvae.grid):
        raise UserError(
            f"the prior models {c.height}×{c.width} grids of {c.num_codes} codes; the VQ-VAE has "
            f"{vqvae.grid[0]}×{vqvae.grid[1]} grids of {vqvae.num_codes}"
        )


@torch.no_grad()
def decode_codes(vqvae: torch.nn.Module, codes: torch.Tensor, batch_size: int = 1000):
    """Images (n, 1, 28, 28) in [0, 1] of code grids (n, H, W), ``batch_size`` at a time."""
    n = codes.shape[0]
    return torch.cat(
        [vqvae.decode_indices(codes[s : s + batch_size]) for s in range(0, n, batch_size)]
    )


def sample_with(
    prior: torch.nn.Module,
    vqvae: torch.nn.Module,
    n: int,
    generator: torch.Generator | None = None,
    return_codes: bool = False,
    **kw: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``n`` new images (n, 1, 28, 28) in [0, 1]: prior samples decoded by the VQ-VAE.

    ``kw`` goes to the prior's ``sample`` (label, temperature, top_k, use_cache, guidance);
    ``return_codes=True`` also returns the (n, H, W) code grids.
    """
    check_pair(prior, vqvae)
    codes = sample_codes(prior, n, generator, **kw)
    images = decode_codes(vqvae, codes)
    return (images, codes) if return_codes else images


def balanced_sampler(
    draw: Callable[[int, torch.Generator, torch.Tensor | None], torch.Tensor], classes: int
) -> Callable[[int, torch.Generator], torch.Tensor]:
    """A sampler ``(n, generator) -> images`` asking ``draw(n, generator, labels)`` for the
    classes in turn across its calls, 0, 1, …, C − 1, 0, … (labels None when ``classes`` is 0).

    n images of it hold every class n / C times (± 1), as the test set does, so their
    scores carry no noise from the label counts, and the images drawn for each label can
    be scored for being of that class (the pipeline's class accuracy).
    """
    drawn = 0

    def sampler(n: int, generator: torch.Generator) -> torch.Tensor:
        nonlocal drawn
        labels = torch.arange(drawn, drawn + n) % classes if classes else None
        drawn += n
        return draw(n, generator, labels)

    return sampler
