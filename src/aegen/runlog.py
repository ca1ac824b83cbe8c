"""A run's log: ``metrics.csv`` (one row per epoch, and per phase), TensorBoard, the printed line.

``metrics.csv`` is rewritten whole and atomically after every epoch, so a killed
run leaves the rows of its finished epochs; its columns are the union of all
rows' keys in order of first appearance, and floats are written with 6
significant digits.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .files import atomic_write_text

__all__ = ["METRICS_CSV", "read_metrics", "write_metrics"]

METRICS_CSV = "metrics.csv"


def read_metrics(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` atomically; columns are the union of all rows' keys, in order."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
