"""Dataclass configs: parsing, validation and dotted overrides.

A run is described by a :class:`RunConfig`: the model's name and its own
dataclass config, plus :class:`TrainConfig` and :class:`DataConfig`. Configs are
plain dataclasses with type hints; :func:`from_dict` builds one from JSON-like
values, refusing unknown keys (the error names the allowed ones), values of the
wrong type, and non-finite numbers. A field's range is declared once, on the
field (:func:`bounded`), and checked here for every config; a config's
``validate()`` keeps only the rules between fields, written with :func:`check`.

A field that was renamed keeps its old name in the class's ``renamed`` table
(``{"layers": "n_layers"}``, or ``{"hidden": ("channels", convert)}`` when the
value changes form too); :func:`from_dict` maps the old name on reading, so a
config.json written before the rename still loads and resumes.

Dotted overrides (``model.code_dim=2``, ``train.lr=3e-4``) are parsed against
the target field's type, so ``--set`` on the command line and JSON on disk go
through the same checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from .errors import ConfigError

# The largest integer a config value or a command-line number may be: torch takes seeds
# and sizes as signed 64-bit integers, and a larger one ends in an overflow deep inside it.
# Below 2**63 with room for the arithmetic done on it (a seed plus a rank or an epoch).
LARGEST_INT = 2**62

__all__ = [
    "LARGEST_INT",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "Bounds",
    "apply_overrides",
    "bounded",
    "check",
    "check_bounds",
    "from_dict",
    "parse_override",
    "to_dict",
    "upgrade_names",
]


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


# --------------------------------------------------------------------------- bounds


class Bounds(NamedTuple):
    """A number's allowed range (each end open or closed, or absent); for a tuple field, the
    range of every element and, optionally, how many elements (``length``, ``min_length``)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    length: int | None = None
    min_length: int | None = None
    note: str = ""  # why, when the range is not obvious: " (codes are stored as uint16)"

    def admits(self, v: float) -> bool:
        return not (
            (self.ge is not None and v < self.ge)
            or (self.gt is not None and v <= self.gt)
            or (self.le is not None and v > self.le)
            or (self.lt is not None and v >= self.lt)
        )

    def describe(self) -> str:
        """The range in words, as the error messages say it: "at least 1", "in (0, 1]", …"""
        lo, hi = (
            (self.gt if self.gt is not None else self.ge),
            (self.lt if self.lt is not None else self.le),
        )
        if lo is not None and hi is not None:
            left, right = "(" if self.gt is not None else "[", ")" if self.lt is not None else "]"
            return f"in {left}{lo:g}, {hi:g}{right}"
        if self.gt is not None:
            return "positive" if self.gt == 0 else f"above {self.gt:g}"
        if self.ge is not None:
            return f"at least {self.ge:g}" if self.ge >= 1 else f">= {self.ge:g}"
        if self.le is not None:
            return f"at most {self.le:g}"
        return f"below {self.lt:g}" if self.lt is not None else "any number"


def bounded(default: Any, **bounds: Any) -> Any:
    """A dataclass field with its allowed range: ``code_dim: int = bounded(32, ge=1)``.

    Takes the keywords of :class:`Bounds`; :func:`check_bounds` (called by
    :func:`from_dict`) refuses a value outside it with one line naming the key.
    """
    return field(default=default, metadata={"bounds": Bounds(**bounds)})


def check_bounds(obj: Any, where: str = "") -> None:
    """Raise ConfigError for the first field of dataclass ``obj`` outside its declared bounds."""
    for f in dataclasses.fields(obj):
        b = f.metadata.get("bounds")
        if b is None:
            continue
        value = getattr(obj, f.name)
        key = f"{where}.{f.name}" if where else f.name
        if isinstance(value, tuple):
            n_ok = (b.length is None or len(value) == b.length) and (
                b.min_length is None or len(value) >= b.min_length
            )
            if not (n_ok and all(b.admits(v) for v in value)):
                count = (
                    f"{b.length} values"
                    if b.length is not None
                    else f"{b.min_length} or more values"
                    if b.min_length
                    else "values"
                )
                raise ConfigError(
                    f"{key} must be {count}, each {b.describe()}{b.note}, got {value}"
                )
        elif value is not None and not b.admits(value):
            raise ConfigError(f"{key} must be {b.describe()}{b.note}, got {value}")


# --------------------------------------------------------------------------- old names


def upgrade_names(cls: type, values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``values`` with the old names of ``cls``'s renamed fields replaced by the new ones.

    ``cls.renamed`` maps an old name to the new one, or to (new name, convert) when
    the value changes form; giving both names at once is an error.
    """
    table: dict[str, str | tuple[str, Callable[[Any], Any]]] = getattr(cls, "renamed", {})
    out = dict(values)
    for old, spec in table.items():
        if old not in out:
            continue
        new, convert = (spec, None) if isinstance(spec, str) else spec
        prefix = f"{where}." if where else ""
        if new in out:
            raise ConfigError(
                f"{prefix}{old} is the old name of {prefix}{new}; give {prefix}{new} only"
            )
        value = out.pop(old)
        if convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{prefix}{old}: cannot read {value!r}") from None
        out[new] = value
    return out


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
        out = None
        if isinstance(value, int):
            out = value
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                out = int(value)
        if out is None:
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if abs(out) > LARGEST_INT:
            raise ConfigError(f"{key}: {value!r} is too large (at most {LARGEST_INT} either way)")
        return out
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
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a JSON object, got {values!r:.60}")
    values = upgrade_names(cls, dict(values or {}), where)
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
    check_bounds(obj, where)
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

    epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(128, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = bounded(0, ge=0)
    grad_clip: float = bounded(0.0, ge=0)  # max global grad norm; 0 turns clipping off
    seed: int = bounded(0, ge=0)
    ckpt_every: int = bounded(0, ge=0)  # also checkpoint every N steps (0: at epoch ends only)
    on_nan: Literal["stop", "skip"] = "stop"  # a non-finite loss stops, or skips the batch
    amp: Literal["auto", "bf16", "off"] = "off"  # bf16 autocast; auto = where the CPU has bf16
    channels_last: bool = False
    compile: bool = False
    fused: bool = False  # fused AdamW: one kernel updates all parameters (CPU and GPU)
    num_threads: int = bounded(0, ge=0)  # 0: torch's default (one per physical core)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when there is a GPU
    # a wall-clock budget: stop at the first step boundary after it (0: off); the schedule's
    # horizon stays `epochs`, so a run stopped by time ends before its cosine reaches zero
    max_minutes: float = bounded(0.0, ge=0)


@dataclass
class DataConfig:
    """Which images: a data set name or IDX directory, how much of it, the validation split."""

    name: str = "fashion-mnist"  # fashion-mnist | mnist | synthetic | a directory of IDX files
    data_dir: str | None = None  # where the IDX files are, for fashion-mnist and mnist
    val_size: int = bounded(
        5000, ge=0
    )  # held out from the training images, the same for every seed
    limit: int = bounded(0, ge=0)  # use only the first N training (and test) images; 0: all


@dataclass
class RunConfig:
    """Everything a run directory's config.json holds."""

    model: str
    model_config: Any  # the registered model's dataclass config
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig | None = field(default_factory=DataConfig)  # None: data given by the caller
    # (a prior trains on a codes directory, which its config.json records as "codes")

    def to_json(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "model_config": to_dict(self.model_config),
            "train": to_dict(self.train),
        }
        if self.data is not None:
            out["data"] = to_dict(self.data)
        return out


_SECTIONS = {"model": "model_config", "train": "train", "data": "data"}


def apply_overrides(run: RunConfig, overrides: list[str]) -> RunConfig:
    """Return a copy of ``run`` with ``section.key=value`` overrides applied and validated."""
    sections = {"model": to_dict(run.model_config), "train": to_dict(run.train)}
    if run.data is not None:
        sections["data"] = to_dict(run.data)
    for text in overrides:
        key, value = parse_override(text)
        section, _, name = key.partition(".")
        if section not in sections or not name:
            *rest, last = (f"{name}.NAME" for name in sections)
            raise ConfigError(
                f"unknown config key {key}; keys look like {', '.join(rest)} or {last}"
            )
        if section == "model":  # an old field name replaces the field it was renamed to
            sections[section].update(upgrade_names(type(run.model_config), {name: value}))
        else:
            sections[section][name] = value  # a string; from_dict types it
    return RunConfig(
        model=run.model,
        model_config=from_dict(type(run.model_config), sections["model"], "model"),
        train=from_dict(TrainConfig, sections["train"], "train"),
        data=from_dict(DataConfig, sections["data"], "data") if "data" in sections else None,
    )
