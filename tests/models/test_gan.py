"""The GAN: its two players' steps, the trainer's several optimizers, and its commands."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest
import torch
from conftest import assert_user_error

import aegen
from aegen.checkpoint import load, read_train_state, save_model, write_config
from aegen.config import TrainConfig, to_dict
from aegen.data.loader import Batch, to_float
from aegen.errors import CheckpointError, UserError
from aegen.eval.metrics import class_coverage
from aegen.train import Trainer, TrainingDiverged

SMALL = {"channels": (8, 16), "latent_dim": 8}
TINY = ["--data", "synthetic", "--limit", "300", "--batch-size", "50", "--seed", "1", "--quiet",
        "--set", "model.channels=8,16", "--set", "model.latent_dim=8"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    """250 training and 50 validation images: five batches of 50."""
    return aegen.load_data("synthetic", val_size=50, limit=300)


def _gan(**over):
    torch.manual_seed(0)
    return aegen.build_model("gan", {**SMALL, **over})


def _batch(data, n=32):
    return Batch(to_float(data.train.x[:n]), data.train.y[:n])


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    "over",
    [{}, {"objective": "nonsaturating"}, {"spectral_norm": False, "r1_gamma": 10.0}],
    ids=["hinge+sn", "nonsaturating+sn", "hinge+r1"],
)
def test_one_discriminator_step_lowers_its_loss_on_a_fixed_batch(tiny, over):
    """The same real images and the same latents (seeded), before and after one D step.

    The control is a copy that runs the same forward and backward without the step, so
    the spectral norm's power iteration and G's batch-norm statistics move alike in both.
    """
    model = _gan(**over).train()
    control = copy.deepcopy(model)
    batch = _batch(tiny)
    opt = torch.optim.SGD(model.discriminator.parameters(), lr=0.05)

    for m in (model, control):
        torch.manual_seed(1)
        loss, _ = m.d_loss(batch)
        loss.backward()
    opt.step()
    after = []
    for m in (model, control):
        torch.manual_seed(1)
        after.append(float(m.d_loss(batch)[0].detach()))
    assert after[0] < after[1] - 1e-4, after


def test_each_players_step_changes_only_its_own_weights(tiny):
    """The trainer's optimizers hold disjoint parameter sets; D's loss leaves no gradient on
    G and G's loss none on D, so each step moves only its own network."""
    model = _gan().train()
    trainer = Trainer(model, TrainConfig(lr=1e-2), progress=False)
    assert trainer.optimizer is None and list(trainer.optimizers) == ["d", "g"]
    held = {k: {id(p) for g in o.param_groups for p in g["params"]} for k, o in trainer.optimizers.items()}  # fmt: skip
    assert held["d"] == {id(p) for p in model.discriminator.parameters()}
    assert held["g"] == {id(p) for p in model.generator.parameters()}

    batch = _batch(tiny)
    for phase in model.training_phases():
        mine, other = (
            (model.discriminator, model.generator)
            if phase.name == "d"
            else (model.generator, model.discriminator)
        )
        before_mine, before_other = _params(mine), _params(other)
        model.zero_grad(set_to_none=True)
        loss, _ = phase.loss(batch)
        loss.backward()
        assert all(p.grad is None for p in other.parameters()), phase.name
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mine.parameters())
        trainer.optimizers[phase.name].step()
        assert _same(_params(other), before_other), f"the {phase.name} step moved the other net"
        assert not _same(_params(mine), before_mine)
        assert all(p.requires_grad for p in model.parameters())  # D is unfrozen again


def test_training_logs_both_players_and_saves_both_optimizers(tiny, tmp_path):
    aegen.seed_everything(0)
    model = _gan()
    cfg = TrainConfig(epochs=2, batch_size=50, lr=2e-4, schedule="constant")
    Trainer(model, cfg, tmp_path, progress=False).fit(tiny)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert len(rows) == 2
    for key in ("train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "val_g_loss"):
        assert math.isfinite(float(rows[-1][key])), key
    state = read_train_state(tmp_path)
    assert "optimizer" not in state and set(state["optimizers"]) == {"d", "g"}
    assert state["optimizers"]["d"]["param_groups"][0]["betas"] == (0.5, 0.999)
    # 2 epochs × 5 steps, one Adam step each per batch
    assert all(int(s["step"]) == 10 for s in state["optimizers"]["g"]["state"].values())


def test_the_single_optimizer_path_is_unchanged():
    model = aegen.build_model("ae-mlp", hidden=(16,), code_dim=4)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=100), progress=False)
    assert trainer.phases == [] and trainer.optimizers == {}
    assert "optimizer" in trainer.state() and "optimizers" not in trainer.state()


def test_a_non_finite_player_loss_stops_or_skips(tiny):
    cfg = dict(epochs=1, batch_size=50, lr=1e-3)

    def broken():
        model = _gan()
        model.g_loss = lambda batch: (torch.tensor(float("nan")), {})
        return model

    with pytest.raises(TrainingDiverged, match="the g loss became non-finite at step 0"):
        Trainer(broken(), TrainConfig(**cfg), progress=False).fit(tiny)
    model = broken()
    d_before = _params(model.discriminator)
    trainer = Trainer(model, TrainConfig(**cfg, on_nan="skip"), progress=False)
    result = trainer.fit(tiny)
    assert result.history[-1]["skipped_batches"] == 5
    assert not _same(_params(model.discriminator), d_before)  # D's phase still stepped


def test_resume_refuses_a_checkpoint_without_both_optimizers(tiny, tmp_path):
    aegen.seed_everything(0)
    model = aegen.build_model("ae-mlp", hidden=(16,), code_dim=4)
    Trainer(model, TrainConfig(epochs=1, batch_size=50), tmp_path, progress=False).fit(tiny)
    state = read_train_state(tmp_path)
    with pytest.raises(CheckpointError, match="optimizers d, g"):
        Trainer(_gan(), TrainConfig(epochs=1, batch_size=100), tmp_path).load_state(state)


def test_samples_and_weights_round_trip(tmp_path):
    model = _gan().eval()
    write_config(tmp_path, {"model": "gan", "model_config": to_dict(model.config)})
    save_model(tmp_path / "model.safetensors", model)
    back = load(tmp_path)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(back.sample(6, generator=g()), model.sample(6, generator=g()))
    cold = model.sample(6, generator=g(), temperature=0.5)
    assert cold.shape == (6, 1, 28, 28) and not torch.equal(cold, model.sample(6, generator=g()))


def test_class_coverage_against_hand_counts():
    c = class_coverage(torch.tensor([0, 0, 0, 1]), num_classes=4)
    assert c["histogram"] == [3, 1, 0, 0]
    assert c["covered"] == 0.5 and c["min_share"] == 0.125
    assert c["entropy_nats"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert c["max_entropy_nats"] == pytest.approx(math.log(4))
    collapsed = class_coverage(torch.full((50,), 2), num_classes=10)
    assert collapsed["entropy_nats"] == 0 and collapsed["covered"] == 0.1
    even = class_coverage(torch.arange(10).repeat(3), num_classes=10)
    assert even["covered"] == 1 and even["entropy_nats"] == pytest.approx(math.log(10))


def test_train_sample_and_eval_from_the_command_line(cli, tmp_path, tiny_features):
    run = tmp_path / "gan"
    r = cli("train", "gan", "--out", run, "--epochs", "1", *TINY)
    assert r.code == 0, r.err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"] == "gan" and cfg["model_config"]["objective"] == "hinge"
    assert (run / "model.safetensors").is_file() and (run / "samples" / "samples.png").is_file()
    assert not (run / "samples" / "reconstructions.png").exists()

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        assert cli("sample", run, "--n", "12", "--out", out, "--seed", "4").code == 0
    assert a.read_bytes() == b.read_bytes()

    r = cli("eval", run, "--features", tiny_features.directory, "--n", "50", "--quiet")
    assert r.code == 0, r.err
    assert "class coverage" in r.out
    samples = json.loads((run / "metrics.json").read_text())["samples"]
    cov = samples["class_coverage"]
    assert sum(cov["histogram"]) == 50 and len(cov["histogram"]) == 10
    assert 0 <= cov["entropy_nats"] <= cov["max_entropy_nats"] + 1e-12
    assert cov["test_images"]["covered"] > 0.5  # the balanced test set, as a reference
    assert "reconstruction" not in json.loads((run / "metrics.json").read_text())


def test_gan_refuses_several_processes(tiny, monkeypatch):
    """Under torchrun the two optimizers would need one DDP wrapper each: refused."""
    from aegen import train as train_module

    monkeypatch.setattr(
        train_module, "dist_context", lambda: type("C", (), dict(rank=0, world=2, local_rank=0))
    )
    trainer = Trainer(_gan(), TrainConfig(epochs=1, batch_size=50), progress=False)
    with pytest.raises(UserError, match="one process"):
        trainer.fit(tiny)


def test_impossible_numbers_are_one_line_errors(cli, tmp_path):
    r = cli("train", "gan", "--out", tmp_path / "o", *TINY, "--set", "model.latent_dim=0")
    assert_user_error(r, "model.latent_dim")
    assert not (tmp_path / "o").exists()
