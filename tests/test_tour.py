"""``aegen tour``: every part of the lecture end to end on synthetic data, killed and resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import assert_user_error, run_cli_subprocess

from aegen.pipelines.tour import PARTS


def _tour_argv(out):
    return ["tour", "--out", str(out), "--budget", "tiny", "--data", "synthetic", "--quiet"]


def _finished_parts(out) -> list[str]:
    try:
        return list(json.loads((out / "tour.json").read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return []


def test_tour_killed_after_a_part_resumes_without_redoing_it(tmp_path):
    out = tmp_path / "tour"
    env = {**os.environ, "AEGEN_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegen", *_tour_argv(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not _finished_parts(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _finished_parts(out)
    assert done, "the tour recorded no finished part before it was killed"
    first = out / "1-autoencoders" / "ae-mlp" / "model.safetensors"
    stamp = first.stat().st_mtime_ns
    assert not (out / "report.html").exists() or len(done) == len(PARTS)

    r = run_cli_subprocess(
        *_tour_argv(out), env={"AEGEN_CACHE": str(tmp_path / "cache")}, timeout=900
    )
    assert r.code == 0, r.err
    for part in done:
        assert f"{PARTS[part][0]}] done already; skipped" in r.err, r.err
    assert r.err.count("done already; skipped") == len(done)
    assert first.stat().st_mtime_ns == stamp  # the finished part's runs were not trained again

    page = (out / "report.html").read_text()
    ids = re.findall(r'<section class="part" id="part-([a-z]+)"', page)
    assert ids == list(PARTS)  # one section per part, in the lecture's order
    for key in PARTS:
        section = page.split(f'id="part-{key}"', 1)[1].split("</section>", 1)[0]
        assert "not run yet" not in section
        assert section.count("<figure>") >= 1, key
        assert "<figcaption>" in section
    state = json.loads((out / "tour.json").read_text())
    assert state["parts"]["autoencoders"]["numbers"]
    assert "img-src data:" in page and "http" not in page.split("<body>", 1)[1]


def test_tour_refuses_a_directory_of_another_tour_or_data(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "tour.json").write_text(
        json.dumps(
            {"budget": "quick", "data": "synthetic", "data_dir": None, "seed": 0, "parts": {}}
        )
    )
    assert_user_error(run_cli_subprocess(*_tour_argv(out)), "budget='quick'")
    other = tmp_path / "full"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    assert_user_error(run_cli_subprocess(*_tour_argv(other)), "not empty")
    assert (other / "x.txt").read_text() == "mine"
    assert_user_error(
        run_cli_subprocess(*_tour_argv(tmp_path / "n"), "--parts", "primer,nope"), "nope"
    )
    assert not (tmp_path / "n").exists()
