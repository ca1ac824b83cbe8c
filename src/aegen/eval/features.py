"""The domain feature network: what FID, KID and precision/recall measure distances in.

Inception-v3 features describe ImageNet photographs; on 28×28 grey clothing they
mostly describe resampling artefacts. So aegen trains its own small CNN
classifier on the data set itself and uses its penultimate layer (the vector
the class scores are read from) as the embedding, the way FID uses Inception's
pool layer.

A feature directory is a run directory of model ``feature-cnn`` plus
``features.json``: the SHA-256 of ``model.safetensors`` (the network's identity),
its test accuracy and the data it was trained on. Every score computed with it
records that hash, so scores from different feature networks are never
compared silently (see :mod:`aegen.eval.report`). ``features.json`` is written
last: a directory without it did not finish training and is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..checkpoint import CONFIG, MODEL, load, weights_hash, write_config
from ..config import RunConfig, TrainConfig, from_dict
from ..data.datasets import Dataset, cache_dir
from ..data.loader import to_float
from ..errors import CheckpointError, UserError
from ..files import RunLock, atomic_write_json, ensure_dir
from ..models.feature_net import MODEL_NAME, FeatureNet, FeatureNetConfig
from ..train import Trainer, check_batch_size, seed_everything
from ..version import __version__

__all__ = [
    "FEATURES_JSON",
    "DomainFeatures",
    "FeatureNet",
    "FeatureNetConfig",
    "cached_or_trained",
    "default_features_dir",
    "find_features",
    "load_features",
    "train_features",
]

FEATURES_JSON = "features.json"

# bf16 autocast makes a training step faster where the CPU has bf16 (measured with
# bench/features_speed.py: docs/evaluation.md); features for scoring are always float32.
TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 8, "batch_size": 128, "lr": 2e-3, "amp": "auto"}


# --------------------------------------------------------------------------- using one


# Images per forward pass when scoring. The network's results do not depend on it (eval
# mode: every image alone), its speed does: on 2 cores of an AVX2 EPYC (Zen 3) 128 images
# ran at about 4 000 images/s and 1 000 at 1 400-1 900, whose (1000, 32, 28, 28)
# activations (100 MB) leave the caches between the BatchNorm, ReLU and max-pool passes.
EVAL_BATCH = 128


@dataclass
class DomainFeatures:
    """A trained, verified feature network and what it records next to every score."""

    net: FeatureNet
    sha256: str
    directory: Path
    info: dict[str, Any]

    @property
    def num_features(self) -> int:
        return self.net.num_features

    @property
    def data_name(self) -> str:
        return str(self.info.get("data", {}).get("name", ""))

    def check_data(self, data_name: str) -> None:
        """Refuse, in one line, to score images of ``data_name`` with a network of other data."""
        if self.data_name and self.data_name != data_name:
            raise UserError(
                f"feature network {self.directory} was trained on {self.data_name}, "
                f"these images are {data_name}; its scores would mean nothing here"
            )

    def record(self) -> dict[str, Any]:
        """What a score stores about the network it was measured with."""
        return {
            "sha256": self.sha256,
            "dir": str(self.directory),
            "test_accuracy": self.info.get("test_accuracy"),
            "data": self.data_name,
        }

    @torch.no_grad()
    def embed(
        self,
        images: torch.Tensor,
        batch_size: int = EVAL_BATCH,
        progress: bool = False,
        desc: str = "features",
    ) -> torch.Tensor:
        """Features (N, F) float64 of images: uint8 (N, 28, 28) or float (N, 1, 28, 28) in [0, 1]."""
        self.net.eval()
        out = []
        starts = range(0, images.shape[0], batch_size)
        for s in tqdm(starts, desc=desc, disable=not progress, leave=False, file=sys.stderr):
            x = to_float(images[s : s + batch_size]).float()
            out.append(self.net.features(x).double())
        return torch.cat(out) if out else torch.zeros(0, self.num_features, dtype=torch.float64)

    @property
    def num_classes(self) -> int:
        return self.net.config.num_classes

    @torch.no_grad()
    def classify(self, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
        """(N,) the classifier's label of each image (uint8 (N, 28, 28) or float in [0, 1])."""
        self.net.eval()
        out = [
            self.net(to_float(images[s : s + batch_size]).float()).argmax(1)
            for s in range(0, images.shape[0], batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def accuracy(
        self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = EVAL_BATCH
    ) -> float:
        """Fraction of ``images`` the classifier labels correctly."""
        right = int((self.classify(images, batch_size) == labels).sum())
        return right / max(1, images.shape[0])


def default_features_dir(data_name: str) -> Path:
    """Where ``aegen features train`` puts a data set's network unless told otherwise."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data_name.strip("/")) or "data"
    return cache_dir() / "features" / slug


def find_features(
    data_name: str, directory: str | os.PathLike | None = None
) -> DomainFeatures | None:
    """The feature network to score ``data_name`` with: the one in ``directory`` (refused in
    one line when it is missing or unfinished), else the default one for the data set
    (:func:`default_features_dir`) when it exists, else None: nothing to score with."""
    if directory is not None:
        return load_features(directory)
    default = default_features_dir(data_name)
    return load_features(default) if default.is_dir() else None


def load_features(directory: str | os.PathLike) -> DomainFeatures:
    """Load a feature directory, refusing one that is unfinished, of another kind, or altered."""
    d = Path(directory)
    info_path = d / FEATURES_JSON
    if not d.is_dir():
        raise CheckpointError(
            f"{d}: no such feature network directory; train one with "
            "'aegen features train --data D --out DIR'"
        )
    if not info_path.is_file():
        what = "did not finish training" if (d / CONFIG).is_file() else "is not a feature network"
        raise CheckpointError(
            f"{d}: {what} (no {FEATURES_JSON}); train one with 'aegen features train --data D --out DIR'"
        )
    try:
        info = json.loads(info_path.read_text())
        want = str(info["sha256"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{info_path}: unreadable ({type(e).__name__})") from None
    net = load(d, family="features")
    got = weights_hash(d / MODEL)
    if got != want:
        raise CheckpointError(
            f"{d / MODEL}: SHA-256 {got[:12]}… is not the {want[:12]}… recorded in {FEATURES_JSON}; "
            "the weights were changed after training; retrain the feature network"
        )
    return DomainFeatures(net, got, d, info)


def train_features(
    data: Dataset,
    out_dir: str | os.PathLike,
    epochs: int | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> DomainFeatures:
    """Train a feature network on ``data`` into ``out_dir`` and return it, verified.

    ``overrides`` are FeatureNetConfig fields; ``train_overrides`` TrainConfig fields.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    if (out / CONFIG).exists() or (out / FEATURES_JSON).exists():
        raise UserError(f"{out} already holds a run; choose another --out")
    if data.train.x.dtype != torch.uint8:
        raise UserError(f"{data.name}: a feature network needs image data")
    model_cfg = from_dict(
        FeatureNetConfig, {"num_classes": data.num_classes, **(overrides or {})}, "model"
    )
    train_values = {**TRAIN_DEFAULTS, "seed": seed, **(train_overrides or {})}
    if epochs is not None:
        train_values["epochs"] = epochs
    train_cfg = from_dict(TrainConfig, train_values, "train")
    check_batch_size(train_cfg.batch_size, len(data.train))
    seed_everything(train_cfg.seed)
    net = FeatureNet(model_cfg)
    ensure_dir(out)
    with RunLock(out):
        run = RunConfig(MODEL_NAME, model_cfg, train_cfg)
        run_json = run.to_json()
        run_json["data"] = {"name": data.name, "val_size": len(data.val)}
        write_config(out, {**run_json, "family": FeatureNet.family})
        Trainer(net, train_cfg, out, progress=progress, metadata={"model": MODEL_NAME}).fit(data)
        sha = weights_hash(out / MODEL)
        trained = DomainFeatures(net.eval(), sha, out, {})
        info = {
            "aegen_version": __version__,
            "model": MODEL_NAME,
            "weights": MODEL,
            "sha256": sha,
            "num_features": net.num_features,
            "test_accuracy": trained.accuracy(data.test.x, data.test.y),
            "val_accuracy": trained.accuracy(data.val.x, data.val.y),
            "data": {
                "name": data.name,
                "fingerprint": data.fingerprint(),
                "train_images": len(data.train),
                "test_images": len(data.test),
                "classes": list(data.classes),
            },
            "epochs": train_cfg.epochs,
            "seed": train_cfg.seed,
        }
        atomic_write_json(out / FEATURES_JSON, info)
    return load_features(out)


def cached_or_trained(
    data: Dataset,
    local: str | os.PathLike,
    epochs: int,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> DomainFeatures:
    """The feature network for ``data``: the cached one (``aegen features train``), else the
    one in ``local``, else one trained into ``local`` (a killed training there is discarded)."""
    cached = default_features_dir(data.name)
    if (cached / FEATURES_JSON).is_file():
        return load_features(cached)
    local = Path(local)
    if (local / FEATURES_JSON).is_file():
        return load_features(local)
    if local.exists():  # a killed training: nothing of value
        with RunLock(local):
            pass
        shutil.rmtree(local)
    if log is not None:
        log(f"  training a feature network for FID/KID ({epochs} epochs) into {local}")
    return train_features(data, local, epochs=epochs, seed=seed, progress=progress)
