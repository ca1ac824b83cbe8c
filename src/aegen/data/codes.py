"""The discrete data set of the VQ pipeline: every image as an H×W grid of code indices.

A codes directory holds::

    train.npy, val.npy, test.npy                         uint16 (N, H, W)
    train_labels.npy, val_labels.npy, test_labels.npy   int64 (N,)
    meta.json   K, D, H, W, the VQ-VAE weights' SHA-256, the data's fingerprint,
                the arrays' SHA-256, code usage and unigram entropies

:func:`encode_dataset` writes one from a VQ-VAE (any model with
``encode_indices``, ``grid``, ``num_codes`` and ``codebook``), under a temporary
name renamed into place, so it is either complete or absent; :func:`load_codes`
reads it back as a :class:`~aegen.data.datasets.Dataset` of int64 grids, refusing
a meta.json of the wrong shape, codes ≥ K, grids of the wrong shape and labels
outside the classes. Making one from a run directory is stage 2 of
:mod:`aegen.pipelines.vq_prior`.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..files import (
    atomic_write_bytes,
    atomic_write_json,
    ensure_dir,
    npy_bytes,
    read_dir_json,
    replace_dir,
    sha256_file,
    staging_dir,
)
from ..quantize import code_usage
from .datasets import Dataset, Split
from .loader import to_float

__all__ = [
    "CODES_FORMAT",
    "META",
    "SPLITS",
    "CodeSet",
    "check_indices",
    "codes_match",
    "encode_dataset",
    "encode_split",
    "load_codes",
    "read_meta",
]

CODES_FORMAT = "aegen-codes/1"
META = "meta.json"
SPLITS = ("train", "val", "test")
MAX_CODES = 2**16  # codes are stored as uint16: at most 65 536 of them, 0..65535


def check_indices(
    indices: torch.Tensor, num_codes: int, grid: tuple[int, int], where: str = "codes"
) -> None:
    """Refuse index grids that are not (N, H, W) integers in [0, K) with one clear line."""
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise DataError(f"{where}: codes must be integers, got {indices.dtype}")
    if indices.dim() != 3 or tuple(indices.shape[1:]) != tuple(grid):
        raise DataError(
            f"{where}: code grids must be (N, {grid[0]}, {grid[1]}), got {tuple(indices.shape)}"
        )
    if indices.numel():
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= num_codes:
            bad = hi if hi >= num_codes else lo
            raise DataError(
                f"{where}: code {bad} is outside the codebook (valid codes are 0..{num_codes - 1})"
            )


# --------------------------------------------------------------------------- writing


@torch.no_grad()
def encode_split(model: torch.nn.Module, split: Split, batch_size: int = 1000) -> np.ndarray:
    """Code grids (N, H, W) uint16 of a split's images, in float32 and eval mode."""
    model.eval()
    parts = [
        model.encode_indices(to_float(split.x[s : s + batch_size])).to(torch.int32)
        for s in range(0, len(split), batch_size)
    ]
    if not parts:  # an empty split (a small --limit leaves no validation images): (0, H, W)
        return np.zeros((0, *model.grid), np.uint16)
    return torch.cat(parts).numpy().astype(np.uint16)


def encode_dataset(
    model: torch.nn.Module, data: Dataset, out_dir: str | os.PathLike, source: dict[str, Any]
) -> dict[str, Any]:
    """Encode every split of ``data`` with ``model`` into the codes directory ``out_dir``
    (replacing it if it exists); returns its meta.json.

    ``source`` names the VQ-VAE in meta.json: ``vqvae_run`` and ``vqvae_weights_sha256``.
    """
    out = Path(out_dir)
    ensure_dir(out.parent if str(out.parent) else Path("."))
    h, w = model.grid
    k = model.num_codes
    arrays: dict[str, np.ndarray] = {}
    for name in SPLITS:
        split = getattr(data, name)
        arrays[name] = encode_split(model, split)
        arrays[f"{name}_labels"] = split.y.numpy().astype(np.int64)
    stats: dict[str, Any] = {}
    for name in ("train", "test"):
        idx = torch.from_numpy(arrays[name].astype(np.int64))
        perplexity, used = code_usage(idx, k)
        stats[f"{name}_codes_used"] = used
        stats[f"{name}_perplexity"] = perplexity
        stats[f"{name}_unigram_entropy_bits"] = math.log2(perplexity)
    meta = {
        "format": CODES_FORMAT,
        "K": k,
        "D": int(model.codebook.shape[1]),
        "H": h,
        "W": w,
        "vqvae_run": source["vqvae_run"],
        "vqvae_weights_sha256": source["vqvae_weights_sha256"],
        "data": data.name,
        "data_fingerprint": data.fingerprint(),
        "classes": list(data.classes),
        "counts": {s: int(arrays[s].shape[0]) for s in SPLITS},
        **stats,
        "files": {},
    }
    tmp = staging_dir(out)
    try:
        for name, a in arrays.items():
            payload = npy_bytes(a)
            atomic_write_bytes(tmp / f"{name}.npy", payload)
            meta["files"][f"{name}.npy"] = hashlib.sha256(payload).hexdigest()
        atomic_write_json(tmp / META, meta)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


# --------------------------------------------------------------------------- reading


@dataclass
class CodeSet:
    """A loaded codes directory: int64 code grids and labels per split, and its meta.json."""

    path: Path
    meta: dict[str, Any]
    meta_sha256: str
    data: Dataset  # x: (N, H, W) int64 codes, y: (N,) int64 labels

    @property
    def num_codes(self) -> int:
        return int(self.meta["K"])

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.meta["H"]), int(self.meta["W"])


def read_meta(d: Path) -> dict[str, Any]:
    """A codes directory's meta.json, checked for its format and the keys everything needs."""
    meta = read_dir_json(d, META, DataError, "codes", "; make one with 'aegen encode'")
    p = d / META
    if not isinstance(meta, dict) or meta.get("format") != CODES_FORMAT:
        raise DataError(f"{p}: not an aegen codes directory ({CODES_FORMAT})")
    for key in ("K", "H", "W", "vqvae_weights_sha256"):
        if key not in meta:
            raise DataError(f"{p}: no {key}")
    _check_int(meta, "K", p, 2, MAX_CODES)
    _check_int(meta, "H", p, 1)
    _check_int(meta, "W", p, 1)
    if not isinstance(meta["vqvae_weights_sha256"], str):
        raise DataError(f"{p}: vqvae_weights_sha256 must be a string")
    classes = meta.get("classes")
    if classes is not None and (
        not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes)
    ):
        raise DataError(f"{p}: classes must be a non-empty list of class names")
    files = meta.get("files")
    if files is not None and (
        not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise DataError(f"{p}: files must map file names to their SHA-256")
    return meta


def _check_int(meta: dict[str, Any], key: str, p: Path, lo: int, hi: int | None = None) -> None:
    """Refuse ``meta[key]`` unless it is a JSON integer in lo..hi (no upper bound: None)."""
    v = meta[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        want = f"in {lo}..{hi}" if hi is not None else f"≥ {lo}"
        raise DataError(f"{p}: {key} must be an integer {want}, got {v!r:.40}")


def _read_array(path: Path, dtype: type) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: {'not a file' if path.exists() else 'missing'}")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # EOFError: an empty file
        raise DataError(f"{path}: not a readable .npy file ({e or 'empty'})") from None
    if not isinstance(a, np.ndarray):  # an .npz archive under an .npy name
        a.close()
        raise DataError(f"{path}: not a .npy file (an .npz archive)")
    if a.dtype != dtype:
        raise DataError(f"{path}: expected {np.dtype(dtype).name}, got {a.dtype}")
    return a


def _check_labels(labels: np.ndarray, classes: list[str] | None, where: Path) -> None:
    """Refuse labels outside 0..C-1 for the C ``classes`` (None: only negative ones)."""
    if not labels.size:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise DataError(f"{where}: label {lo} is negative; labels are class indices 0, 1, …")
    if classes is not None and hi >= len(classes):
        raise DataError(
            f"{where}: label {hi} is outside the {len(classes)} classes of {META} "
            f"(valid labels are 0..{len(classes) - 1})"
        )


def load_codes(codes_dir: str | os.PathLike) -> CodeSet:
    """Read and check a codes directory: every grid (N, H, W) with codes < K, labels to match,
    each in 0..C-1 for the C classes of meta.json (without its list of classes: C is the
    largest label + 1)."""
    d = Path(codes_dir)
    meta = read_meta(d)
    k, grid = int(meta["K"]), (int(meta["H"]), int(meta["W"]))
    classes = meta.get("classes")
    splits = {}
    for name in SPLITS:
        codes = _read_array(d / f"{name}.npy", np.uint16)
        labels_file = d / f"{name}_labels.npy"
        labels = _read_array(labels_file, np.int64)
        x = torch.from_numpy(codes.astype(np.int64))
        check_indices(x, k, grid, str(d / f"{name}.npy"))
        if labels.shape != (codes.shape[0],):
            raise DataError(
                f"{labels_file}: {labels.shape[0] if labels.ndim else 0} labels "
                f"for {codes.shape[0]} code grids"
            )
        _check_labels(labels, classes, labels_file)
        splits[name] = Split(x, torch.from_numpy(labels))
    if classes is None:  # a meta.json without its classes: as many as the labels need
        n_classes = max(int(s.y.max()) if len(s) else -1 for s in splits.values()) + 1
        classes = [str(i) for i in range(n_classes)]
    data = Dataset("codes", splits["train"], splits["val"], splits["test"], classes, str(d))
    return CodeSet(d, meta, sha256_file(d / META), data)


def codes_match(codes_dir: Path, vqvae_weights_sha256: str, data: Dataset) -> bool:
    """Whether ``codes_dir`` holds complete codes of ``data`` by the VQ-VAE with these weights."""
    try:
        meta = read_meta(codes_dir)
    except DataError:
        return False
    if meta.get("vqvae_weights_sha256") != vqvae_weights_sha256:
        return False
    if meta.get("data_fingerprint") != data.fingerprint():
        return False
    files = meta.get("files") or {}
    return all(
        (codes_dir / f"{s}{suffix}.npy").is_file()
        and files.get(f"{s}{suffix}.npy") == sha256_file(codes_dir / f"{s}{suffix}.npy")
        for s in SPLITS
        for suffix in ("", "_labels")
    )
