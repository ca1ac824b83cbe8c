"""Pictures drawn without matplotlib: the end-of-run report's bar chart (aegen.viz.bar_chart)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from aegen.viz import TAB, _nice_ticks, bar_chart


def _pixels(img: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return (img == np.array(rgb, dtype=np.uint8)).all(-1)


def test_bars_are_as_tall_as_their_values_and_coloured_as_asked(tmp_path):
    path = bar_chart(
        tmp_path / "b.png", [1.0, 2.0, 0.5], [TAB["blue"], TAB["gray"], TAB["blue"]],
        "title", "x", "y", hline=1.5, hline_label="λ",
    )  # fmt: skip
    img = np.asarray(Image.open(path).convert("RGB"))
    blue, gray = _pixels(img, TAB["blue"]), _pixels(img, TAB["gray"])
    # one column through each bar: its height in pixels follows its value
    cols = [np.flatnonzero(blue.any(0)), np.flatnonzero(gray.any(0))]
    first, third = cols[0][0], cols[0][-1]
    h = lambda mask, c: int(mask[:, c].sum())  # noqa: E731
    assert h(gray, cols[1][len(cols[1]) // 2]) / h(blue, first) == pytest.approx(2.0, rel=0.05)
    assert h(blue, third) / h(blue, first) == pytest.approx(0.5, rel=0.05)
    assert _pixels(img, TAB["red"]).any()  # the dashed line and its label


def test_nice_ticks_reach_the_top_in_round_steps():
    assert _nice_ticks(2.3) == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert _nice_ticks(0.018) == [0, 0.005, 0.01, 0.015, 0.02]
    assert _nice_ticks(7) == [0, 2, 4, 6, 8]


def test_the_vae_report_draws_without_importing_matplotlib(tmp_path):
    code = (
        "import sys; from aegen.eval.vae import plot_kl_per_dim; "
        f"plot_kl_per_dim({str(tmp_path / 'kl.png')!r}, [0.5, 0.0, 2.0], [True, False, True], 0.1); "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert Image.open(tmp_path / "kl.png").size[0] >= 420
