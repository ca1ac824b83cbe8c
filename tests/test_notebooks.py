"""Every notebook in examples/ runs top to bottom on synthetic data (its parameter cell switched)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# What CI runs with: small, fast, and no download.
OVERRIDES = {
    "DATA": '"synthetic"',
    "EPOCHS": "1",
    "LIMIT": "1200",
    "SAMPLES": "20_000",
    "BUDGET": '"tiny"',
}


def _parameterise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Insert a cell after the 'parameters' cell that overrides the names it defines."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.metadata.get("tags", []):
            names = [
                line.split("=")[0].strip()
                for line in cell.source.splitlines()
                if "=" in line and not line.lstrip().startswith("#")
            ]
            lines = [f"{n} = {OVERRIDES[n]}" for n in names if n in OVERRIDES]
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell("\n".join(lines)))
            return nb
    raise AssertionError("notebook has no cell tagged 'parameters'")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = _parameterise(nbformat.read(path, as_version=4))
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert images, "a notebook should show at least one figure"
