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
- ``consistency``: from the AE's weights, FixMatch-style (Sohn et al. 2020):
  cross-entropy on weakly augmented labeled images plus ``unlabeled_weight`` × the
  cross-entropy of strongly augmented unlabeled images against the class the
  model predicts for a weak view of them, where its confidence clears a bar per
  class that follows the model's own confidence (:class:`AdaptiveThreshold`, the
  default) or a fixed ``threshold`` (``threshold_mode="fixed"``)
  (:class:`ConsistencyLoss`, augmentations from :mod:`aegen.data.augment`).
- ``m2``: no autoencoder at all: Kingma et al.'s semi-supervised VAE
  (:mod:`aegen.models.m2`) trained from scratch on the labeled images and
  ``unlabeled_ratio`` × as many unlabeled ones per step; its q(y|x) is the classifier.

The unlabeled images of ``joint`` and ``consistency`` are drawn at every step from
all training images (labeled or not, as FixMatch does), those of ``m2`` from the
training images without a label (the paper's disjoint sets: with all labels it has
no unlabeled term), with the global torch RNG, which the Trainer checkpoints, so a
resumed run draws the same ones.

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
from .config import TrainConfig, bounded, check_bounds, from_dict, to_dict
from .data.augment import shift_flip, strong_view
from .data.datasets import Dataset, Split
from .data.labeled import labeled_indices
from .data.loader import Batch, draw_images, float_like, to_float
from .errors import CheckpointError
from .eval.classify import accuracy, confusion_matrix, predict
from .files import atomic_write_json
from .models.base import Autoencoder
from .models.classifier import Classifier, encoder_parameters
from .models.m2 import M2, M2Config
from .threads import recheck as recheck_threads
from .train import Trainer, autocast, seed_everything

__all__ = [
    "CLASSIFIER_JSON",
    "MODES",
    "THRESHOLD_MODES",
    "ClassifyConfig",
    "ClassifyResult",
    "AdaptiveThreshold",
    "ConsistencyLoss",
    "M2Classifier",
    "M2Loss",
    "FeatureSet",
    "encode_features",
    "load_classifier",
    "load_encoder_model",
    "train_classifier",
    "write_classifier_json",
]

MODES = ("probe", "finetune", "scratch", "joint", "consistency", "m2")
THRESHOLD_MODES = ("fixed", "adaptive")  # consistency's pseudo-label bars (ClassifyConfig)
CLASSIFIER_JSON = "classifier.json"

Mode = Literal["probe", "finetune", "scratch", "joint", "consistency", "m2"]
WEAK_SHIFT = 2  # px, the weak view's largest shift (FixMatch: 12.5 % of the side)
STRONG_SHIFT = 3  # px, the strong view's
ADAPTIVE_MOMENTUM = 0.999  # EMA of the adaptive thresholds' statistics per step (FreeMatch's)


@dataclass
class ClassifyConfig:
    """How to train one classifier: mode, head, which labels, and the training budget.

    The budget is ``epochs`` passes over the labeled images but at least
    ``min_steps`` optimiser steps: a 1 % subset (550 Fashion-MNIST images) is a few
    batches, so small subsets are repeated within an epoch to reach ``min_steps``.
    ``consistency`` also takes at least enough steps for ``unlabeled_epochs`` passes'
    worth of unlabeled draws (μB per step) over all training images: its gain comes
    from seeing those images many times, which the labeled images' budget alone does
    not give at few labels (500 steps at 1 %: 80.4 % test; 4 300 steps: 85.2 %,
    docs/semisup.md). ``m2`` keeps the labeled budget: its steps decode every
    unlabeled image ten times, and its longer budget is not measured yet.
    """

    mode: Mode = "probe"
    head: Literal["linear", "mlp"] = "linear"
    hidden: int = bounded(256, ge=1)  # width of the MLP head's hidden layer
    dropout: float = bounded(0.2, ge=0, lt=1)  # before the MLP head's last layer
    # fraction of the training split that keeps its labels, in (0, 1]
    labels: float = bounded(1.0, gt=0, le=1)
    seed: int = bounded(0, ge=0)  # picks the labeled subset, the initialisation and the data order
    epochs: int = bounded(8, ge=1)
    min_steps: int = bounded(500, ge=0)
    batch_size: int = bounded(128, ge=1)
    # None: 1e-2 for a probe (only a head learns), 1e-3 otherwise
    lr: float | None = bounded(None, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    # joint: weight of the reconstruction loss on all images
    recon_weight: float = bounded(1.0, ge=0)
    # joint: images per step for that loss (the decoder is costly)
    recon_batch: int = bounded(32, ge=1)
    # finetune, scratch, joint, consistency: train the head alone first
    head_steps: int = bounded(300, ge=0)
    # consistency and m2: unlabeled images per step, as a multiple μ of the labeled batch
    unlabeled_ratio: int = bounded(2, ge=1)
    # consistency: λ on the masked cross-entropy; m2: on the unlabeled −ELBO (0: labeled only)
    unlabeled_weight: float = bounded(1.0, ge=0)
    # consistency, threshold_mode "fixed": the confidence τ a pseudo-label needs
    threshold: float = bounded(0.95, gt=0, le=1)
    # consistency: "adaptive" lets the model's own confidence set a bar per class,
    # FreeMatch's self-adaptive thresholds (Wang et al. 2023; `threshold` unused): at 1 %
    # labels 86.08 ± 0.50 % against 85.29 ± 0.90 for τ = 0.95, higher at each of 3 seeds;
    # at 20 % 91.07 ± 0.08 against 90.86 ± 0.09 on test, lower on validation (docs/semisup.md).
    # "fixed" keeps τ.
    threshold_mode: Literal["fixed", "adaptive"] = "adaptive"
    cutout: int = bounded(10, ge=0, le=28)  # consistency: side of the strong view's zeroed square
    # consistency: at least this many passes of unlabeled draws over the training images
    unlabeled_epochs: float = bounded(20.0, ge=0)
    alpha: float = bounded(50.0, ge=0)  # m2: weight of the labeled cross-entropy per image
    amp: Literal["auto", "bf16", "off"] = "off"
    channels_last: bool = False
    # every rule is a bound on one field (config.bounded), checked by check_bounds


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
    # at least one batch, so that an empty split (a small --limit leaves no validation
    # images) still gives (0, F) features
    for start in range(0, max(x.shape[0], 1), batch_size):
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


class ConsistencyLoss:
    """The ``consistency`` mode's loss for the Trainer (FixMatch, Sohn et al. 2020).

    Per step, with B labeled images and μB unlabeled ones drawn from ``unlabeled``
    (uint8, (N, 28, 28), all training images)::

        CE(f(weak(x_l)), y) + λ · mean_u [ 1{max p ≥ τ} · CE(f(strong(x_u)), argmax p) ]

    with p = softmax f(weak(x_u)) computed without gradient (the pseudo-label is a
    target, not something to move); τ is a bar per predicted class
    (:class:`AdaptiveThreshold`), or ``threshold`` with ``threshold_mode="fixed"``. The
    mean runs over all μB images, so the unlabeled term grows as more of them pass the
    threshold. Validation is plain cross-entropy on the unaugmented images. λ = 0
    leaves the supervised run with weak augmentation (the baseline the unlabeled term
    is measured against).
    """

    def __init__(self, clf: Classifier, unlabeled: torch.Tensor, cfg: ClassifyConfig):
        self.clf = clf
        self.unlabeled = unlabeled
        self.ratio = cfg.unlabeled_ratio
        self.weight = cfg.unlabeled_weight
        self.threshold = cfg.threshold
        self.adaptive = AdaptiveThreshold() if cfg.threshold_mode == "adaptive" else None
        self.cutout = cfg.cutout

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        clf = self.clf
        if not clf.training:
            return clf.ce_loss(clf(batch.x), batch.y)
        loss, logs = clf.ce_loss(clf(shift_flip(batch.x, WEAK_SHIFT)), batch.y)
        if self.weight == 0:
            return loss, logs
        u = draw_images(self.unlabeled, self.ratio * batch.x.shape[0], batch.x)
        weak = float_like(shift_flip(u, WEAK_SHIFT), batch.x)
        strong = float_like(strong_view(u, STRONG_SHIFT, self.cutout), batch.x)
        with torch.no_grad():
            probs = clf(weak).float().softmax(-1)  # (μB, C)
            conf, pseudo = probs.max(-1)  # (μB,) each
            if self.adaptive is None:
                mask = (conf >= self.threshold).float()
            else:
                mask = (conf >= self.adaptive.update(probs)[pseudo]).float()
        ce_u = F.cross_entropy(clf(strong).float(), pseudo, reduction="none")
        unlabeled = (ce_u * mask).mean()
        logs.update({"unlabeled_ce": unlabeled.detach(), "mask_rate": mask.mean()})
        return loss + self.weight * unlabeled, logs


class AdaptiveThreshold:
    """FreeMatch's self-adaptive thresholds (Wang et al. 2023): a confidence bar per class
    that rises with the model's own confidence instead of a fixed τ.

    Per step, from the weak views' class probabilities p (μB, C), exponential moving
    averages (momentum 0.999) of the mean top confidence, τ_g, and of the mean
    probability of each class, p̃ (both start at 1/C); class c's bar is
    τ_g · p̃_c / max p̃. Early on the bars are low and most pseudo-labels count; a
    class the model rarely predicts keeps a lower bar than the others. The averages
    live here, not in the classifier's weights: a classifier run does not resume
    mid-run (the grid resumes by cell).
    """

    def __init__(self, momentum: float = ADAPTIVE_MOMENTUM):
        self.momentum = momentum
        self.global_conf: torch.Tensor | None = None  # τ_g, () float
        self.class_prob: torch.Tensor | None = None  # p̃, (C,) float

    def update(self, probs: torch.Tensor) -> torch.Tensor:
        """Fold in one batch's probabilities (N, C); the bars (C,) after it."""
        if self.global_conf is None:
            c = probs.shape[1]
            self.global_conf = torch.tensor(1.0 / c)
            self.class_prob = torch.full((c,), 1.0 / c)
        m = self.momentum
        self.global_conf = m * self.global_conf + (1 - m) * probs.max(-1).values.mean()
        self.class_prob = m * self.class_prob + (1 - m) * probs.mean(0)
        return self.global_conf * self.class_prob / self.class_prob.max()


class M2Loss:
    """The ``m2`` mode's loss for the Trainer: the labeled batch plus μB unlabeled images
    (labels −1) drawn from ``unlabeled``, through :meth:`aegen.models.m2.M2.loss`.

    ``unlabeled`` holds the training images without a label, as in the paper's two
    disjoint sets; with every label known it is empty and the loss is the labeled
    part alone. In validation only the labeled images count (the validation split
    has labels).
    """

    def __init__(self, model: M2, unlabeled: torch.Tensor, ratio: int):
        self.model = model
        self.unlabeled = unlabeled
        self.ratio = ratio

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        off = self.model.config.unlabeled_weight == 0 or len(self.unlabeled) == 0
        if not self.model.training or off:
            return self.model.loss(batch)
        u = draw_images(self.unlabeled, self.ratio * batch.x.shape[0], batch.x)
        x = torch.cat([batch.x, float_like(u, batch.x)])
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
    """``split`` itself if it holds ``images`` items or more, else repeated to exactly ``images``.

    Exactly, not in whole copies: whole copies of 55 000 labeled images overshot a
    budget of 68 864 items an epoch to 110 000, 1.6 times the steps asked for. The
    last copy is cut short (the labeled subset is in dataset order, so the images
    left out of it are a mixed handful, the same ones every epoch).
    """
    n = len(split)
    if n >= images:
        return split
    r = math.ceil(images / n)
    x = split.x.repeat(r, *[1] * (split.x.ndim - 1))[:images]
    return Split(x, split.y.repeat(r)[:images])


def _plan(cfg: ClassifyConfig, n_labeled: int, n_train: int) -> tuple[int, int]:
    """(batch size, items per epoch) giving ``cfg.epochs`` epochs of at least min_steps in all
    (for consistency, also of ``unlabeled_epochs`` passes over the ``n_train`` images)."""
    batch = min(cfg.batch_size, n_labeled)
    least = cfg.min_steps
    if cfg.mode == "consistency":
        least = max(
            least, math.ceil(cfg.unlabeled_epochs * n_train / (cfg.unlabeled_ratio * batch))
        )
    steps_per_epoch = max(n_labeled // batch, math.ceil(least / cfg.epochs))
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
    # each classifier is a fresh run (a grid trains many in one command): cores that were
    # busy when the command started may be free now (a grid's cells once all ran on 1)
    recheck_threads()
    t0, cpu0 = time.perf_counter(), time.process_time()
    labeled_idx = labeled_indices(data.train.y, cfg.labels, cfg.seed, data.num_classes)
    n_labeled = labeled_idx.shape[0]
    batch, per_epoch = _plan(cfg, n_labeled, len(data.train))
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
    without_label = torch.ones(len(data.train), dtype=torch.bool)
    without_label[labeled_idx] = False
    loss_fn = M2Loss(model, data.train.x[without_label], cfg.unlabeled_ratio)
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
