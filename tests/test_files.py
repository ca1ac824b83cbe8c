"""The CSV writer every results file goes through: header, number format, missing and extra keys."""

from __future__ import annotations

import csv

from aegen.files import atomic_write_csv


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
