"""A classifier on an autoencoder's features: standardised features, then a head.

Only the network and which of the backbone's weights it fine-tunes; training it
in the four modes and its directories are :mod:`aegen.classify`, its scores
:mod:`aegen.eval.classify`.

"The encoder" is found by gradient, not by name: the parameters that
``features(x)`` depends on (:func:`encoder_parameters`). That excludes the
decoder, a VAE's log-variance head, a VQ-VAE's codebook when features bypass it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loader import Batch, draw_images, float_like
from ..errors import UserError

__all__ = ["HEADS", "Classifier", "encoder_parameters", "make_head"]

HEADS = ("linear", "mlp")


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters ``model.features`` depends on, found by one backward pass.

    Generic over architectures: whatever a model calls its encoder, these are the
    weights a fine-tuned classifier can change through the features.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.enable_grad():
        f = model.features(x)
        grads = torch.autograd.grad(f.float().sum(), params, allow_unused=True)
    model.train(was_training)
    used = [p for p, g in zip(params, grads, strict=True) if g is not None]
    if not used:
        raise UserError(f"{model.registry_name}: features() depend on no trainable parameter")
    return used


def _feature_dim(model: nn.Module) -> int:
    was_training = model.training
    model.eval()  # one image through train-mode layers (batch norm) would be refused
    with torch.no_grad():
        dim = model.features(torch.zeros(1, 1, 28, 28)).shape[1]
    model.train(was_training)
    return dim


def make_head(dim: int, num_classes: int, kind: str, hidden: int, dropout: float) -> nn.Module:
    """A linear head, or Linear → ReLU → Dropout → Linear with ``hidden`` units.

    Only the MLP head has dropout: on the features themselves it starves a linear
    probe (measured: docs/semisup.md).
    """
    if kind == "linear":
        return nn.Linear(dim, num_classes)
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
    )


class Classifier(nn.Module):
    """An autoencoder's features, standardised, then a head: logits (B, C) for images (B, 1, 28, 28).

    ``frozen`` keeps the backbone in eval mode and out of the gradient (the probe).
    ``recon_weight > 0`` adds the backbone's own loss on ``recon_batch`` random
    ``unlabeled`` images (uint8, (N, 28, 28)) at each training step (joint mode);
    the draw uses the global torch RNG, which the Trainer checkpoints, so a
    resumed run draws the same batches.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        head: str = "linear",
        hidden: int = 256,
        dropout: float = 0.0,
        frozen: bool = False,
        recon_weight: float = 0.0,
        recon_batch: int = 32,
    ):
        super().__init__()
        self.backbone = backbone
        dim = _feature_dim(backbone)
        self.head = make_head(dim, num_classes, head, hidden, dropout)
        # fixed standardisation of the features, from unlabeled training images
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.frozen = frozen
        self.recon_weight = recon_weight
        self.recon_batch = recon_batch
        self.unlabeled: torch.Tensor | None = None
        self.train(self.training)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Centre and scale features by their mean and std over ``features`` (N, F)."""
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))

    def classify_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.head((f.float() - self.feature_mean) / self.feature_std)  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                f = self.backbone.features(x)
        else:
            f = self.backbone.features(x)  # (B, F)
        return self.classify_features(f)

    @staticmethod
    def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Mean cross-entropy (nats) and accuracy of logits (B, C) against labels (B,)."""
        ce = F.cross_entropy(logits.float(), y)
        return ce, {"ce": ce.detach(), "acc": (logits.argmax(1) == y).float().mean()}

    def feature_loss(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        """The probe's loss over precomputed features (``batch.x`` is (B, F))."""
        return self.ce_loss(self.classify_features(batch.x), batch.y)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        loss, logs = self.ce_loss(self(batch.x), batch.y)
        if self.recon_weight > 0:
            recon, _ = self.backbone.loss(self._reconstruction_batch(batch))
            logs["recon"] = recon.detach()
            loss = loss + self.recon_weight * recon
        return loss, logs

    def _reconstruction_batch(self, batch: Batch) -> Batch:
        # validation scores the reconstruction of its own images; training draws
        # from all training images, labeled or not
        if not self.training or self.unlabeled is None:
            return batch
        x = float_like(draw_images(self.unlabeled, self.recon_batch, batch.x), batch.x)
        return Batch(x, torch.full((x.shape[0],), -1, dtype=torch.long))
