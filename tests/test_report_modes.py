"""``aegen train --report fast|full|none`` writes what docs/performance.md says; ``--device auto``."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_user_error

from aegen.distributed import resolve_device
from aegen.runs import FAST_NLL_IMAGES, FAST_NLL_K

TINY = ["--data", "synthetic", "--limit", "300", "--epochs", "1", "--batch-size", "50",
        "--seed", "3", "--quiet", "--set", "model.hidden=32", "--set", "model.latent_dim=4"]  # fmt: skip


def _train(cli, out, *extra):
    r = cli("train", "vae-mlp", "--out", out, *TINY, *extra)
    assert r.code == 0, r.err
    return r


@pytest.mark.parametrize(("mode", "k"), [("full", 100), ("fast", FAST_NLL_K), (None, FAST_NLL_K)])
def test_full_and_fast_reports_score_the_likelihood_with_their_draws(cli, tmp_path, mode, k):
    out = tmp_path / "run"
    _train(cli, out, *(["--report", mode] if mode else []))  # fast is the default
    metrics = json.loads((out / "metrics.json").read_text())
    n_test = metrics["reconstruction"]["n"]
    want_n = n_test if mode == "full" else min(n_test, FAST_NLL_IMAGES)
    assert (metrics["vae"]["nll_k"], metrics["vae"]["nll_images"]) == (k, want_n)
    assert metrics["likelihood"]["importance_samples"] == k
    assert (out / "samples" / "reconstructions.png").is_file()
    assert (out / "samples" / "kl_per_dim.png").is_file()


def test_no_report_writes_only_the_trainers_files(cli, tmp_path):
    out = tmp_path / "run"
    r = _train(cli, out, "--report", "none")
    assert not (out / "metrics.json").exists() and not (out / "samples").exists()
    assert (out / "metrics.csv").is_file() and (out / "model.safetensors").is_file()
    assert "trained vae-mlp" in r.err and "loss" in r.err  # the last epoch's numbers


def test_a_bad_report_mode_is_a_user_error(cli, tmp_path):
    assert_user_error(cli("train", "vae-mlp", "--out", tmp_path / "r", *TINY, "--report", "x"),
                      "--report")  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_device_auto_takes_cuda_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
