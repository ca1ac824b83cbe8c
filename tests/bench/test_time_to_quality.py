"""The time-to-quality benchmark on tiny synthetic runs: rows per checkpoint, resuming,
what counts as training time, the ceiling, and the refusals (quality itself is not asserted)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

import aegen
from aegen.bench import time_to_quality as ttq
from aegen.checkpoint import load, load_config
from aegen.errors import UserError
from aegen.eval.evaluate import EvalOptions, ReconstructionSampler, evaluate_run
from aegen.runs import make_run_config, train_run
from aegen.train import Trainer
from aegen.viz import SERIES, TAB

LIMIT, VAL = 600, 100
EVAL_N = 20
TINY = [
    "vae-mlp.model.hidden=32",
    "vae-mlp.model.latent_dim=4",
    "vae-mlp.train.batch_size=50",
    "prior:transformer.model.d_model=32",
    "prior:transformer.model.n_layers=2",
    "prior:transformer.train.batch_size=50",
    "prior:transformer.train.warmup_steps=0",
]
MODELS = ["vae-mlp", "prior:transformer"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These runs take milliseconds a step: a second thread only adds synchronisation, and
    on a busy 2-core machine its waiting made a 10-step epoch take 3 s instead of 0.05 s."""
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)


@pytest.fixture(scope="module")
def data():
    return aegen.load_data("synthetic", val_size=VAL, limit=LIMIT)


@pytest.fixture(scope="module")
def vqvae_run(tmp_path_factory, data):
    """A tiny finished VQ-VAE run on the same images."""
    out = tmp_path_factory.mktemp("ttq") / "vqvae"
    run = make_run_config(
        "vqvae",
        data="synthetic",
        limit=LIMIT,
        val_size=VAL,
        epochs=1,
        overrides=[
            "model.num_codes=32",
            "model.codebook_dim=8",
            "model.channels=8,16",
            "model.res_dim=8",
            "train.batch_size=25",
        ],
    )
    train_run(run, out, progress=False, data=data)
    return out


def _bench(out, vqvae_run, features, **kw):
    args = dict(
        models=MODELS, epochs=(1, 2), data="synthetic", limit=LIMIT, val_size=VAL,
        vqvae_dir=vqvae_run, eval_n=EVAL_N, features=features, overrides=TINY,
    )  # fmt: skip
    return ttq.time_to_quality(out, **{**args, **kw})


@pytest.fixture(scope="module")
def done(tmp_path_factory, vqvae_run, tiny_features):
    """One finished benchmark of the VAE and the transformer prior at 1 and 2 epochs
    (tests that run it again work on a copy)."""
    out = tmp_path_factory.mktemp("ttq") / "bench"
    return out, _bench(out, vqvae_run, tiny_features)


def _copy(done, tmp_path):
    out = tmp_path / "bench"
    shutil.copytree(done[0], out)
    return out


def _no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("trained although every row was there")

    monkeypatch.setattr(ttq, "train_run", refuse)
    monkeypatch.setattr(Trainer, "fit", refuse)


def test_a_row_per_checkpoint_with_epochs_and_training_time_growing(done):
    out, report = done
    rows = ttq.read_rows(out)
    assert rows == report["rows"]
    assert [(r["model"], r["epochs"]) for r in rows] == [
        ("vae-mlp", 1),
        ("vae-mlp", 2),
        ("prior:transformer", 1),
        ("prior:transformer", 2),
    ]
    for model in MODELS:
        one, two = (r for r in rows if r["model"] == model)
        assert 0 < one["cpu_minutes"] < two["cpu_minutes"]
        assert 0 < one["wall_minutes"] < two["wall_minutes"]
        assert 0 < one["steps"] < two["steps"]
        assert not one["interrupted"] and not two["interrupted"]
        for r in (one, two):
            assert all(math.isfinite(r[k]) for k in ("fid", "kid_mean", "precision", "recall"))
    assert all("bits_per_code" in r for r in rows if r["model"] == "prior:transformer")
    assert not any("bits_per_code" in r for r in rows if r["model"] == "vae-mlp")
    # one run extended from 1 to 2 epochs, not a second run
    cfg = load_config(out / "runs" / "prior-transformer")
    assert cfg["train"]["epochs"] == 2
    assert [(e["from_epochs"], e["to_epochs"]) for e in cfg["extended"]] == [(1, 2)]
    assert report["machine"]["torch_threads"] >= 1 and "cpu" in report["machine"]
    assert json.loads((out / "report.json").read_text())["rows"] == rows


def test_the_plot_has_a_line_per_model_and_the_ceiling_dashed(done):
    out, _ = done
    img = np.asarray(Image.open(out / "fid_vs_cpu_minutes.png").convert("RGB"))
    for color in (SERIES[0], SERIES[1], TAB["red"]):
        assert (img == color).all(-1).sum() > 20, color
    # without a ceiling there is no red at all
    ttq.plot_rows(out / "no_ceiling.png", ttq.read_rows(out), None)
    img = np.asarray(Image.open(out / "no_ceiling.png").convert("RGB"))
    assert not (img == TAB["red"]).all(-1).any()


def test_a_rerun_skips_the_rows_it_has_and_scores_a_trained_checkpoint_again(
    done, vqvae_run, tiny_features, tmp_path, monkeypatch
):
    out = _copy(done, tmp_path)
    _no_training(monkeypatch)
    again = _bench(out, vqvae_run, tiny_features)
    assert again["rows"] == done[1]["rows"]
    # killed while scoring the last checkpoint: it is trained (the ledger has its time),
    # so the rerun scores it, without training, to the same row
    lines = (out / "rows.jsonl").read_text().splitlines()
    (out / "rows.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    again = _bench(out, vqvae_run, tiny_features)
    want = {k: v for k, v in done[1]["rows"][-1].items() if k != "score_wall_s"}
    assert {k: v for k, v in again["rows"][-1].items() if k != "score_wall_s"} == want


def test_training_the_ledger_did_not_time_marks_its_row_interrupted(
    done, vqvae_run, tiny_features, data, tmp_path
):
    out = _copy(done, tmp_path)
    # a training call that ended (or was killed) before the ledger was written
    train_run(None, out / "runs" / "vae-mlp", resume=True, progress=False, data=data, epochs=3)
    report = _bench(out, vqvae_run, tiny_features, models=["vae-mlp"], epochs=(1, 2, 3))
    rows = [r for r in report["rows"] if r["model"] == "vae-mlp"]
    assert [r["epochs"] for r in rows] == [1, 2, 3]
    assert [r["interrupted"] for r in rows] == [False, False, True]


def test_scoring_time_is_not_training_time(tiny_features, tmp_path, monkeypatch):
    trained = []
    real_train, real_eval = ttq.train_run, ttq.evaluate_run

    def timed_train(*a, **k):
        t = time.process_time()
        try:
            return real_train(*a, **k)
        finally:
            trained.append(time.process_time() - t)

    def busy_eval(*a, **k):  # a scorer that burns 1.5 s of CPU first
        t = time.process_time()
        while time.process_time() - t < 1.5:
            pass
        return real_eval(*a, **k)

    monkeypatch.setattr(ttq, "train_run", timed_train)
    monkeypatch.setattr(ttq, "evaluate_run", busy_eval)
    report = _bench(tmp_path / "bench", None, tiny_features, models=["vae-mlp"])
    one, two = report["rows"]
    assert len(trained) == 2
    assert one["cpu_minutes"] * 60 == pytest.approx(trained[0], abs=0.05)
    assert two["cpu_minutes"] * 60 == pytest.approx(sum(trained), abs=0.05)
    assert sum(trained) < 1.5  # else the burn would hide in the tolerance


def test_the_ceiling_is_the_vqvaes_test_reconstructions_scored_as_samples(
    done, vqvae_run, tiny_features, data
):
    vqvae = load(vqvae_run, family="vqvae").eval()
    ev = evaluate_run(
        vqvae_run,
        data,
        tiny_features,
        EvalOptions(n=EVAL_N, seed=0),
        sampler=ReconstructionSampler(vqvae, data.test),
        model=vqvae,
        only=("samples",),
    )
    want = ev.sections["samples"]
    got = done[1]["ceiling"]
    for k in ("fid", "kid_mean", "precision", "recall"):
        assert got[k] == pytest.approx(want[k], rel=1e-9), k
    assert got["n_samples"] == EVAL_N


def test_other_settings_in_the_same_directory_are_refused(
    done, vqvae_run, tiny_features, tmp_path, monkeypatch
):
    out = _copy(done, tmp_path)
    _no_training(monkeypatch)
    with pytest.raises(UserError, match="other settings \\(eval_n\\)"):
        _bench(out, vqvae_run, tiny_features, eval_n=EVAL_N + 10)
    with pytest.raises(UserError, match="other settings \\(model_config.latent_dim\\)"):
        _bench(out, vqvae_run, tiny_features, overrides=[*TINY, "vae-mlp.model.latent_dim=5"])


def test_an_unknown_model_is_a_user_error(tmp_path):
    for name in ("nope", "prior:nope", "ae-mlp"):  # ae-mlp does not sample
        with pytest.raises(UserError, match=f"unknown model '{name}'"):
            ttq.time_to_quality(tmp_path / "out", [name], data="synthetic")
    with pytest.raises(UserError, match="--vqvae"):
        ttq.time_to_quality(tmp_path / "out", ["prior:transformer"], data="synthetic")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "time_to_quality.py"), "--out", str(tmp_path / "o")]
        + ["--models", "vae-mlp,nope", "--data", "synthetic"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and lines[0].startswith("error: unknown model 'nope'"), lines
