import csv
import math

import pytest
import torch

import aegen
from aegen.checkpoint import MODEL, TRAIN_STATE, read_train_state
from aegen.config import TrainConfig
from aegen.errors import CheckpointError
from aegen.train import Trainer, TrainingDiverged, lr_at


def _fit(data, out, epochs=2, resume=False, model=None, **cfg):
    aegen.seed_everything(0)
    model = model or aegen.build_model("ae-mlp", hidden=(64,), code_dim=8)
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=3e-3, **cfg)
    result = Trainer(model, cfg, out, progress=False).fit(data, resume=resume)
    return model, result


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loss_goes_down_and_files_are_written(small_synthetic, tmp_path):
    model, result = _fit(small_synthetic, tmp_path, epochs=3)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / MODEL).is_file()
    assert result.steps == 3 * (1000 // 100)
    state = read_train_state(tmp_path)
    assert state["finished"] and state["epoch"] == 3


def _interrupt_at_call(model, n):
    """A loss that raises KeyboardInterrupt on its n-th call (training and validation calls count)."""
    calls = {"n": 0}

    def loss(batch):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return model.loss(batch)

    return loss


def test_resume_is_exact_at_epoch_boundaries(small_synthetic, tmp_path):
    full, _ = _fit(small_synthetic, tmp_path / "full", epochs=3)
    aegen.seed_everything(0)
    model = aegen.build_model("ae-mlp", hidden=(64,), code_dim=8)
    cfg = TrainConfig(epochs=3, batch_size=100, lr=3e-3)
    # epoch 1 is 10 training calls and 1 validation call: call 12 is epoch 2's first step
    with pytest.raises(KeyboardInterrupt):
        Trainer(
            model, cfg, tmp_path / "cut", loss_fn=_interrupt_at_call(model, 12), progress=False
        ).fit(small_synthetic)
    assert read_train_state(tmp_path / "cut")["epoch"] == 1
    aegen.seed_everything(123)  # resume must not depend on the caller's RNG
    resumed = aegen.build_model("ae-mlp", hidden=(64,), code_dim=8)
    Trainer(resumed, cfg, tmp_path / "cut", progress=False).fit(small_synthetic, resume=True)
    assert _same(full, resumed)
    rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_resume_is_exact_mid_epoch(small_synthetic, tmp_path):
    """Interrupt after a mid-epoch checkpoint, with input noise drawing on the RNG, and resume."""
    cfg = TrainConfig(epochs=2, batch_size=100, lr=3e-3, ckpt_every=3)
    build = lambda: aegen.build_model("ae-mlp", hidden=(64,), code_dim=8, noise="gaussian")  # noqa: E731
    aegen.seed_everything(0)
    full = build()
    Trainer(full, cfg, tmp_path / "full", progress=False).fit(small_synthetic)

    aegen.seed_everything(0)
    model = build()
    with pytest.raises(KeyboardInterrupt):
        # call 15 is step 14 of epoch 2 (10 steps + 1 validation call in epoch 1)
        Trainer(
            model, cfg, tmp_path / "cut", loss_fn=_interrupt_at_call(model, 15), progress=False
        ).fit(small_synthetic)
    state = read_train_state(tmp_path / "cut")
    assert state["step"] == 12 and state["step_in_epoch"] == 2
    resumed = build()
    Trainer(resumed, cfg, tmp_path / "cut", progress=False).fit(small_synthetic, resume=True)
    assert _same(full, resumed)


def test_interrupted_commit_rolls_forward(small_synthetic, tmp_path):
    """A kill between the commit point and the weights' rename is finished on resume."""
    _fit(small_synthetic, tmp_path, epochs=1)
    weights = (tmp_path / MODEL).read_bytes()
    (tmp_path / (MODEL + ".pending")).write_bytes(weights)
    (tmp_path / MODEL).write_bytes(b"older weights")
    state = read_train_state(tmp_path)
    assert (tmp_path / MODEL).read_bytes() == weights and state["epoch"] == 1


def test_mismatched_weights_are_refused(small_synthetic, tmp_path):
    model, _ = _fit(small_synthetic, tmp_path, epochs=1)
    torch.nn.init.zeros_(model.enc[0].weight)
    from aegen.checkpoint import save_model

    save_model(tmp_path / MODEL, model)
    with pytest.raises(CheckpointError, match="does not match"):
        read_train_state(tmp_path)


def test_nan_stops_and_keeps_the_last_checkpoint(small_synthetic, tmp_path):
    model, _ = _fit(small_synthetic, tmp_path, epochs=1)
    before = (tmp_path / MODEL).read_bytes(), (tmp_path / TRAIN_STATE).read_bytes()
    cfg = TrainConfig(epochs=2, batch_size=100, lr=3e-3)
    trainer = Trainer(
        model,
        cfg,
        tmp_path,
        loss_fn=lambda b: (model.loss(b)[0] * float("nan"), {}),
        progress=False,
    )
    with pytest.raises(TrainingDiverged, match="step 10"):
        trainer.fit(small_synthetic, resume=True)
    assert ((tmp_path / MODEL).read_bytes(), (tmp_path / TRAIN_STATE).read_bytes()) == before


def test_nan_skip_mode_skips_bad_batches(small_synthetic):
    aegen.seed_everything(0)
    model = aegen.build_model("ae-mlp", hidden=(32,), code_dim=4)
    calls = {"n": 0}

    def sometimes_nan(batch):
        calls["n"] += 1
        loss, logs = model.loss(batch)
        return (
            (loss * float("nan"), logs) if calls["n"] % 4 == 0 and model.training else (loss, logs)
        )

    cfg = TrainConfig(epochs=1, batch_size=100, on_nan="skip")
    result = Trainer(model, cfg, None, loss_fn=sometimes_nan, progress=False).fit(small_synthetic)
    assert result.history[-1]["skipped_batches"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_batch_larger_than_data_is_a_user_error(small_synthetic):
    model = aegen.build_model("ae-mlp")
    with pytest.raises(aegen.UserError, match="larger than"):
        Trainer(model, TrainConfig(batch_size=5000), None, progress=False).fit(small_synthetic)


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine")
    assert lr_at(cfg, 0, 110) == pytest.approx(0.1)
    assert lr_at(cfg, 10, 110) == pytest.approx(1.0)
    assert lr_at(cfg, 60, 110) == pytest.approx(0.5)
    assert lr_at(cfg, 110, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(TrainConfig(lr=0.3, schedule="constant"), 50, 100) == 0.3
    assert not math.isnan(lr_at(cfg, 5, 1))


def test_equal_weights_give_equal_files(tmp_path):
    """safetensors writes metadata in hash order; aegen canonicalises it, so a file hash names weights."""
    import hashlib

    from aegen.checkpoint import save_model

    model = aegen.build_model("ae-mlp", hidden=(16,), code_dim=4)
    digests = set()
    for i in range(8):
        save_model(
            tmp_path / f"m{i}.safetensors", model, {"model": "ae-mlp", "tag": "t", "x": str(i % 1)}
        )
        digests.add(hashlib.sha256((tmp_path / f"m{i}.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1
