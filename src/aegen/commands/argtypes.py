"""The argument parser class and argument types every subcommand uses.

They live here, under the commands, so that a command never imports ``aegen.cli``
(which imports every command); ``aegen.cli`` re-exports them.
"""

from __future__ import annotations

import argparse
import math

from ..config import LARGEST_INT

__all__ = [
    "ArgParser",
    "fraction",
    "guidance_arg",
    "int_at_least",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
    "temperature_arg",
]


class ArgParser(argparse.ArgumentParser):
    """argparse with our error convention: one ``error:`` line, exit 2, no usage dump."""

    def error(self, message: str):  # type: ignore[override]
        prog = self.prog.removeprefix("aegen").strip()
        where = f" ({prog})" if prog else ""
        self.exit(2, f"error: {message}{where}; see --help\n")


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if isinstance(value, int) and abs(value) > LARGEST_INT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too large (at most {LARGEST_INT} either way)"
        )
    return value


def int_at_least(minimum: int):
    """An argument type: an integer of at least ``minimum`` (the message names it)."""

    def parse(text: str) -> int:
        v = _number(text, int)
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        return v

    return parse


def positive_int(text: str) -> int:
    return int_at_least(1)(text)


def nonneg_int(text: str) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def positive_float(text: str) -> float:
    v = _number(text, float)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def temperature_arg(text: str) -> float | None:
    """A positive temperature, or ``auto`` (None: the caller chooses)."""
    return None if text == "auto" else positive_float(text)


def nonneg_float(text: str) -> float:
    v = _number(text, float)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def guidance_arg(text: str) -> float | tuple[float, float]:
    """A guidance weight W >= 0, or ``A:B``: W rising (or falling) from A at the first code
    drawn to B at the last (``aegen.priors.base``); ``A:A`` is A."""
    if ":" not in text:
        return nonneg_float(text)
    start, _, end = text.partition(":")
    if ":" in end:
        raise argparse.ArgumentTypeError(f"expected W or A:B, got {text!r}")
    a, b = nonneg_float(start), nonneg_float(end)
    return a if a == b else (a, b)


def fraction(text: str) -> float:
    """A number in (0, 1]."""
    v = _number(text, float)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {v}")
    return v
