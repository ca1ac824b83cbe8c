"""A run's log: ``metrics.csv`` (one row per epoch, and per phase), TensorBoard, the printed line.

``metrics.csv`` is rewritten whole and atomically after every epoch, so a killed
run leaves the rows of its finished epochs; its columns are the union of all
rows' keys in order of first appearance, and floats are written with 6
significant digits.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

from .files import atomic_write_csv

__all__ = ["METRICS_CSV", "RunLog", "read_metrics", "write_metrics"]

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
    atomic_write_csv(path, rows, columns)


class RunLog:
    """Where a run's epochs are reported: ``metrics.csv``, TensorBoard event files (when
    tensorboard is installed) and one printed line per epoch on stderr.

    ``out_dir=None`` writes no files; ``show=False`` prints nothing; ``write=False``
    reads the history but writes nothing (the ranks other than 0 under DDP).
    """

    def __init__(self, out_dir: Path | None, show: bool = True, write: bool = True):
        self.out_dir = out_dir
        self.show = show
        self.write = write and out_dir is not None
        self._tb: Any = None  # None: not opened yet; False: tensorboard is not installed

    def history(self) -> list[dict[str, Any]]:
        """The rows already in metrics.csv (what a resumed run continues from)."""
        return [] if self.out_dir is None else read_metrics(self.out_dir / METRICS_CSV)

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], epochs: int, step: int):
        """Report a finished epoch: print its line, rewrite metrics.csv with ``history``
        (which ends with ``row``), add its numbers to TensorBoard at ``step``."""
        if self.show:
            print(self.line(row, epochs), file=sys.stderr)
        if self.write:
            write_metrics(self.out_dir / METRICS_CSV, history)
            self._tensorboard(row, step)

    @staticmethod
    def line(row: dict[str, Any], epochs: int) -> str:
        """``[phase ]epoch E/N: train_loss …, val_… …`` for an epoch's row."""
        phase = f"{row['phase']} " if row.get("phase") else ""
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k.startswith("val_"))
        # a model of several optimizers logs one loss per phase (train_d_loss, train_g_loss)
        train = (
            ["train_loss"]
            if "train_loss" in row
            else [k for k in row if k.startswith("train_") and k.endswith("_loss")]
            or ["train_loss"]
        )
        trained = ", ".join(f"{k} {row.get(k, float('nan')):.4g}" for k in train)
        return f"{phase}epoch {row['epoch']}/{epochs}: {trained}, {shown}"

    def _tensorboard(self, row: dict[str, Any], step: int) -> None:
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = False
                return
            self._tb = SummaryWriter(str(self.out_dir / "tb"))
        if self._tb:
            for k, v in row.items():
                if isinstance(v, float):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb:
            self._tb.close()
