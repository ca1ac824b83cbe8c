"""Atomic writes: a library save call through a temporary file, the CSV writer every
results file goes through (header, number format, missing and extra keys), and the JSON
writer's standard JSON (no NaN or Infinity, which other readers refuse)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from aegen.files import atomic_save, atomic_write_bytes, atomic_write_csv, atomic_write_json


def _strict(text: str):
    """Parse as a JSON reader outside Python would: NaN, Infinity and -Infinity refused."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_files_hold_null_where_a_number_was_not_finite(tmp_path):
    path = tmp_path / "metrics.json"
    obj = {
        "fid": math.nan,
        "rows": [1.5, math.inf, (-math.inf, 2)],
        "nested": {"ok": 0.25, "bad": float("nan"), "n": 3, "name": "nan", "flag": True},
    }
    atomic_write_json(path, obj)
    assert _strict(path.read_text()) == {
        "fid": None,
        "rows": [1.5, None, [None, 2]],
        "nested": {"ok": 0.25, "bad": None, "n": 3, "name": "nan", "flag": True},
    }
    assert obj["rows"][1] == math.inf  # the caller's object is not changed
    assert list(tmp_path.iterdir()) == [path]


def test_csv_rows_floats_six_digits_missing_empty_extra_dropped(tmp_path):
    path = tmp_path / "rows.csv"
    rows = [
        {"name": "a", "n": 3, "x": 1 / 3, "ignored": "yes"},
        {"name": "b", "x": 123456789.0},  # no n
    ]
    atomic_write_csv(path, rows, ["name", "n", "x"])
    text = path.read_text()
    assert text.splitlines() == ["name,n,x", "a,3,0.333333", "b,,1.23457e+08"]
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert back[0] == {"name": "a", "n": "3", "x": "0.333333"}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_a_library_save_lands_whole_or_leaves_the_previous_file(tmp_path):
    target = tmp_path / "weights.bin"
    atomic_write_bytes(target, b"old")

    def save_then_fail(name):
        with open(name, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_save(target, save_then_fail)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]

    def save(name):
        with open(name, "wb") as f:
            f.write(b"new")

    atomic_save(target, save)
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]
