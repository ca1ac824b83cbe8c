"""Pictures: image grids and small charts (Pillow), and plots (matplotlib, imported only
when drawing).

Every function writes its file atomically and returns the path.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .data.loader import to_float
from .eval.classify import accuracy
from .files import atomic_write_bytes

__all__ = [
    "bar_chart",
    "figure",
    "image_grid",
    "latent_scatter",
    "line_chart",
    "plot_curves",
    "save_confusion",
    "save_figure",
    "save_grid",
    "save_image",
    "save_recon_grid",
    "scatter_2d",
]


def _to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W), float in [0, 1] or uint8 → uint8 (N, H, W)."""
    a = (
        images.detach().float().cpu().numpy()
        if isinstance(images, torch.Tensor)
        else np.asarray(images)
    )
    if a.ndim == 4:
        a = a[:, 0]
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    return a


def image_grid(
    images: torch.Tensor | np.ndarray,
    nrow: int = 10,
    pad: int = 2,
    scale: int = 2,
    pad_value: int = 255,
) -> Image.Image:
    """Tile N grayscale images into rows of ``nrow``, magnified ``scale`` times."""
    a = _to_uint8(images)
    n, h, w = a.shape
    nrow = max(1, min(nrow, n))
    rows = -(-n // nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = a[i]
    img = Image.fromarray(grid, mode="L")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def save_image(path: str | os.PathLike, img: Image.Image) -> Path:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_grid(
    path: str | os.PathLike, images: torch.Tensor | np.ndarray, nrow: int = 10, **kw: Any
) -> Path:
    """Save a grid of images as PNG."""
    return save_image(path, image_grid(images, nrow=nrow, **kw))


def save_recon_grid(
    path: str | os.PathLike, originals: torch.Tensor, recons: torch.Tensor, nrow: int = 10
) -> Path:
    """Rows of originals, each followed by a row of their reconstructions."""
    n = originals.shape[0]
    rows = []
    for start in range(0, n, nrow):
        rows.append(originals[start : start + nrow])
        rows.append(recons[start : start + nrow])
    return save_grid(path, torch.cat(rows), nrow=nrow)


TAB = {"blue": (31, 119, 180), "gray": (127, 127, 127), "red": (214, 39, 40)}


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 × a power of ten)."""
    import math

    raw = max(top, 1e-12) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def bar_chart(
    path: str | os.PathLike,
    values: Sequence[float],
    colors: Sequence[tuple[int, int, int]],
    title: str,
    xlabel: str,
    ylabel: str,
    hline: float | None = None,
    hline_label: str = "",
) -> Path:
    """A bar chart drawn with Pillow alone: one bar per value, labelled axes, optional
    dashed horizontal line. For the end-of-run report, where importing matplotlib
    (0.6 s) cost more than the rest of a small VAE's report."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    n = len(values)
    left, right, top, bottom = 62, 16, 34, 46
    width = min(820, max(420, left + right + 24 * n))
    height = 320
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    peak = max([*values, hline or 0.0, 1e-9])
    ticks = _nice_ticks(peak)
    y_top = ticks[-1]
    x0, x1, y0, y1 = left, width - right, height - bottom, top

    def y_at(v: float) -> float:
        return y0 - (y0 - y1) * v / y_top

    for t in ticks:  # grid and y tick labels
        y = y_at(t)
        d.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        label = f"{t:g}"
        d.text((x0 - 6, y), label, fill="black", font=font, anchor="rm")
    slot = (x1 - x0) / max(n, 1)
    for i, (v, c) in enumerate(zip(values, colors, strict=True)):
        a = x0 + i * slot + 0.15 * slot
        d.rectangle([a, y_at(max(v, 0.0)), a + 0.7 * slot, y0], fill=c)
        if n <= 20 or i % 5 == 0:
            d.text((x0 + (i + 0.5) * slot, y0 + 4), str(i), fill="black", font=font, anchor="mt")
    if hline is not None:
        _dashed_hline(d, font, x0, x1, y_at(hline), hline_label)
    _frame(img, d, font, (x0, x1, y0, y1), title, xlabel, ylabel)
    return save_image(path, img)


def _dashed_hline(d: Any, font: Any, x0: int, x1: int, y: float, label: str) -> None:
    """A red dashed line across the plot at height ``y``, labelled at its right end."""
    for xa in range(x0, x1, 8):
        d.line([(xa, y), (min(xa + 4, x1), y)], fill=TAB["red"], width=1)
    box = d.textbbox((x1 - 4, y - 3), label, font=font, anchor="rd")
    d.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill="white")
    d.text((x1 - 4, y - 3), label, fill=TAB["red"], font=font, anchor="rd")


def _frame(
    img: Image.Image,
    d: Any,
    font: Any,
    box: tuple[float, float, float, float],
    title: str,
    xlabel: str,
    ylabel: str,
) -> None:
    """The axes' two lines, the title, the x label and the rotated y label."""
    from PIL import ImageDraw

    x0, x1, y0, y1 = box
    d.line([(x0, y1), (x0, y0), (x1, y0)], fill="black")
    d.text(((x0 + x1) / 2, img.height - 8), xlabel, fill="black", font=font, anchor="md")
    d.text((img.width / 2, 10), title, fill="black", font=font, anchor="mt")
    label = Image.new("RGB", (int(d.textlength(ylabel, font=font)) + 4, 16), "white")
    ImageDraw.Draw(label).text((2, 1), ylabel, fill="black", font=font)
    rotated = label.rotate(90, expand=True)
    img.paste(rotated, (6, int((y0 + y1) / 2 - rotated.height / 2)))


# one colour per line of a line chart (matplotlib's tab10 without its red, kept for hlines)
SERIES = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over [lo, hi]: the powers of ten inside it, and their
    2× and 5× when the span is under three decades (so a short axis still has ticks)."""
    import math

    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if b - a < 3 else (1,)
    ticks = [m * 10.0**e for e in range(a, b + 1) for m in steps]
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside or [lo, hi]


def line_chart(
    path: str | os.PathLike,
    series: dict[str, Sequence[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
    hline: float | None = None,
    hline_label: str = "",
) -> Path:
    """Lines with a dot at each (x, y) point, one per named series, drawn with Pillow
    alone (as :func:`bar_chart`): a legend at the top right, the y axis from 0, an
    optional red dashed horizontal line. ``log_x`` puts x on a log scale (every x must
    then be positive). Series colours follow :data:`SERIES` in the order given."""
    import math

    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    width, height = 640, 400
    left, right, top, bottom = 62, 16, 34, 46
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    if log_x and any(x <= 0 for x in xs):
        raise ValueError("a log x axis needs positive x values")
    ticks_y = _nice_ticks(1.05 * max([*ys, hline or 0.0, 1e-9]))  # headroom for the top dot
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    lo, hi = (min(xs), max(xs)) if xs else (1.0, 10.0)
    if log_x:
        lo, hi = lo / 1.25, hi * 1.25  # a margin, so no dot sits on an axis
        fx = lambda v: math.log10(v)  # noqa: E731
        ticks_x = _log_ticks(lo, hi)
    else:
        lo, hi = 0.0, _nice_ticks(hi)[-1]
        fx = lambda v: v  # noqa: E731
        ticks_x = _nice_ticks(hi)
    if fx(hi) <= fx(lo):
        hi = lo * 10 if log_x else lo + 1

    def x_at(v: float) -> float:
        return x0 + (x1 - x0) * (fx(v) - fx(lo)) / (fx(hi) - fx(lo))

    def y_at(v: float) -> float:
        return y0 - (y0 - y1) * v / ticks_y[-1]

    for t in ticks_y:
        d.line([(x0, y_at(t)), (x1, y_at(t))], fill=(225, 225, 225))
        d.text((x0 - 6, y_at(t)), f"{t:g}", fill="black", font=font, anchor="rm")
    for t in ticks_x:
        d.line([(x_at(t), y0), (x_at(t), y1)], fill=(235, 235, 235))
        d.text((x_at(t), y0 + 4), f"{t:g}", fill="black", font=font, anchor="mt")
    if hline is not None:
        _dashed_hline(d, font, x0, x1, y_at(hline), hline_label)
    for pts, color in zip(series.values(), _cycle(SERIES, len(series)), strict=True):
        at = [(x_at(x), y_at(y)) for x, y in sorted(pts)]
        if len(at) > 1:
            d.line(at, fill=color, width=2)
        for x, y in at:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
    if series:  # the legend, top right: a short line of each colour and its name
        wide = max(int(d.textlength(name, font=font)) for name in series)
        lx = x1 - 8 - wide
        d.rectangle([lx - 28, y1 + 2, x1 - 2, y1 + 14 + 16 * len(series)], fill="white")
        for i, (name, color) in enumerate(zip(series, _cycle(SERIES, len(series)), strict=True)):
            ly = y1 + 8 + 16 * i
            d.line([(lx - 22, ly), (lx - 6, ly)], fill=color, width=2)
            d.text((lx, ly), name, fill="black", font=font, anchor="lm")
    _frame(img, d, font, (x0, x1, y0, y1), title, xlabel, ylabel)
    return save_image(path, img)


def _cycle(colors: Sequence[tuple[int, int, int]], n: int) -> list[tuple[int, int, int]]:
    return [colors[i % len(colors)] for i in range(n)]


def figure(width: float = 6.0, height: float = 4.0):
    """A matplotlib figure that only draws to files (no display needed).

    A bare ``Figure``, not pyplot's: switching pyplot's backend to Agg here would
    silently stop every later ``plt.show()`` of a notebook that called us.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def scatter_2d(
    path: str | os.PathLike,
    points: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    classes: Sequence[str],
    title: str = "",
    xlabel: str = "z1",
    ylabel: str = "z2",
) -> Path:
    """Scatter of 2-D points coloured by class, with a legend of class names."""
    p = np.asarray(
        points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64
    )
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    fig = figure(7, 6)
    ax = fig.add_subplot(111)
    cmap = __import__("matplotlib").colormaps["tab10"]
    for c, name in enumerate(classes):
        sel = y == c
        if sel.any():
            ax.scatter(p[sel, 0], p[sel, 1], s=4, alpha=0.6, color=cmap(c % 10), label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(markerscale=4, fontsize=8, loc="best")
    return save_figure(fig, path)


def latent_scatter(path: str | os.PathLike, model: Any, data: Any) -> Path:
    """Test codes coloured by class: the code itself if 2-D, else its top two principal components."""
    with torch.no_grad():
        z = torch.cat(
            [
                model.encode(to_float(data.test.x[i : i + 1000]))
                for i in range(0, len(data.test), 1000)
            ]
        )
    if z.shape[1] == 2:
        pts, title, xl, yl = z, "test set in the 2-D code", "z1", "z2"
    else:
        zc = z - z.mean(0)
        _, _, vt = torch.linalg.svd(zc, full_matrices=False)
        pts = zc @ vt[:2].T
        title, xl, yl = (
            f"test set: {z.shape[1]}-D codes, first two principal components",
            "PC1",
            "PC2",
        )
    return scatter_2d(path, pts, data.test.y, data.classes, title, xl, yl)


def plot_curves(
    path: str | os.PathLike,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    x: str = "epoch",
    title: str = "",
    logy: bool = False,
) -> Path:
    """Line plot of ``keys`` against ``x`` from metrics rows (strings or numbers)."""
    fig = figure(6, 4)
    ax = fig.add_subplot(111)
    xs = list(range(1, len(rows) + 1)) if x == "index" else None
    for k in keys:
        pts = [
            (i + 1 if xs else float(r[x]), float(r[k]))
            for i, r in enumerate(rows)
            if r.get(k) not in (None, "")
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=k)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_confusion(path: str | Path, cm: torch.Tensor, classes: list[str], title: str = "") -> Path:
    """The confusion matrix as a PNG: rows true, columns predicted, shaded by row share."""
    counts = cm.double()
    share = counts / counts.sum(1, keepdim=True).clamp_min(1)
    c = len(classes)
    fig = figure(7, 6)
    ax = fig.add_subplot(111)
    ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(c), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(c), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {accuracy(cm):.2%}")
    return save_figure(fig, path)
