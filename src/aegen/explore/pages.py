"""What every explorer page shares: the request error, checked request fields, image payloads.

A *page* is one run seen in the browser. It answers named actions with JSON-ready
dicts; the server (:mod:`aegen.explore.server`) only routes to them, so a page
can be driven from Python (and tested) without HTTP. Everything a request
carries is untrusted: the helpers here turn a missing field, a wrong type, a
number out of range or a non-finite float into a :class:`RequestError`, which the
server answers with a 4xx and its one-line message.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

__all__ = [
    "ImagesPage",
    "ModelPage",
    "Page",
    "RequestError",
    "field_float",
    "field_int",
    "field_int_list",
    "field_list",
    "field_optional_int",
    "field_float_list",
    "pixels",
]

# Bound on any coordinate a page accepts: far outside every latent space the models learn,
# small enough that decoding it cannot overflow float32 into inf/nan pictures.
COORD_LIMIT = 1e4


class RequestError(Exception):
    """A request the page cannot answer; ``status`` is the HTTP status (4xx), the message one line."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _get(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise RequestError(f"missing field {key!r}")
    return body[key]


def field_int(body: dict[str, Any], key: str, low: int, high: int, default: Any = ...) -> int:
    """``body[key]`` as an int in [low, high]; booleans and floats are refused."""
    if default is not ... and key not in body:
        return default
    v = _get(body, key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise RequestError(f"{key} must be an integer, got {type(v).__name__}")
    if not low <= v <= high:
        raise RequestError(f"{key} must be in {low}..{high}, got {v}")
    return v


def field_optional_int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    """Like :func:`field_int`, but a missing key or ``null`` is None."""
    if body.get(key) is None:
        return None
    return field_int(body, key, low, high)


def field_float(
    body: dict[str, Any], key: str, low: float, high: float, default: Any = ...
) -> float:
    """``body[key]`` as a finite float in [low, high]."""
    if default is not ... and key not in body:
        return default
    v = _get(body, key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise RequestError(f"{key} must be a number, got {type(v).__name__}")
    if not math.isfinite(v) or not low <= v <= high:
        raise RequestError(f"{key} must be a finite number in [{low:g}, {high:g}], got {v}")
    return float(v)


def field_list(body: dict[str, Any], key: str, length: int | tuple[int, int]) -> list[Any]:
    """``body[key]`` as a list of ``length`` items (or a (min, max) range of lengths)."""
    v = _get(body, key)
    if not isinstance(v, list):
        raise RequestError(f"{key} must be a list, got {type(v).__name__}")
    low, high = (length, length) if isinstance(length, int) else length
    if not low <= len(v) <= high:
        want = str(low) if low == high else f"{low}..{high}"
        raise RequestError(f"{key} must hold {want} values, got {len(v)}")
    return v


def field_float_list(
    body: dict[str, Any], key: str, length: int, limit: float = COORD_LIMIT
) -> torch.Tensor:
    """``body[key]``: exactly ``length`` finite numbers of magnitude ≤ ``limit`` → (length,) float32."""
    v = field_list(body, key, length)
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in v):
        raise RequestError(f"{key} must hold numbers only")
    t = torch.tensor(v, dtype=torch.float64)
    if not torch.isfinite(t).all() or t.abs().max() > limit:
        raise RequestError(f"{key} must hold finite numbers of magnitude at most {limit:g}")
    return t.float()


def field_int_list(
    body: dict[str, Any], key: str, length: int | tuple[int, int], low: int, high: int
) -> list[int]:
    """``body[key]``: a list of ints in [low, high], ``length`` of them (or a (min, max) range)."""
    v = field_list(body, key, length)
    for i, a in enumerate(v):
        if isinstance(a, bool) or not isinstance(a, int):
            raise RequestError(f"{key}[{i}] must be an integer, got {type(a).__name__}")
        if not low <= a <= high:
            raise RequestError(f"{key}[{i}] must be in {low}..{high}, got {a}")
    return v


def pixels(image: torch.Tensor | np.ndarray) -> str:
    """One grayscale image (1, H, W) or (H, W), float in [0, 1] or uint8 → base64 of its H·W bytes.

    The page draws these bytes straight into a canvas; base64 is a third the size
    of a JSON list of numbers and decodes in one call in the browser.
    """
    a = np.asarray(image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image)
    if a.ndim == 3:
        a = a[0]
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


Action = Callable[[dict[str, Any]], dict[str, Any]]


class Page:
    """One run in the explorer: ``info()`` for the page to build itself, actions for the rest.

    An action is a method ``act_NAME(body) -> dict``; the ones answered to GET
    (no body) are named in ``get_actions``. ``static()`` returns what the
    exported folder needs instead of a live server.
    """

    kind: ClassVar[str] = "page"
    get_actions: ClassVar[frozenset[str]] = frozenset({"info"})

    def __init__(self, name: str, title: str):
        self.name = name
        self.title = title

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "title": self.title}

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def act_info(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.info()

    def static(self) -> dict[str, Any]:
        raise NotImplementedError

    def handle(self, action: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
        """Answer ``action``; an unknown one is a 404, a GET of a POST action a 405."""
        fn: Action | None = getattr(self, f"act_{action}", None) if action.isidentifier() else None
        if fn is None:
            raise RequestError(f"this {self.kind} page has no action {action!r}", 404)
        if method == "GET" and action not in self.get_actions:
            raise RequestError(f"{action} takes a POST with a JSON body", 405)
        return fn(body)


class ImagesPage(Page):
    """A page over test images: ``images`` (N, 28, 28) uint8, ``labels`` (N,), class names."""

    def __init__(
        self, name: str, title: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str]
    ):
        super().__init__(name, title)
        self.images, self.labels, self.classes = images, labels.long(), list(classes)

    def images_info(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "n": len(self.labels),
            "classes": self.classes,
            "labels": self.labels.tolist(),
        }

    def field_index(self, body: dict[str, Any], key: str = "index") -> int:
        """``body[key]`` as the index of one of the page's test images."""
        return field_int(body, key, 0, len(self.labels) - 1)


class ModelPage(ImagesPage):
    """An :class:`ImagesPage` over one trained model (put in eval mode); :meth:`prepare`
    computes, once, what the page needs from the model and the images."""

    def __init__(
        self,
        name: str,
        title: str,
        model: torch.nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: list[str],
    ):
        super().__init__(name, title, images, labels, classes)
        self.model = model.eval()
        self.prepare()

    def prepare(self) -> None:
        raise NotImplementedError
