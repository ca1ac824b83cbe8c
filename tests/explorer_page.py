"""Driving an ``aegen explore`` page in the headless browser (test helper)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from headless import Browser

DOCS_FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"

WAIT_FOR_PAGE = """(async () => {
  const app = window.aegenExplore;
  await app.ready;
  for (let i = 0; i < 600 && app.page !== %s; i++) await new Promise((r) => setTimeout(r, 25));
  await app.idle();
  return app.page; })()"""


def open_page(browser: Browser, url: str, run: str) -> None:
    """Go to ``url#run`` and wait until the page has drawn that run and gone quiet."""
    browser.goto(f"{url}#{run}")
    shown = browser.evaluate(WAIT_FOR_PAGE % json.dumps(run))
    assert shown == run


def outside(requests: list[str], allowed: str) -> list[str]:
    """The requests that went anywhere but ``allowed`` (pictures inlined as data: stay)."""
    return [u for u in requests if not u.startswith(allowed) and not u.startswith("data:")]


def artifacts_folder(tmp_path_factory) -> Path:
    """Where screenshots go: ``$AEGEN_TEST_ARTIFACTS``, else a temporary folder."""
    where = os.environ.get("AEGEN_TEST_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("explore-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(browser: Browser, folder: Path, name: str, docs: bool = False) -> Path:
    """``folder/explore-NAME.png``; with ``docs`` and AEGEN_UPDATE_FIGURES=1 also copied
    into docs/figures, where the docs show it."""
    png = browser.screenshot(folder / f"explore-{name}.png")
    assert png.stat().st_size > 5000  # a real picture, not an empty page
    if docs and os.environ.get("AEGEN_UPDATE_FIGURES") == "1":
        shutil.copy(png, DOCS_FIGURES / png.name)
    return png
