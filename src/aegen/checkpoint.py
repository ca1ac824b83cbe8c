"""Run directories: save and load models and training state, never by pickle.

A run directory holds::

    config.json         what was run: model name and config, train and data config
    model.safetensors   the weights at the last checkpoint
    best.safetensors    the weights with the best validation loss so far
    train_state.pt      optimizer, scheduler, step, every RNG state (tensors only;
                        read back with ``torch.load(weights_only=True)``)
    metrics.csv         one row per epoch (and per phase)
    samples/*.png       pictures

Every file is written atomically (see :mod:`aegen.files`). Loading checks the
model name against the registry, the model family against what the caller
expects, and every tensor's name and shape against the freshly built model,
and refuses a mismatch with one clear line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from .config import from_dict, upgrade_names
from .errors import CheckpointError, ConfigError
from .files import atomic_save, atomic_write_bytes, atomic_write_json, read_dir_json, sha256_file
from .registry import entry
from .version import __version__

__all__ = [
    "CONFIG",
    "MODEL",
    "BEST",
    "TRAIN_STATE",
    "capture_rng",
    "load",
    "load_config",
    "load_state_dict",
    "read_train_state",
    "restore_rng",
    "save_model",
    "weights_hash",
    "write_checkpoint",
    "write_config",
]

CONFIG, MODEL, BEST, TRAIN_STATE = (
    "config.json",
    "model.safetensors",
    "best.safetensors",
    "train_state.pt",
)


def write_config(run_dir: str | os.PathLike, config: dict[str, Any]) -> None:
    """Write ``config.json`` (adds the aegen version)."""
    atomic_write_json(Path(run_dir) / CONFIG, {"aegen_version": __version__, **config})


def load_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read a run directory's ``config.json``; a missing or broken one is a CheckpointError."""
    cfg = read_dir_json(run_dir, CONFIG, CheckpointError, "run")
    path = Path(run_dir) / CONFIG
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise CheckpointError(f"{path}: does not name a model")
    return _upgrade(cfg)


def _upgrade(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config.json dict with the model config's old field names mapped to today's, so
    that a run written before a rename compares equal to the same run configured now."""
    try:
        config_cls = entry(str(cfg["model"])).config_cls
    except ConfigError:
        return cfg  # an unknown model is refused where it is built, with its own message
    if isinstance(cfg.get("model_config"), dict):
        try:
            cfg = {**cfg, "model_config": upgrade_names(config_cls, cfg["model_config"], "model")}
        except ConfigError as e:
            raise CheckpointError(f"{cfg['model']}: {e}") from None
    return cfg


def save_model(
    path: str | os.PathLike, model: torch.nn.Module, metadata: dict[str, str] | None = None
) -> None:
    """Save ``model``'s state dict as safetensors, atomically; compiled wrappers are unwrapped."""
    atomic_write_bytes(path, _state_bytes(model, metadata))


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no weights file (the run may not have reached a checkpoint)")
    try:
        return load_file(p)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p}: not a readable safetensors file ({e})") from None


def weights_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file: which exact model a derived artefact came from."""
    return sha256_file(path)


def _check_and_load(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise CheckpointError(
            f"{where}: weights do not fit the model ({what}); wrong run directory?"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{where}: tensor {k} has shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}"
            )
    model.load_state_dict(state)


def build_model_from_config(cfg: dict[str, Any], where: str = "config") -> torch.nn.Module:
    """Build the registered model a ``config.json`` dict describes (no weights)."""
    try:
        e = entry(str(cfg["model"]))
        model_cfg = from_dict(e.config_cls, cfg.get("model_config", {}), "model")
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from None
    return e.cls(model_cfg)


def load(
    run_dir: str | os.PathLike,
    family: str | tuple[str, ...] | None = None,
    best: bool = False,
    map_location: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Load the model of a run directory, in eval mode, ready to use.

    ``family`` ("ae", "vae", "vqvae", "prior", …, or a tuple of them) refuses a run of
    another kind with a CheckpointError; ``best=True`` loads the best-validation weights.
    """
    d = Path(run_dir)
    cfg = load_config(d)
    model = build_model_from_config(cfg, str(d / CONFIG))
    if family is not None:
        allowed = (family,) if isinstance(family, str) else tuple(family)
        if getattr(model, "family", None) not in allowed:
            raise CheckpointError(
                f"{d}: is a {model.family} run ({cfg['model']}); this needs a {' or '.join(allowed)} run"
            )
    _check_and_load(model, load_state_dict(d / (BEST if best else MODEL)), str(d))
    return model.to(map_location).eval()


PENDING = MODEL + ".pending"


def _state_bytes(model: torch.nn.Module, metadata: dict[str, str] | None) -> bytes:
    module = getattr(model, "_orig_mod", model)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    meta = {"format": "pt", "aegen_version": __version__, **(metadata or {})}
    return canonical_safetensors(save_bytes(state, metadata=meta))


def canonical_safetensors(data: bytes) -> bytes:
    """The same file with its JSON header's keys sorted: equal weights give equal bytes.

    safetensors writes the metadata map in hash order, so two saves of the same
    weights can differ byte for byte and a file hash would not identify the weights.
    The header is re-serialised with sorted keys and padded with spaces (as the
    format allows) to its original length, so the tensor offsets stay valid.
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(text) > n:  # cannot happen for the same content; keep the original if it does
        return data
    return data[:8] + text.ljust(n, b" ") + data[8 + n :]


def write_checkpoint(
    run_dir: str | os.PathLike,
    model: torch.nn.Module,
    train_state: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> None:
    """Save weights and training state together, so that resuming is always exact.

    A two-phase commit over two files: the weights are written in full to
    ``model.safetensors.pending``; then ``train_state.pt``, which records the
    weights' SHA-256, is renamed into place (the commit point); then the pending
    weights are renamed to ``model.safetensors``. A kill at any moment leaves either
    the previous checkpoint or one that :func:`read_train_state` rolls forward.
    """
    d = Path(run_dir)
    data = _state_bytes(model, metadata)
    with open(d / PENDING, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    state = {**train_state, "weights_sha256": hashlib.sha256(data).hexdigest()}
    atomic_save(d / TRAIN_STATE, lambda tmp: torch.save(state, tmp))
    os.replace(d / PENDING, d / MODEL)


CPU = torch.device("cpu")


def capture_rng(device: torch.device = CPU) -> dict[str, Any]:
    """Every RNG state a training step draws from (torch, NumPy, Python, and CUDA on a GPU),
    as tensors and numbers only, so ``train_state.pt`` loads with ``weights_only=True``."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device = CPU) -> None:
    """Put back the RNG states of :func:`capture_rng`: a resumed run draws what it would have."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def read_train_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Load ``train_state.pt`` with ``weights_only=True`` (no code in it can run).

    Finishes a checkpoint that was interrupted after its commit point, and refuses
    a state whose weights file does not match it.
    """
    d = Path(run_dir)
    p = d / TRAIN_STATE
    if not p.is_file():
        raise CheckpointError(f"{d}: nothing to resume (no {TRAIN_STATE})")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to unpickle safely is a bad file
        raise CheckpointError(f"{p}: not a loadable training state ({type(e).__name__})") from None
    if not isinstance(state, dict) or "weights_sha256" not in state:
        raise CheckpointError(f"{p}: not an aegen training state")
    want = state["weights_sha256"]
    pending = d / PENDING
    if pending.is_file():
        if weights_hash(pending) == want:
            os.replace(pending, d / MODEL)  # roll the committed checkpoint forward
        else:
            pending.unlink()  # an uncommitted checkpoint: the previous one stands
    if not (d / MODEL).is_file() or weights_hash(d / MODEL) != want:
        raise CheckpointError(f"{d}: {MODEL} does not match {TRAIN_STATE}; cannot resume exactly")
    return state
