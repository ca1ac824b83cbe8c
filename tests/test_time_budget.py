"""train.max_minutes: a wall-clock budget in the one Trainer.

The clock is replaced by one that advances a fixed amount per loss call, so where
a run stops is a function of the steps taken, not of how loaded the machine is.
"""

import csv

import pytest
import torch

import aegen
import aegen.train
from aegen.checkpoint import read_train_state
from aegen.config import TrainConfig, from_dict
from aegen.errors import ConfigError
from aegen.train import Trainer, lr_at

TICK = 1.0  # seconds the fake clock advances per loss call (training and validation)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _counting_loss(model, clock, stop_at=None):
    """The model's loss, advancing ``clock`` by TICK per call; raises KeyboardInterrupt on
    call ``stop_at`` (an interruption, like a kill after the last checkpoint)."""
    calls = {"n": 0}

    def loss(batch):
        calls["n"] += 1
        if calls["n"] == stop_at:
            raise KeyboardInterrupt
        clock.now += TICK
        return model.loss(batch)

    return loss


def _build():
    aegen.seed_everything(0)
    return aegen.build_model("ae-mlp", hidden=(32,), code_dim=4)


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


# 1000 training images / 100 = 10 steps per epoch; 200 validation images = 1 call
CFG = dict(epochs=50, batch_size=100, lr=3e-3, ckpt_every=4)
BUDGET_S = 25.5  # the step that ends past 25.5 fake seconds is the last


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(aegen.train, "budget_clock", c)
    return c


def test_a_budget_stops_at_the_first_step_past_it_and_finishes_the_run(
    small_synthetic, tmp_path, clock
):
    model = _build()
    cfg = TrainConfig(**CFG, max_minutes=BUDGET_S / 60)
    result = Trainer(
        model, cfg, tmp_path, loss_fn=_counting_loss(model, clock), progress=False
    ).fit(small_synthetic)
    # epoch 1: steps 1-10 (10 s) + validation (11 s); epoch 2: steps 11-20 (21 s) + val (22 s);
    # epoch 3: step 21 ends at 23 s, 22 at 24 s, 23 at 25 s, 24 at 26 s > 25.5 s: it stops there
    assert result.steps == 24
    state = read_train_state(tmp_path)
    assert state["finished"] and state["out_of_time"] and state["step"] == 24
    assert state["elapsed_s"] == pytest.approx(27.0)  # the cut epoch's validation counted too
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # the cut epoch has its row
    assert int(rows[-1]["step"]) == 24
    assert (tmp_path / "best.safetensors").is_file()
    # the schedule's horizon stays `epochs` (50 × 10 steps), not the steps the budget allowed
    for r in rows:
        assert float(r["lr"]) == pytest.approx(lr_at(cfg, int(r["step"]) - 1, 50 * 10), rel=1e-5)
    assert float(rows[-1]["lr"]) > 0.9 * cfg.lr  # far from the cosine's end


def test_without_a_budget_the_same_run_goes_on(small_synthetic, tmp_path, clock):
    model = _build()
    cfg = TrainConfig(**{**CFG, "epochs": 4})
    result = Trainer(
        model, cfg, tmp_path, loss_fn=_counting_loss(model, clock), progress=False
    ).fit(small_synthetic)
    assert result.steps == 40 and not read_train_state(tmp_path)["out_of_time"]


def test_a_killed_run_resumes_with_the_time_it_spent_counted(small_synthetic, tmp_path, clock):
    cfg = TrainConfig(**CFG, max_minutes=BUDGET_S / 60)
    full = _build()
    Trainer(full, cfg, tmp_path / "full", loss_fn=_counting_loss(full, clock), progress=False).fit(
        small_synthetic
    )

    clock.now = 0.0
    cut = _build()
    with pytest.raises(KeyboardInterrupt):
        # call 15 is step 14 of epoch 2; the last checkpoint was at step 12 (ckpt_every=4)
        Trainer(
            cut, cfg, tmp_path / "cut", loss_fn=_counting_loss(cut, clock, 15), progress=False
        ).fit(small_synthetic)
    state = read_train_state(tmp_path / "cut")
    assert state["step"] == 12 and not state["finished"]
    assert state["elapsed_s"] == pytest.approx(13.0)  # 12 steps + epoch 1's validation

    clock.now = 1000.0  # another process: its clock starts anywhere
    aegen.seed_everything(123)
    resumed = aegen.build_model("ae-mlp", hidden=(32,), code_dim=4)
    result = Trainer(
        resumed, cfg, tmp_path / "cut", loss_fn=_counting_loss(resumed, clock), progress=False
    ).fit(small_synthetic, resume=True)
    # 13 s were counted: the resumed run stops where the uninterrupted one did, bit for bit
    assert result.steps == 24
    assert _same(full, resumed)
    assert read_train_state(tmp_path / "cut")["finished"]


def test_a_finished_budget_run_resumed_takes_no_more_steps(small_synthetic, tmp_path, clock):
    cfg = TrainConfig(**CFG, max_minutes=BUDGET_S / 60)
    model = _build()
    Trainer(model, cfg, tmp_path, loss_fn=_counting_loss(model, clock), progress=False).fit(
        small_synthetic
    )
    again = _build()
    result = Trainer(
        again, cfg, tmp_path, loss_fn=_counting_loss(again, clock), progress=False
    ).fit(small_synthetic, resume=True)
    assert result.steps == 24 and _same(model, again)


def test_a_real_tiny_budget_stops_a_long_run_early(small_synthetic, tmp_path):
    model = _build()
    cfg = TrainConfig(epochs=10_000, batch_size=100, lr=3e-3, max_minutes=0.5 / 60)
    result = Trainer(model, cfg, tmp_path, progress=False).fit(small_synthetic)
    state = read_train_state(tmp_path)
    assert state["finished"] and state["out_of_time"]
    assert 0 < result.steps < 10_000 * 10
    assert state["elapsed_s"] >= 0.5


def test_a_negative_budget_is_refused():
    with pytest.raises(ConfigError, match="train.max_minutes"):
        from_dict(TrainConfig, {"max_minutes": -1}, "train")
