"""From run directories to explorer pages: which kind of page a directory is, and its data.

A directory is one of

- an ``ae`` or ``vae`` run → a latent page;
- a ``vqvae`` run → a VQ page;
- an ``m2`` run (``aegen classify … --mode m2 --out DIR``) → a style page, over the
  data of the run that command was given (its classifier.json names it);
- a ``prior`` run → a prior page, paired with the VQ-VAE whose codes it was
  trained on: one of the other runs given, else the one its codes directory
  names, else a ``vqvae/`` beside it — matched by the weights' SHA-256, which
  the prior's config.json records; that VQ-VAE gets its page too;
- a VQ pipeline directory (``aegen pipeline vqvae``) → its ``vqvae/`` and
  ``prior/`` (when there is one).

Pages are named after their directories, made URL-safe and unique.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..checkpoint import CONFIG, MODEL, load, load_config, weights_hash
from ..classify import CLASSIFIER_JSON
from ..data.datasets import Dataset
from ..errors import CheckpointError, UserError
from ..prior_runs import find_vqvae
from ..priors.base import Prior
from .latent import LatentPage
from .pages import Page
from .sampling import PriorPage
from .styles import StylePage
from .vq import VQPage

__all__ = ["DEFAULT_POINTS", "open_runs", "run_data"]

DEFAULT_POINTS = 2000  # test images per page: the map's points, the VQ page's images

DataFor = Callable[[Path], Dataset]
FAMILIES = ("ae", "vae", "vqvae", "prior", "m2")  # the run families with a page


def run_data(run_dir: Path) -> Dataset:
    """The data a run was trained on, as its config.json records it."""
    from ..runs import data_from_config, run_config_from_json

    return data_from_config(run_config_from_json(load_config(run_dir), str(run_dir / CONFIG)).data)


def _m2_source(d: Path) -> tuple[Path, str | None]:
    """The directory whose data the M2 run ``d`` was trained on — the run ``aegen classify``
    was given, which only names the data — and that data's fingerprint, from its
    classifier.json (``d`` itself and no fingerprint where there is none)."""
    try:
        info = json.loads((d / CLASSIFIER_JSON).read_text())
    except (OSError, ValueError):
        return d, None
    source = Path(str(info.get("encoder_run", d)))
    return (source if (source / CONFIG).is_file() else d), info.get("data_fingerprint")


class _Names:
    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"
        name, i = base, 2
        while name in self.used:
            name, i = f"{base}-{i}", i + 1
        self.used.add(name)
        return name


def _family(d: Path) -> str:
    cfg = load_config(d)
    family = cfg.get("family")
    if family is None:  # older runs: ask the model itself
        family = getattr(load(d), "family", None)
    return str(family)


def _expand(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(run directory, family) for every run the arguments name; pipeline dirs are opened up."""
    out = []
    for p in map(Path, paths):
        if (p / CONFIG).is_file() and _family(p) not in FAMILIES:
            raise UserError(f"{p}: a {_family(p)} run has no explorer page yet")
        if not p.is_dir():
            raise UserError(f"{p}: no such run directory")
        if (p / CONFIG).is_file():
            out.append((p, _family(p)))
        elif (p / "vqvae" / CONFIG).is_file():
            out.append((p / "vqvae", "vqvae"))
            if (p / "prior" / CONFIG).is_file():
                out.append((p / "prior", "prior"))
        else:
            raise UserError(
                f"{p}: not a run directory (no {CONFIG}) nor a VQ pipeline directory (no vqvae/)"
            )
    return out


def open_runs(
    paths: Sequence[str | Path],
    data_for: DataFor = run_data,
    points: int = DEFAULT_POINTS,
) -> list[Page]:
    """One page per run in ``paths`` (see the module docstring), in the order given.

    ``data_for(run_dir)`` returns the data whose first ``points`` test images the
    page shows (default: the run's own data).
    """
    if not paths:
        raise UserError("name at least one run directory")
    runs = _expand(paths)
    names = _Names()
    vq_pages: dict[str, VQPage] = {}  # weights SHA-256 → page

    def test_split(d: Path, data: Dataset | None = None):
        data = data_for(d) if data is None else data
        if len(data.test) == 0:
            raise UserError(f"{d}: its data has no test images to show")
        return data.test.x[:points], data.test.y[:points], list(data.classes)

    def vq_page(d: Path) -> VQPage:
        key = weights_hash(d / MODEL) if (d / MODEL).is_file() else str(d.resolve())
        if key not in vq_pages:
            model = load(d, family="vqvae")
            x, y, classes = test_split(d)
            vq_pages[key] = VQPage(names(d.name), f"VQ-VAE · {d}", model, x, y, classes)
        return vq_pages[key]

    def prior_page(d: Path) -> PriorPage:
        cfg = load_config(d)
        want = cfg.get("codes", {}).get("vqvae_weights_sha256")
        if want is None:
            raise CheckpointError(f"{d}: not a prior run trained by aegen (no codes in {CONFIG})")
        if want not in vq_pages and (found := find_vqvae(d, cfg)):
            vq_page(found[0])
        if want not in vq_pages:
            raise UserError(
                f"{d}: cannot find the VQ-VAE whose codes this prior was trained on "
                f"(weights {want[:12]}…); name its run directory too"
            )
        prior, vq = load(d, family="prior"), vq_pages[want]
        if not isinstance(prior, Prior):  # the page draws codes one at a time in raster order
            raise UserError(
                f"{d}: a {prior.registry_name} prior fills its grid in parallel, not in raster "
                "order; the explorer's prior page needs an autoregressive prior "
                "(pixelcnn, pixelrnn, transformer)"
            )
        c = prior.config
        if c.num_codes != vq.num_codes or (c.height, c.width) != vq.grid:
            raise UserError(f"{d}: the prior's grid does not match its VQ-VAE's")
        return PriorPage(names(d.name), f"prior · {d}", prior, vq)

    # the VQ-VAEs first, so that a prior finds its own wherever it is listed
    for d, family in runs:
        if family == "vqvae":
            vq_page(d)
    pages: list[Page] = []

    def add(page: Page) -> None:
        if page not in pages:
            pages.append(page)

    for d, family in runs:
        if family in ("ae", "vae"):
            model = load(d, family=("ae", "vae"))
            x, y, classes = test_split(d)
            what = "VAE" if family == "vae" else "autoencoder"
            add(LatentPage(names(d.name), f"{what} · {d}", model, x, y, classes))
        elif family == "vqvae":
            add(vq_page(d))
        elif family == "prior":
            page = prior_page(d)
            add(page.vq)  # a VQ-VAE found beside the prior gets its page, just before it
            add(page)
        elif family == "m2":
            source, fingerprint = _m2_source(d)
            data = data_for(source)
            if fingerprint is not None and data.fingerprint() != fingerprint:
                raise UserError(
                    f"{d}: this M2 was trained on other data than {source} names; "
                    "say which with --data"
                )
            x, y, classes = test_split(d, data)
            add(StylePage(names(d.name), f"M2 · {d}", load(d, family="m2"), x, y, classes))
    return pages


def warm_up(pages: Sequence[Page]) -> None:
    """One decode per page, so the first hover does not pay for lazy initialisation."""
    with torch.no_grad():
        for page in pages:
            if isinstance(page, LatentPage):
                page.decode(page.center[None])
            elif isinstance(page, VQPage):
                page.decode_grids(page.codes[:1])
