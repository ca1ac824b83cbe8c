"""``aegen explore RUN --static DIR``: the explorer as a folder of files, no Python needed.

The folder holds the same page and script as the live server, plus ``data.js``
with everything precomputed — the latent map with a grid of decodes over it
(hovering shows the nearest), the VQ-VAE's codebook and some test images with
their code grids, recorded prior-sampling runs to step through, an M2 run's styles
in every class — and PNG
sheets of the same pictures for slides (``sheets/``). The data is a script, not a JSON file,
because a page opened from ``file://`` may load scripts but not fetch files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write_bytes, atomic_write_text, ensure_dir, json_text
from ..viz import image_grid, save_image
from .latent import STATIC_GRID, LatentPage
from .pages import Page
from .server import assets
from .styles import RANDOM_ROWS, StylePage
from .vq import VQPage

__all__ = ["export_static"]

DATA_MARK = "<!--aegen:static-data-->"


def _sheets(page: Page, out: Path) -> list[str]:
    """PNG sheets of what a page precomputes; returns the file names written."""
    if isinstance(page, LatentPage):
        name = f"sheets/{page.name}-latent-grid.png"
        save_image(out / name, image_grid(page.grid_images(), nrow=STATIC_GRID, pad=0, scale=1))
        return [name]
    if isinstance(page, VQPage):
        name = f"sheets/{page.name}-codebook.png"
        save_image(out / name, image_grid(page.codebook_images(), nrow=16, scale=1))
        return [name]
    if isinstance(page, StylePage):  # the prior's styles of seed 0, a row each, a class a column
        name = f"sheets/{page.name}-styles.png"
        rows = page.rows(page.prior_styles(0, RANDOM_ROWS)).flatten(0, 1)
        save_image(out / name, image_grid(rows, nrow=page.num_classes, scale=1))
        return [name]
    return []


def export_static(pages: Sequence[Page], out_dir: str | os.PathLike) -> Path:
    """Write the self-contained explorer for ``pages`` into ``out_dir`` (new or empty)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty directory; choose another --static")
    files = assets()
    data: dict[str, Any] = {"runs": [p.summary() for p in pages], "pages": {}}
    ensure_dir(out)
    ensure_dir(out / "sheets")
    for page in pages:
        data["pages"][page.name] = {**page.static(), "sheets": _sheets(page, out)}
    html = files["index.html"].decode()
    if DATA_MARK not in html:
        raise AssertionError("index.html has lost its static-data mark")
    page_html = html.replace(DATA_MARK, '<script src="assets/data.js"></script>')
    atomic_write_text(out / "index.html", page_html)
    ensure_dir(out / "assets")
    for name, content in files.items():
        if name != "index.html":
            atomic_write_bytes(out / "assets" / name, content)
    payload = json_text(data, separators=(",", ":"))
    atomic_write_text(out / "assets" / "data.js", f"window.AEGEN_STATIC = {payload};\n")
    return out / "index.html"
