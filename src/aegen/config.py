"""Dataclass configs: parsing, validation and dotted overrides.

A run is described by a :class:`RunConfig`: the model's name and its own
dataclass config, plus :class:`TrainConfig` and :class:`DataConfig`. Configs are
plain dataclasses with type hints; :func:`from_dict` builds one from JSON-like
values, refusing unknown keys (the error names the allowed ones), values of the
wrong type, and non-finite numbers. Range checks live in each config's
``validate()`` method, written with :func:`check`.

Dotted overrides (``model.code_dim=2``, ``train.lr=3e-4``) are parsed against
the target field's type, so ``--set`` on the command line and JSON on disk go
through the same checks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError

__all__ = [
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "check",
    "from_dict",
    "parse_override",
    "to_dict",
]


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


# --------------------------------------------------------------------------- types


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"tuple of {_describe(typing.get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{key}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
            )
        return value
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        return tuple(_coerce(v, inner, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config field {key} has unsupported type {tp!r}")  # a bug, not user error


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``values``; unknown keys and bad values raise ConfigError."""
    values = dict(values or {})
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; allowed keys: "
            + ", ".join(prefix + n for n in names)
        )
    kwargs = {}
    for name in names:
        if name in values:
            kwargs[name] = _coerce(values[name], hints[name], f"{where}.{name}" if where else name)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def parse_override(text: str) -> tuple[str, str]:
    """Split ``section.key=value`` into (``section.key``, ``value``)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    return key, value.strip()


# --------------------------------------------------------------------------- run configs


@dataclass
class TrainConfig:
    """How to train: optimiser, schedule, batch, seeds, checkpoints and speed switches."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = 0
    grad_clip: float = 0.0  # max global grad norm; 0 turns clipping off
    seed: int = 0
    ckpt_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    on_nan: Literal["stop", "skip"] = "stop"  # a non-finite loss stops, or skips the batch
    amp: Literal["auto", "bf16", "off"] = "off"  # bf16 autocast; auto = where the CPU has bf16
    channels_last: bool = False
    compile: bool = False
    fused: bool = False  # fused AdamW: one kernel updates all parameters (CPU and GPU)
    num_threads: int = 0  # 0: torch's default (one per physical core)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when there is a GPU

    def validate(self) -> None:
        check(self.epochs >= 1, f"train.epochs must be at least 1, got {self.epochs}")
        check(self.batch_size >= 1, f"train.batch_size must be at least 1, got {self.batch_size}")
        check(self.lr > 0, f"train.lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        check(self.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.grad_clip >= 0, f"train.grad_clip must be >= 0, got {self.grad_clip}")
        check(self.seed >= 0, f"train.seed must be >= 0, got {self.seed}")
        check(self.ckpt_every >= 0, f"train.ckpt_every must be >= 0, got {self.ckpt_every}")
        check(self.num_threads >= 0, f"train.num_threads must be >= 0, got {self.num_threads}")


@dataclass
class DataConfig:
    """Which images: a data set name or IDX directory, how much of it, the validation split."""

    name: str = "fashion-mnist"  # fashion-mnist | mnist | synthetic | a directory of IDX files
    data_dir: str | None = None  # where the IDX files are, for fashion-mnist and mnist
    val_size: int = 5000  # held out from the training images, the same ones for every seed
    limit: int = 0  # use only the first N training (and test) images; 0: all

    def validate(self) -> None:
        check(self.val_size >= 0, f"data.val_size must be >= 0, got {self.val_size}")
        check(self.limit >= 0, f"data.limit must be >= 0, got {self.limit}")


@dataclass
class RunConfig:
    """Everything a run directory's config.json holds."""

    model: str
    model_config: Any  # the registered model's dataclass config
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_config": to_dict(self.model_config),
            "train": to_dict(self.train),
            "data": to_dict(self.data),
        }


_SECTIONS = {"model": "model_config", "train": "train", "data": "data"}


def apply_overrides(run: RunConfig, overrides: list[str]) -> RunConfig:
    """Return a copy of ``run`` with ``section.key=value`` overrides applied and validated."""
    sections = {
        "model": to_dict(run.model_config),
        "train": to_dict(run.train),
        "data": to_dict(run.data),
    }
    for text in overrides:
        key, value = parse_override(text)
        section, _, name = key.partition(".")
        if section not in sections or not name:
            raise ConfigError(
                f"unknown config key {key}; keys look like model.NAME, train.NAME or data.NAME"
            )
        sections[section][name] = value  # a string; from_dict types it
    return RunConfig(
        model=run.model,
        model_config=from_dict(type(run.model_config), sections["model"], "model"),
        train=from_dict(TrainConfig, sections["train"], "train"),
        data=from_dict(DataConfig, sections["data"], "data"),
    )
