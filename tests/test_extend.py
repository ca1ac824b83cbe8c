"""``--resume --epochs N``: a finished run trained on to N epochs, as docs/reliability.md says."""

import csv
import json

import pytest
import torch
from conftest import assert_user_error

from aegen.config import TrainConfig
from aegen.train import lr_at

RUN = ["train", "ae-mlp", "--data", "synthetic", "--limit", "400", "--quiet"]
SETS = ["--set", "model.hidden=16", "--set", "model.code_dim=2", "--batch-size", "100"]


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def lrs(monkeypatch):
    """The learning rate of every optimiser step taken while the fixture is active."""
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def spy(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    return seen


def test_a_finished_run_extends_to_more_epochs(cli, tmp_path, lrs):
    run = tmp_path / "run"
    r = cli(*RUN, "--out", run, "--epochs", "1", *SETS)
    assert r.code == 0, r.err
    steps = len(lrs)  # optimiser steps per epoch: 400 images in batches of 100 (minus val)
    first = json.loads((run / "config.json").read_text())
    lrs.clear()
    r = cli("train", "ae-mlp", "--out", run, "--resume", "--epochs", "2", "--quiet")
    assert r.code == 0, r.err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["epochs"] == 2
    assert cfg["extended"] == [
        {"from_epochs": 1, "to_epochs": 2, "at_step": steps, "aegen_version": cfg["aegen_version"]}
    ]
    assert {k: v for k, v in cfg.items() if k not in ("train", "extended")} == {
        k: v for k, v in first.items() if k != "train"
    }
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["step"]) for r in rows] == [steps, 2 * steps]
    # the cosine horizon is the new total: the first new step's rate is a fresh 2-epoch run's
    train = TrainConfig(**{**first["train"], "epochs": 2})
    assert len(lrs) == steps
    assert lrs[0] == pytest.approx(lr_at(train, steps, 2 * steps), rel=1e-12)
    assert lrs[0] == pytest.approx(0.5 * train.lr)  # halfway down the cosine, no warm-up
    assert lrs == pytest.approx([lr_at(train, s, 2 * steps) for s in range(steps, 2 * steps)])
    # extending to the epochs it has is a plain resume: nothing trains, nothing is recorded
    lrs.clear()
    r = cli("train", "ae-mlp", "--out", run, "--resume", "--epochs", "2", "--quiet")
    assert r.code == 0 and lrs == []
    assert len(json.loads((run / "config.json").read_text())["extended"]) == 1


def test_extending_refuses_fewer_epochs_and_other_settings(cli, tmp_path):
    run = tmp_path / "run"
    assert cli(*RUN, "--out", run, "--epochs", "2", *SETS).code == 0
    before = (run / "config.json").read_bytes()
    resume = ["train", "ae-mlp", "--out", run, "--resume"]
    assert_user_error(cli(*resume, "--epochs", "1"), "train.epochs=2", "extend")
    assert_user_error(cli(*resume, "--epochs", "3", "--set", "train.lr=1"), "own config", "--set")
    assert_user_error(cli(*resume, "--epochs", "3", "--batch-size", "50"), "--batch-size")
    assert (run / "config.json").read_bytes() == before
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2]
