"""Classifiers on an autoencoder's features, and the labeled subsets they learn from.

The lecture's question: an autoencoder learned a representation from images
without labels; how good a classifier does it give when only a few labels
exist? Four ways to answer, all over the generic ``model.features(x)`` → (B, F)
of any registered autoencoder (the code of an AE, μ of a VAE, …):

- ``probe``: the encoder is frozen; a head (linear, or a small MLP) learns from
  its features. The features are computed once, so probes cost seconds.
- ``finetune``: the head and the encoder learn together, from the AE's weights.
- ``scratch``: the same architecture from a random initialisation — the
  baseline that says what the unlabeled pre-training bought.
- ``joint``: from the AE's weights, cross-entropy on the labeled images plus
  ``recon_weight`` × the model's own loss on random batches of *all* training
  images, so the unlabeled images keep shaping the encoder while it learns labels.
- ``consistency``: from the AE's weights, FixMatch-style (Sohn et al. 2020):
  cross-entropy on weakly augmented labeled images plus ``unlabeled_weight`` × the
  cross-entropy of strongly augmented unlabeled images against the class the
  model predicts for a weak view of them, where it is at least ``threshold`` sure
  (:class:`ConsistencyLoss`, augmentations from :mod:`aegen.data.augment`).
- ``m2``: no autoencoder at all: Kingma et al.'s semi-supervised VAE
  (:mod:`aegen.models.m2`) trained from scratch on the labeled images and
  ``unlabeled_ratio`` × as many unlabeled ones per step; its q(y|x) is the classifier.

The unlabeled images of ``joint``, ``consistency`` and ``m2`` are drawn at every
step from all training images (labeled or not) with the global torch RNG, which the
Trainer checkpoints, so a resumed run draws the same ones.

"The encoder" is found by gradient, not by name: the parameters that
``features(x)`` depends on (:func:`encoder_parameters`). That excludes the
decoder, a VAE's log-variance head, a VQ-VAE's codebook when features bypass it.

The labeled images are a class-balanced subset of the training split, chosen
from a seed (:func:`labeled_indices`); for one seed, a smaller fraction's subset
is part of every larger one. The validation split is held out before any of
this, so it never holds a labeled image; it is monitored, never used to pick
weights: results are the final weights' test accuracy.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (
    MODEL,
    build_model_from_config,
    load,
    load_config,
    load_state_dict,
    weights_hash,
    write_config,
)
from .config import TrainConfig, bounded, check, check_bounds, from_dict, to_dict
from .data.augment import shift_flip, strong_view
from .data.datasets import Dataset, Split
from .data.loader import Batch, to_float
from .errors import CheckpointError, UserError
from .files import atomic_write_json
from .models.base import Autoencoder
from .models.m2 import M2, M2Config
from .train import Trainer, autocast, seed_everything

__all__ = [
    "CLASSIFIER_JSON",
    "HEADS",
    "MODES",
    "ClassifyConfig",
    "ClassifyResult",
    "Classifier",
    "ConsistencyLoss",
    "M2Classifier",
    "M2Loss",
    "FeatureSet",
    "accuracy",
    "confusion_matrix",
    "encode_features",
    "encoder_parameters",
    "labeled_indices",
    "labeled_split",
    "load_classifier",
    "load_encoder_model",
    "make_head",
    "predict",
    "save_confusion",
    "train_classifier",
    "write_classifier_json",
]

MODES = ("probe", "finetune", "scratch", "joint", "consistency", "m2")
HEADS = ("linear", "mlp")
CLASSIFIER_JSON = "classifier.json"

Mode = Literal["probe", "finetune", "scratch", "joint", "consistency", "m2"]
WEAK_SHIFT = 2  # px, the weak view's largest shift (FixMatch: 12.5 % of the side)
STRONG_SHIFT = 3  # px, the strong view's


@dataclass
class ClassifyConfig:
    """How to train one classifier: mode, head, which labels, and the training budget.

    The budget is ``epochs`` passes over the labeled images but at least
    ``min_steps`` optimiser steps: a 1 % subset (550 Fashion-MNIST images) is a few
    batches, so small subsets are repeated within an epoch to reach ``min_steps``.
    """

    mode: Mode = "probe"
    head: Literal["linear", "mlp"] = "linear"
    hidden: int = 256  # width of the MLP head's hidden layer
    dropout: float = 0.2  # before the MLP head's last layer
    labels: float = 1.0  # fraction of the training split that keeps its labels, in (0, 1]
    seed: int = 0  # picks the labeled subset, the initialisation and the data order
    epochs: int = 8
    min_steps: int = 500
    batch_size: int = 128
    lr: float | None = None  # None: 1e-2 for a probe (only a head learns), 1e-3 otherwise
    weight_decay: float = 0.0
    recon_weight: float = 1.0  # joint: weight of the reconstruction loss on all images
    recon_batch: int = 32  # joint: images per step for that loss (the decoder is costly)
    head_steps: int = 300  # finetune, scratch, joint, consistency: train the head alone first
    # consistency and m2: unlabeled images per step, as a multiple μ of the labeled batch
    unlabeled_ratio: int = bounded(2, ge=1)
    # consistency: λ on the masked cross-entropy; m2: on the unlabeled −ELBO (0: labeled only)
    unlabeled_weight: float = bounded(1.0, ge=0)
    threshold: float = bounded(0.95, gt=0, le=1)  # consistency: confidence τ for a pseudo-label
    alpha: float = bounded(50.0, ge=0)  # m2: weight of the labeled cross-entropy per image
    amp: Literal["auto", "bf16", "off"] = "off"
    channels_last: bool = False

    def validate(self) -> None:
        check(0 < self.labels <= 1, f"labels must be a fraction in (0, 1], got {self.labels}")
        check(self.hidden >= 1, f"hidden must be at least 1, got {self.hidden}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        check(self.min_steps >= 0, f"min_steps must be >= 0, got {self.min_steps}")
        check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        check(self.lr is None or self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.head_steps >= 0, f"head_steps must be >= 0, got {self.head_steps}")
        check(self.recon_batch >= 1, f"recon_batch must be at least 1, got {self.recon_batch}")
        check(self.recon_weight >= 0, f"recon_weight must be >= 0, got {self.recon_weight}")


# --------------------------------------------------------------------------- labeled subsets


def labeled_indices(y: torch.Tensor, fraction: float, seed: int, num_classes: int) -> torch.Tensor:
    """Sorted indices of a class-balanced labeled subset of labels ``y``.

    Each class keeps ``round(fraction · N / num_classes)`` images (at least one, at
    most all it has), the first ones of a permutation drawn from ``seed``; so for a
    fixed seed, the subset of a smaller fraction lies inside that of a larger one.
    ``fraction == 1`` keeps every index.
    """
    check(0 < fraction <= 1, f"the labeled fraction must be in (0, 1], got {fraction}")
    n = y.shape[0]
    if fraction == 1:
        return torch.arange(n)
    per_class = max(1, round(fraction * n / num_classes))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)  # one permutation, then stable per-class prefixes
    ranked = y[order]
    picked = [order[ranked == c][:per_class] for c in range(num_classes)]
    return torch.cat(picked).sort().values


def labeled_split(data: Dataset, fraction: float, seed: int) -> Split:
    """The labeled training images: a balanced subset of ``data.train`` (never validation)."""
    return data.train.subset(labeled_indices(data.train.y, fraction, seed, data.num_classes))


# --------------------------------------------------------------------------- encoders


def load_encoder_model(run_dir: str | Path, best: bool = False) -> Autoencoder:
    """Load a run whose model has an encoder with ``features(x)``; refuse anything else."""
    d = Path(run_dir)
    model = load(d, best=best)
    family = getattr(model, "family", "?")
    if not isinstance(model, Autoencoder) or family == "prior":
        raise CheckpointError(
            f"{d}: is a {family} run ({model.registry_name}) without an encoder; "
            "classify needs an autoencoder run (ae, vae or vqvae)"
        )
    try:
        with torch.no_grad():
            f = model.features(torch.zeros(1, 1, 28, 28))
    except NotImplementedError:
        raise CheckpointError(f"{d}: model {model.registry_name} offers no features()") from None
    if f.ndim != 2:
        raise CheckpointError(f"{d}: features() of {model.registry_name} are not (B, F)")
    return model


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


@dataclass
class FeatureSet:
    """Features (float, (N, F)) of every split of a data set, computed once per encoder."""

    data: Dataset  # splits hold features in x, labels in y

    @property
    def dim(self) -> int:
        return self.data.train.x.shape[1]


@torch.no_grad()
def _features_of(model: nn.Module, x: torch.Tensor, amp: str, batch_size: int = 1000):
    out = []
    for start in range(0, x.shape[0], batch_size):
        with autocast(amp):
            out.append(model.features(to_float(x[start : start + batch_size])).float())
    return torch.cat(out)  # (N, F)


def encode_features(model: nn.Module, data: Dataset, amp: str = "off") -> FeatureSet:
    """Frozen features of every train, validation and test image (eval mode, no gradient)."""
    was_training = model.training
    model.eval()
    splits = [Split(_features_of(model, s.x, amp), s.y) for s in (data.train, data.val, data.test)]
    model.train(was_training)
    return FeatureSet(dataclasses.replace(data, train=splits[0], val=splits[1], test=splits[2]))


# --------------------------------------------------------------------------- the classifier


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
    probe (measured: 80% instead of 84% with all labels on the MLP AE's code).
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
        idx = torch.randint(self.unlabeled.shape[0], (self.recon_batch,))
        x = to_float(self.unlabeled[idx]).to(batch.x.device)
        if batch.x.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return Batch(x, torch.full((x.shape[0],), -1, dtype=torch.long))


def _draw_unlabeled(pool: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """``n`` random uint8 images of ``pool`` (N, 28, 28), drawn with the global torch RNG."""
    return pool[torch.randint(pool.shape[0], (n,))].to(like.device)


def _float_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """uint8 images as float (B, 1, 28, 28) in the memory format of the batch ``like``."""
    x = to_float(x)
    if like.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class ConsistencyLoss:
    """The ``consistency`` mode's loss for the Trainer (FixMatch, Sohn et al. 2020).

    Per step, with B labeled images and μB unlabeled ones drawn from ``unlabeled``
    (uint8, (N, 28, 28), all training images)::

        CE(f(weak(x_l)), y) + λ · mean_u [ 1{max p ≥ τ} · CE(f(strong(x_u)), argmax p) ]

    with p = softmax f(weak(x_u)) computed without gradient (the pseudo-label is a
    target, not something to move). The mean runs over all μB images, so the
    unlabeled term grows as more of them pass the threshold. Validation is plain
    cross-entropy on the unaugmented images. λ = 0 leaves the supervised run with
    weak augmentation (the baseline the unlabeled term is measured against).
    """

    def __init__(self, clf: Classifier, unlabeled: torch.Tensor, cfg: ClassifyConfig):
        self.clf = clf
        self.unlabeled = unlabeled
        self.ratio = cfg.unlabeled_ratio
        self.weight = cfg.unlabeled_weight
        self.threshold = cfg.threshold

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        clf = self.clf
        if not clf.training:
            return clf.ce_loss(clf(batch.x), batch.y)
        loss, logs = clf.ce_loss(clf(shift_flip(batch.x, WEAK_SHIFT)), batch.y)
        if self.weight == 0:
            return loss, logs
        u = _draw_unlabeled(self.unlabeled, self.ratio * batch.x.shape[0], batch.x)
        weak = _float_like(shift_flip(u, WEAK_SHIFT), batch.x)
        strong = _float_like(strong_view(u, STRONG_SHIFT), batch.x)
        with torch.no_grad():
            conf, pseudo = clf(weak).float().softmax(-1).max(-1)  # (μB,) each
        mask = (conf >= self.threshold).float()
        ce_u = F.cross_entropy(clf(strong).float(), pseudo, reduction="none")
        unlabeled = (ce_u * mask).mean()
        logs.update({"unlabeled_ce": unlabeled.detach(), "mask_rate": mask.mean()})
        return loss + self.weight * unlabeled, logs


class M2Loss:
    """The ``m2`` mode's loss for the Trainer: the labeled batch plus μB unlabeled images
    (labels −1) drawn from ``unlabeled``, through :meth:`aegen.models.m2.M2.loss`.

    In validation only the labeled images count (the validation split has labels).
    """

    def __init__(self, model: M2, unlabeled: torch.Tensor, ratio: int):
        self.model = model
        self.unlabeled = unlabeled
        self.ratio = ratio

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        if not self.model.training or self.model.config.unlabeled_weight == 0:
            return self.model.loss(batch)
        u = _draw_unlabeled(self.unlabeled, self.ratio * batch.x.shape[0], batch.x)
        x = torch.cat([batch.x, _float_like(u, batch.x)])
        y = torch.cat(
            [batch.y, torch.full((u.shape[0],), -1, dtype=batch.y.dtype, device=x.device)]
        )
        return self.model.loss(Batch(x, y))


class M2Classifier(nn.Module):
    """An M2 model seen as a classifier: logits of its q(y|x), (B, K), for images (B, 1, 28, 28)."""

    def __init__(self, model: M2):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.class_logits(x)


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(clf: Classifier, x: torch.Tensor, batch_size: int = 1000, amp: str = "off"):
    """Predicted classes (N,) for uint8 images (N, 28, 28), in eval mode."""
    was_training = clf.training
    clf.eval()
    out = []
    for start in range(0, x.shape[0], batch_size):
        with autocast(amp):
            out.append(clf(to_float(x[start : start + batch_size])).argmax(1))
    clf.train(was_training)
    return torch.cat(out)


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (C, C): row = true class, column = predicted class."""
    flat = y.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def accuracy(cm: torch.Tensor) -> float:
    """Fraction correct from a confusion matrix."""
    return float(cm.diagonal().sum()) / max(1, int(cm.sum()))


def save_confusion(path: str | Path, cm: torch.Tensor, classes: list[str], title: str = "") -> Path:
    """The confusion matrix as a PNG: rows true, columns predicted, shaded by row share."""
    from .viz import figure, save_figure

    counts = cm.double()
    share = counts / counts.sum(1, keepdim=True).clamp_min(1)
    c = len(classes)
    fig = figure(7, 6)
    ax = fig.add_subplot(111)
    ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(c), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(c), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {accuracy(cm):.2%}")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- training


@dataclass
class ClassifyResult:
    """A trained classifier and how it did (accuracies are fractions, on the final weights)."""

    classifier: Classifier
    test_acc: float
    val_acc: float
    confusion: torch.Tensor  # (C, C) on the test split
    n_labeled: int
    steps: int
    epochs: int
    seconds: float
    history: list[dict[str, Any]]
    cpu_seconds: float = float("nan")  # CPU time of this process (all threads), time.process_time


def _repeat_to(split: Split, images: int) -> Split:
    """``split`` repeated whole until it holds at least ``images`` items."""
    r = max(1, math.ceil(images / len(split)))
    return (
        split if r == 1 else Split(split.x.repeat(r, *[1] * (split.x.ndim - 1)), split.y.repeat(r))
    )


def _plan(cfg: ClassifyConfig, n_labeled: int) -> tuple[int, int]:
    """(batch size, items per epoch) giving ``cfg.epochs`` epochs of at least min_steps in all."""
    batch = min(cfg.batch_size, n_labeled)
    steps_per_epoch = max(n_labeled // batch, math.ceil(cfg.min_steps / cfg.epochs))
    return batch, steps_per_epoch * batch


def _warm_head(clf: Classifier, labeled: Split, cfg: ClassifyConfig, tcfg: TrainConfig) -> None:
    """Train the head alone on the frozen features of the labeled images (the "LP" of LP-FT).

    A random head's first gradients would otherwise flow into, and distort, the
    pretrained features before the head knows anything.
    """
    f = _features_of(clf.backbone.eval(), labeled.x, cfg.amp)  # (N, F)
    empty = Split(f[:0], labeled.y[:0])
    warm = Dataset(
        "features",
        _repeat_to(Split(f, labeled.y), cfg.head_steps * tcfg.batch_size),
        empty,
        empty,
        [],
    )
    head_cfg = dataclasses.replace(tcfg, epochs=1, lr=1e-2, channels_last=False)
    Trainer(
        clf, head_cfg, None, params=clf.head.parameters(), loss_fn=clf.feature_loss, progress=False
    ).fit(warm)


def train_classifier(
    model: nn.Module | None,
    data: Dataset,
    cfg: ClassifyConfig,
    out_dir: str | Path | None = None,
    features: FeatureSet | None = None,
    progress: bool = False,
) -> ClassifyResult:
    """Train a classifier on ``model`` as ``cfg.mode`` says; ``model`` itself is not changed
    (``m2`` trains a model of its own and does not use it: it may be None).

    ``features`` (from :func:`encode_features` of this model) saves recomputing
    them for every probe. With ``out_dir`` the Trainer writes its checkpoints and
    metrics.csv there.
    """
    check_bounds(cfg)
    cfg.validate()
    t0, cpu0 = time.perf_counter(), time.process_time()
    labeled_idx = labeled_indices(data.train.y, cfg.labels, cfg.seed, data.num_classes)
    n_labeled = labeled_idx.shape[0]
    batch, per_epoch = _plan(cfg, n_labeled)
    tcfg = TrainConfig(
        epochs=cfg.epochs,
        batch_size=batch,
        lr=cfg.lr or (1e-2 if cfg.mode == "probe" else 1e-3),
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        amp=cfg.amp,
        channels_last=cfg.channels_last and cfg.mode != "probe",
    )
    seed_everything(cfg.seed)
    fdata = None
    if cfg.mode == "m2":
        clf, trainer, train_set = _m2_trainer(
            data, cfg, tcfg, labeled_idx, per_epoch, out_dir, progress
        )
    else:
        clf, trainer, train_set, fdata = _encoder_trainer(
            model, data, cfg, tcfg, labeled_idx, per_epoch, out_dir, features, progress
        )
    fit = trainer.fit(train_set)
    clf.eval()
    if isinstance(clf, Classifier):
        clf.unlabeled = None
    if fdata is not None:
        # the frozen encoder's features of every split are at hand: the backbone need not
        # run again over 15 000 images (most of a probe's time on the conv AE)
        with torch.no_grad():
            test_pred = clf.classify_features(fdata.test.x).argmax(1)
            val_pred = clf.classify_features(fdata.val.x).argmax(1)
    else:
        test_pred = predict(clf, data.test.x, amp=cfg.amp)
        val_pred = predict(clf, data.val.x, amp=cfg.amp)
    cm = confusion_matrix(test_pred, data.test.y, data.num_classes)
    val_cm = confusion_matrix(val_pred, data.val.y, data.num_classes)
    val_acc = accuracy(val_cm) if len(data.val) else float("nan")
    return ClassifyResult(
        classifier=clf,
        test_acc=accuracy(cm),
        val_acc=val_acc,
        confusion=cm,
        n_labeled=n_labeled,
        steps=fit.steps,
        epochs=fit.epochs,
        seconds=time.perf_counter() - t0,
        history=fit.history,
        cpu_seconds=time.process_time() - cpu0,
    )


def _encoder_trainer(model, data, cfg, tcfg, labeled_idx, per_epoch, out_dir, features, progress):
    """The classifier on an AE's encoder, its Trainer and training set (every mode but m2);
    for a probe also the features of every split (else None)."""
    if cfg.mode == "scratch":
        backbone = type(model)(model.config)  # same architecture, fresh weights from the seed
    else:
        backbone = copy.deepcopy(model)
    backbone.train()
    clf = Classifier(
        backbone,
        data.num_classes,
        cfg.head,
        cfg.hidden,
        cfg.dropout,
        frozen=cfg.mode == "probe",
        recon_weight=cfg.recon_weight if cfg.mode == "joint" else 0.0,
        recon_batch=cfg.recon_batch,
    )
    if cfg.mode == "probe":
        if features is None:
            features = encode_features(backbone, data, cfg.amp)
        fdata = features.data
        clf.set_standardisation(fdata.train.x)
        train_set = dataclasses.replace(
            fdata, train=_repeat_to(fdata.train.subset(labeled_idx), per_epoch)
        )
        trainer = Trainer(
            clf,
            tcfg,
            out_dir,
            params=clf.head.parameters(),
            loss_fn=clf.feature_loss,
            progress=progress,
        )
        return clf, trainer, train_set, fdata
    std_images = data.train.x[:10000]  # labels unused: standardisation is unsupervised
    clf.set_standardisation(_features_of(backbone.eval(), std_images, cfg.amp))
    labeled = data.train.subset(labeled_idx)
    if cfg.head_steps:
        _warm_head(clf, labeled, cfg, tcfg)
    backbone.train()
    loss_fn = None
    if cfg.mode == "joint":
        clf.unlabeled = data.train.x
        params = list(clf.parameters())
    else:
        params = [*encoder_parameters(backbone), *clf.head.parameters()]
    if cfg.mode == "consistency":
        loss_fn = ConsistencyLoss(clf, data.train.x, cfg)
    train_set = dataclasses.replace(data, train=_repeat_to(labeled, per_epoch))
    trainer = Trainer(clf, tcfg, out_dir, params=params, loss_fn=loss_fn, progress=progress)
    return clf, trainer, train_set, None


def _m2_trainer(data, cfg, tcfg, labeled_idx, per_epoch, out_dir, progress):
    """A fresh M2 model, wrapped as a classifier, with its Trainer and labeled training set.

    With ``out_dir`` its config.json is written first, so the directory is also an M2
    run that ``aegen.load`` and ``aegen sample`` read.
    """
    model = M2(
        M2Config(
            num_classes=data.num_classes,
            alpha=cfg.alpha,
            unlabeled_weight=cfg.unlabeled_weight,
        )
    ).train()
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_config(out_dir, {"model": M2.registry_name, "model_config": to_dict(model.config)})
    labeled = data.train.subset(labeled_idx)
    train_set = dataclasses.replace(data, train=_repeat_to(labeled, per_epoch))
    loss_fn = M2Loss(model, data.train.x, cfg.unlabeled_ratio)
    trainer = Trainer(model, tcfg, out_dir, loss_fn=loss_fn, progress=progress)
    return M2Classifier(model), trainer, train_set


# --------------------------------------------------------------------------- classifier directories


def write_classifier_json(
    out_dir: str | Path, run_dir: str | Path, cfg: ClassifyConfig, extra: dict
) -> None:
    """What a classifier directory was made from: the encoder run (its config and weights hash)."""
    run_dir = Path(run_dir)
    atomic_write_json(
        Path(out_dir) / CLASSIFIER_JSON,
        {
            "encoder_run": str(run_dir),
            "encoder_weights_sha256": weights_hash(run_dir / MODEL),
            "backbone": load_config(run_dir),
            "classify": to_dict(cfg),
            **extra,
        },
    )


def load_classifier(out_dir: str | Path) -> Classifier | M2Classifier:
    """Rebuild a classifier written by ``aegen classify`` (its backbone config is stored with it)."""
    d = Path(out_dir)
    path = d / CLASSIFIER_JSON
    if not path.is_file():
        raise CheckpointError(f"{d}: not a classifier directory (no {CLASSIFIER_JSON})")
    try:
        info = json.loads(path.read_text())
        cfg = from_dict(ClassifyConfig, info["classify"], "classify")
        if cfg.mode == "m2":  # the directory is the M2 run itself
            return M2Classifier(load(d, family=M2.family)).eval()
        backbone = build_model_from_config(info["backbone"], str(path))
        num_classes = int(info["num_classes"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    clf = Classifier(
        backbone, num_classes, cfg.head, cfg.hidden, cfg.dropout, frozen=cfg.mode == "probe"
    )
    state = load_state_dict(d / MODEL)
    try:
        clf.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"{d}: weights do not fit the classifier ({str(e).splitlines()[0]})"
        ) from None
    return clf.eval()
