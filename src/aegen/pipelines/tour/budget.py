"""The tour's shared budget: how much data, how many scored samples, the feature network.

Each part's own epochs and steps live in its module (``BUDGETS`` there), next to
the captions they produce; this is what every part shares.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUDGETS", "Budget"]


@dataclass(frozen=True)
class Budget:
    name: str
    limit: int  # first N training and test images (0: all)
    eval_n: int  # samples scored by FID/KID/precision/recall (and test images they meet)
    nll_images: int  # test images for the VAE's IWAE bound
    iwae_k: int
    features_epochs: int  # the feature network, when none is cached for the data set


BUDGETS = {
    "tiny": Budget("tiny", limit=600, eval_n=40, nll_images=20, iwae_k=4, features_epochs=1),
    "quick": Budget("quick", limit=0, eval_n=2000, nll_images=500, iwae_k=50, features_epochs=1),
    "full": Budget("full", limit=0, eval_n=10_000, nll_images=2000, iwae_k=100, features_epochs=4),
}
