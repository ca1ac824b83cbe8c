"""What a model can do beyond training, as runtime-checkable Protocols.

Evaluation, the report and ``finish_run`` ask ``isinstance(model, Samples)``
instead of looking for attributes by name, so an ability is one declared
signature, in one place::

    if isinstance(model, Samples):
        images = model.sample(16, generator=torch.Generator().manual_seed(0))

``isinstance`` on a runtime-checkable Protocol checks that the methods exist, not
their signatures; the signatures below are the contract, and
``tests/models/test_generative_contract.py`` checks it for every registered model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from ..data.loader import Batch

__all__ = [
    "Reconstructs",
    "Samples",
    "ScoresCodeLikelihood",
    "ScoresLikelihood",
    "TrainingPhase",
    "TrainsInPhases",
]


@runtime_checkable
class Samples(Protocol):
    """A generative model: ``sample(n, generator)`` → n images (n, 1, 28, 28) in [0, 1].

    The same generator seed gives the same images. A prior over code grids also
    samples (grids, not images); it is reached through its VQ-VAE (see
    :mod:`aegen.priors.sampling`).
    """

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class ScoresLikelihood(Protocol):
    """A model with a likelihood: ``log_likelihood(x, k, generator)`` → (B,) log p(x) in nats
    (an estimate or a bound; the VAE's is the importance-weighted bound with k samples)."""

    def log_likelihood(
        self, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


@runtime_checkable
class Reconstructs(Protocol):
    """An autoencoder: ``reconstruct(x)`` → images in [0, 1] of the same shape as ``x``."""

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class TrainingPhase:
    """One optimiser of a model that owns several, and the loss it minimises.

    ``loss(batch) -> (loss, logs)`` is called, differentiated and stepped by the
    trainer with this phase's own AdamW over ``params`` (learning rate
    ``train.lr × lr_scale``, ``betas``); its state is saved under ``name`` in the
    checkpoint, and the loss is logged as ``{name}_loss``. The loss must not leave
    gradients on another phase's parameters that matter: each phase clears only
    its own before its backward pass.
    """

    name: str
    params: Sequence[torch.nn.Parameter]
    loss: Callable[[Batch], tuple[torch.Tensor, dict]]
    betas: tuple[float, float] = (0.9, 0.999)
    lr_scale: float = 1.0


@runtime_checkable
class TrainsInPhases(Protocol):
    """A model trained by several optimisers in turn on every batch (a GAN's D and G steps).

    ``training_phases()`` lists them in the order the trainer steps them; the one
    :class:`~aegen.train.Trainer` does the rest (learning-rate schedule, clipping
    per phase, the non-finite-loss policy, every optimiser's state in the
    checkpoint). ``loss(batch)`` is still the validation loss.
    """

    def training_phases(self) -> list[TrainingPhase]: ...


@runtime_checkable
class ScoresCodeLikelihood(Protocol):
    """A prior over code grids with an exact likelihood: ``nll_bits(codes, labels)`` → the
    mean negative log-likelihood in bits per code. The autoregressive priors have one; a
    masked (MaskGIT) prior does not, and reports no likelihood."""

    def nll_bits(
        self, codes: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
    ) -> float: ...
