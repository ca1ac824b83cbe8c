"""The data sets aegen knows, held in memory as uint8 tensors.

``load_data(name)`` returns a :class:`Dataset` with train / validation / test
splits of 28×28 uint8 images and int64 labels:

- ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` files
  (``/usr/share/datasets/fashion-mnist``) or any directory given as ``data_dir``;
- ``mnist``: IDX files in ``data_dir``, else downloaded once from the official
  mirrors into ``~/.cache/aegen/mnist`` with SHA-256 checks;
- ``synthetic``: a small deterministic 10-class set of drawn shapes, made in
  code, for fast runs and tests;
- a directory path: any MNIST-style IDX files (``train-images-idx3-ubyte[.gz]`` …).

The validation images are a fixed subset of the training images (chosen with a
seed of its own, so every training seed sees the same split).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .idx import read_idx

__all__ = [
    "DATASETS",
    "FASHION_CLASSES",
    "Dataset",
    "Split",
    "download_mnist",
    "load_data",
    "load_idx_dir",
    "make_synthetic",
]

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_CLASSES = [str(i) for i in range(10)]
SYNTHETIC_CLASSES = [
    "disk", "ring", "h-bar", "v-bar", "plus",
    "cross", "frame", "square", "triangle", "two dots",
]  # fmt: skip

# Official MNIST mirrors (the original site no longer serves the files reliably).
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

DATASETS = ("fashion-mnist", "mnist", "synthetic")
IMAGE_SIZE = 28
VAL_SEED = 20251125  # fixed: the validation split does not move with the training seed


@dataclass
class Split:
    """Images (N, 28, 28) uint8 and labels (N,) int64, in memory."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index])


@dataclass
class Dataset:
    """Train, validation and test splits of one data set."""

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    source: str = ""  # where the files came from, for the record
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        """SHA-256 over every split's images and labels: which data a result came from."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for s in (self.train, self.val, self.test):
                h.update(s.x.numpy().tobytes())
                h.update(s.y.numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


# --------------------------------------------------------------------------- IDX directories

_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find(directory: Path, stems: tuple[str, ...]) -> Path:
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    raise DataError(f"{directory}: no {stems[0]}[.gz] found (expected MNIST-style IDX files)")


def _images_labels(images: np.ndarray, labels: np.ndarray, where: str) -> Split:
    if images.ndim != 3:
        raise DataError(f"{where}: images must have 3 dimensions (N, 28, 28), got {images.shape}")
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{where}: images are {images.shape[1]}×{images.shape[2]}; aegen needs 28×28"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images must be unsigned bytes, got {images.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{where}: labels must have 1 dimension, got {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; the counts must agree"
        )
    if images.shape[0] == 0:
        raise DataError(f"{where}: no images")
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def load_idx_dir(directory: str | os.PathLike) -> tuple[Split, Split]:
    """Read train and test splits from a directory of MNIST-style IDX files."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: no such data directory")
    files = {k: _find(d, v) for k, v in _IDX_NAMES.items()}
    train = _images_labels(
        read_idx(files["train_images"]), read_idx(files["train_labels"]), f"{d} (train)"
    )
    test = _images_labels(
        read_idx(files["test_images"]), read_idx(files["test_labels"]), f"{d} (test)"
    )
    return train, test


# --------------------------------------------------------------------------- MNIST download


def cache_dir() -> Path:
    return Path(os.environ.get("AEGEN_CACHE", Path.home() / ".cache" / "aegen"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_mnist(
    target: str | os.PathLike | None = None,
    mirrors: list[str] | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the four MNIST files into ``target`` (default ``~/.cache/aegen/mnist``).

    Each file is fetched from the first mirror that serves it, checked against its
    SHA-256, and renamed into place only when it matches; files already present
    with the right checksum are not fetched again.
    """
    target = Path(target) if target is not None else cache_dir() / "mnist"
    mirrors = mirrors or MNIST_MIRRORS
    checksums = checksums or MNIST_SHA256
    target.mkdir(parents=True, exist_ok=True)
    for name, digest in checksums.items():
        dest = target / name
        if dest.is_file() and _sha256(dest) == digest:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            tmp = dest.with_name(f".{name}.{os.getpid()}.part")
            try:
                print(f"downloading {url}", file=sys.stderr)
                with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
                got = _sha256(tmp)
                if got != digest:
                    errors.append(f"{url}: SHA-256 {got[:12]}… does not match {digest[:12]}…")
                    tmp.unlink()
                    continue
                os.replace(tmp, dest)
                break
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
                if tmp.exists():
                    tmp.unlink()
        else:
            raise DataError(
                f"could not download MNIST {name} ({'; '.join(errors)}); "
                "put the IDX files in a directory and pass it with --data DIR"
            )
    return target


# --------------------------------------------------------------------------- synthetic


def make_synthetic(n: int, seed: int) -> Split:
    """``n`` 28×28 images of 10 shape classes with random position, size, stroke and noise.

    Deterministic for a given (n, seed); vectorised, so a few thousand images take
    milliseconds. Class c is ``SYNTHETIC_CLASSES[c]``.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    cx = (13.5 + rng.uniform(-3, 3, n)).astype(np.float32)[:, None, None]
    cy = (13.5 + rng.uniform(-3, 3, n)).astype(np.float32)[:, None, None]
    r = rng.uniform(5, 9, n).astype(np.float32)[:, None, None]
    t = rng.uniform(1.2, 2.5, n).astype(np.float32)[:, None, None]  # stroke half-width
    dx, dy = xx[None] - cx, yy[None] - cy
    dist = np.sqrt(dx**2 + dy**2)
    ax, ay = np.abs(dx), np.abs(dy)
    shapes = [
        dist <= r,  # disk
        np.abs(dist - r) <= t,  # ring
        (ay <= t) & (ax <= r),  # horizontal bar
        (ax <= t) & (ay <= r),  # vertical bar
        ((ay <= t) & (ax <= r)) | ((ax <= t) & (ay <= r)),  # plus
        ((np.abs(dx - dy) <= 1.4 * t) | (np.abs(dx + dy) <= 1.4 * t)) & (np.maximum(ax, ay) <= r),
        (np.maximum(ax, ay) <= r) & (np.maximum(ax, ay) >= r - 2 * t),  # frame
        np.maximum(ax, ay) <= 0.8 * r,  # filled square
        (dy <= r * 0.8) & (dy >= -r) & (ax <= (dy + r) * 0.55),  # triangle
        (np.sqrt((dx - r * 0.6) ** 2 + dy**2) <= t + 1.5)
        | (np.sqrt((dx + r * 0.6) ** 2 + dy**2) <= t + 1.5),  # two dots
    ]
    img = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for c, mask in enumerate(shapes):
        sel = y == c
        img[sel] = mask[sel]
    intensity = rng.uniform(0.6, 1.0, n).astype(np.float32)[:, None, None]
    img = img * intensity + rng.normal(0, 0.05, img.shape).astype(np.float32)
    x = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return Split(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))


# --------------------------------------------------------------------------- entry point


def _split_validation(train: Split, val_size: int) -> tuple[Split, Split]:
    n = len(train)
    val_size = min(val_size, n // 6)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SEED))
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    return train.subset(train_idx), train.subset(val_idx)


def load_data(
    name: str | None = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    val_size: int = 5000,
    limit: int = 0,
) -> Dataset:
    """Load a data set by name (or an IDX directory path) into memory.

    ``limit`` keeps the first N training and the first N test images (0: all);
    ``val_size`` images, at most a sixth of the training images, are held out.
    ``name=None`` means the default, Fashion-MNIST.
    """
    name = name or "fashion-mnist"
    if name == "synthetic":
        train, test = make_synthetic(6000, seed=1), make_synthetic(1000, seed=2)
        classes, source = SYNTHETIC_CLASSES, "generated in code"
    elif name == "fashion-mnist":
        d = Path(data_dir) if data_dir else FASHION_DIR
        if not d.is_dir():
            raise DataError(
                f"Fashion-MNIST not found in {d}; install it with "
                "'apt-get install -y dataset-fashion-mnist' or pass --data DIR with its IDX files"
            )
        train, test = load_idx_dir(d)
        classes, source = FASHION_CLASSES, str(d)
    elif name == "mnist":
        d = Path(data_dir) if data_dir else download_mnist()
        train, test = load_idx_dir(d)
        classes, source = MNIST_CLASSES, str(d)
    elif os.sep in name or Path(name).exists():
        d = Path(name)
        train, test = load_idx_dir(d)
        n_classes = int(max(train.y.max(), test.y.max())) + 1
        classes, source = [str(i) for i in range(n_classes)], str(d)
    else:
        raise DataError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)} or give a directory"
        )
    if (
        int(max(train.y.max(), test.y.max())) >= len(classes)
        or int(min(train.y.min(), test.y.min())) < 0
    ):
        raise DataError(f"{source}: labels outside 0..{len(classes) - 1}")
    if limit:
        train = Split(train.x[:limit], train.y[:limit])
        test = Split(test.x[:limit], test.y[:limit])
    train, val = _split_validation(train, val_size)
    return Dataset(name=name, train=train, val=val, test=test, classes=list(classes), source=source)
