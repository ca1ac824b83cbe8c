"""Training classifiers on an autoencoder's features, and classifier directories.

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

The labeled images are a class-balanced subset of the training split
(:func:`aegen.data.labeled.labeled_indices`). The validation split never holds a
labeled image; it is monitored, never used to pick weights: results are the
final weights' test accuracy.

This module trains classifiers and reads and writes their directories; the
network is :mod:`aegen.models.classifier`, its scores :mod:`aegen.eval.classify`,
the confusion-matrix picture :func:`aegen.viz.save_confusion`.
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
from torch import nn

from .checkpoint import (
    MODEL,
    build_model_from_config,
    load,
    load_config,
    load_state_dict,
    weights_hash,
)
from .config import TrainConfig, check, from_dict, to_dict
from .data.datasets import Dataset, Split
from .data.labeled import labeled_indices
from .data.loader import to_float
from .errors import CheckpointError
from .eval.classify import accuracy, confusion_matrix, predict
from .files import atomic_write_json
from .models.base import Autoencoder
from .models.classifier import Classifier, encoder_parameters
from .train import Trainer, autocast, seed_everything

__all__ = [
    "CLASSIFIER_JSON",
    "MODES",
    "ClassifyConfig",
    "ClassifyResult",
    "FeatureSet",
    "encode_features",
    "load_classifier",
    "load_encoder_model",
    "train_classifier",
    "write_classifier_json",
]

MODES = ("probe", "finetune", "scratch", "joint")
CLASSIFIER_JSON = "classifier.json"

Mode = Literal["probe", "finetune", "scratch", "joint"]


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
    head_steps: int = 300  # finetune, scratch, joint: first train the head alone this many steps
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
    model: nn.Module,
    data: Dataset,
    cfg: ClassifyConfig,
    out_dir: str | Path | None = None,
    features: FeatureSet | None = None,
    progress: bool = False,
) -> ClassifyResult:
    """Train a classifier on ``model`` as ``cfg.mode`` says; ``model`` itself is not changed.

    ``features`` (from :func:`encode_features` of this model) saves recomputing
    them for every probe. With ``out_dir`` the Trainer writes its checkpoints and
    metrics.csv there.
    """
    t0 = time.perf_counter()
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
    else:
        std_images = data.train.x[:10000]  # labels unused: standardisation is unsupervised
        clf.set_standardisation(_features_of(backbone.eval(), std_images, cfg.amp))
        labeled = data.train.subset(labeled_idx)
        if cfg.head_steps:
            _warm_head(clf, labeled, cfg, tcfg)
        backbone.train()
        if cfg.mode == "joint":
            clf.unlabeled = data.train.x
            params = list(clf.parameters())
        else:
            params = [*encoder_parameters(backbone), *clf.head.parameters()]
        train_set = dataclasses.replace(data, train=_repeat_to(labeled, per_epoch))
        trainer = Trainer(clf, tcfg, out_dir, params=params, progress=progress)
    fit = trainer.fit(train_set)
    clf.eval()
    clf.unlabeled = None
    if cfg.mode == "probe":
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
    )


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


def load_classifier(out_dir: str | Path) -> Classifier:
    """Rebuild a classifier written by ``aegen classify`` (its backbone config is stored with it)."""
    d = Path(out_dir)
    path = d / CLASSIFIER_JSON
    if not path.is_file():
        raise CheckpointError(f"{d}: not a classifier directory (no {CLASSIFIER_JSON})")
    try:
        info = json.loads(path.read_text())
        cfg = from_dict(ClassifyConfig, info["classify"], "classify")
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
