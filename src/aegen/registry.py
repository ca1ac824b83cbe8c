"""Name → class registries for models and priors.

A model module registers its class with its dataclass config (your own modules
too: name them in the ``AEGEN_PLUGINS`` environment variable, comma-separated,
and the CLI can train them)::

    @register("ae-mlp", AEMLPConfig)
    class AEMLP(Autoencoder): ...

and everything else builds by name: ``build_model("ae-mlp", code_dim=2)``. Loading a
run directory looks the name up here too, so there is no ``if/elif`` chain over
model classes anywhere.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from .config import from_dict, to_dict
from .errors import ConfigError

__all__ = ["Entry", "available", "build_model", "entry", "register"]


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    config_cls: type
    kind: str  # "model" or "prior"


_REGISTRY: dict[str, Entry] = {}

# Modules whose import registers their classes; imported lazily on first lookup so
# `import aegen` stays cheap and a broken optional module cannot hide the others.
_MODULES = (
    "aegen.models.ae",
    "aegen.models.vae",
    "aegen.models.vqvae",
    "aegen.models.flow",
    "aegen.models.diffusion",
    "aegen.models.gan",
    "aegen.priors.pixelcnn",
    "aegen.priors.pixelrnn",
    "aegen.priors.transformer",
    "aegen.priors.maskgit",
    "aegen.models.feature_net",
    "aegen.models.m2",
)


def register(name: str, config_cls: type, kind: str = "model"):
    """Class decorator: make ``cls`` buildable as ``name`` from ``config_cls``."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise RuntimeError(f"{name!r} is registered twice")
        _REGISTRY[name] = Entry(name, cls, config_cls, kind)
        cls.registry_name = name
        cls.config_cls = config_cls
        return cls

    return wrap


def _plugins() -> tuple[str, ...]:
    """Extra modules named in AEGEN_PLUGINS (comma-separated) that register their own models."""
    return tuple(m.strip() for m in os.environ.get("AEGEN_PLUGINS", "").split(",") if m.strip())


def _load_all() -> None:
    for module in (*_MODULES, *_plugins()):
        if module.startswith("."):
            raise ConfigError(f"AEGEN_PLUGINS: {module!r} is relative; name the module in full")
        try:
            importlib.import_module(module)
        except ImportError as e:
            if module in _MODULES:
                raise
            raise ConfigError(f"AEGEN_PLUGINS: cannot import {module} ({e})") from None


def available(kind: str | None = "model") -> list[str]:
    """Registered names of ``kind`` ("model", "prior", or None for all), sorted."""
    _load_all()
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def entry(name: str, kind: str | None = None) -> Entry:
    """The registry entry for ``name``; an unknown name raises ConfigError listing the known."""
    _load_all()
    e = _REGISTRY.get(name)
    if e is None or (kind is not None and e.kind != kind):
        what = kind or "model or prior"
        raise ConfigError(f"unknown {what} {name!r}; choose one of {', '.join(available(kind))}")
    return e


def build_model(name: str, config: dict[str, Any] | Any | None = None, **overrides: Any):
    """Build a registered model or prior from a config dict/object plus keyword overrides."""
    e = entry(name)
    values = to_dict(config) if hasattr(config, "__dataclass_fields__") else dict(config or {})
    values.update(overrides)
    return e.cls(from_dict(e.config_cls, values, "model"))
