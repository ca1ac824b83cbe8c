"""aegen: autoencoders, VAEs and VQ-VAEs with autoregressive priors, on 28×28 images.

The public API::

    import aegen
    data = aegen.load_data("fashion-mnist")
    model = aegen.build_model("ae-conv", code_dim=16)
    aegen.Trainer(model, aegen.TrainConfig(epochs=5), "runs/ae").fit(data)
    model = aegen.load("runs/ae")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# Names are imported on first use (PEP 562), so that ``python -m aegen`` reaches
# ``aegen.cli.entry`` before torch is loaded: OpenMP reads its wait policy when torch
# loads it, and the command sets that policy first (see aegen.threads).
_PUBLIC = {
    "load": "checkpoint",
    "DataConfig": "config",
    "RunConfig": "config",
    "TrainConfig": "config",
    "Batch": "data",
    "load_data": "data",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "UserError": "errors",
    "available": "registry",
    "build_model": "registry",
    "Trainer": "train",
    "seed_everything": "train",
}

if TYPE_CHECKING:
    from .checkpoint import load
    from .config import DataConfig, RunConfig, TrainConfig
    from .data import Batch, load_data
    from .errors import CheckpointError, ConfigError, DataError, UserError
    from .registry import available, build_model
    from .train import Trainer, seed_everything


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Batch",
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "UserError",
    "__version__",
    "available",
    "build_model",
    "load",
    "load_data",
    "seed_everything",
]
