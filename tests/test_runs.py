"""A run directory end to end (aegen.runs): one written before the config renames loads,
counts as the same run, and resumes."""

from __future__ import annotations

import json

import pytest
import torch

import aegen
import aegen.train
from aegen.checkpoint import read_train_state, write_checkpoint, write_config
from aegen.config import RunConfig
from aegen.data.loader import Batch
from aegen.runs import make_run_config, stage_state, train_run

# A tiny VQ-VAE in today's names and in the names its config.json had before the renames
# (docs/architecture.md: code_dim → codebook_dim, hidden: H → channels: (H/2, H),
# res_hidden → res_dim).
NEW = {"num_codes": 16, "codebook_dim": 8, "channels": "8,16", "res_dim": 8, "res_blocks": 1}
OLD = {"num_codes": 16, "code_dim": 8, "hidden": 16, "res_hidden": 8, "res_blocks": 1}
TRAIN = {"epochs": 2, "batch_size": 100, "seed": 3, "limit": 400, "val_size": 100}


def write_old_config(out, run: RunConfig) -> None:
    """config.json of ``run`` (a tiny vqvae) as aegen wrote it before the renames."""
    old_json = run.to_json()
    old_json["model_config"] = {
        k: v
        for k, v in old_json["model_config"].items()
        if k not in ("codebook_dim", "channels", "res_dim")
    } | OLD
    out.mkdir()
    write_config(out, {**old_json, "family": "vqvae"})
    assert "code_dim" in json.loads((out / "config.json").read_text())["model_config"]


def test_a_run_written_with_old_names_loads_and_counts_as_the_same_run(tmp_path):
    """A config.json from before the renames: the weights load, and a pipeline stage
    configured today with the new names sees the same settings (it would resume, not refuse)."""
    run = make_run_config(
        "vqvae", data="synthetic", overrides=[f"model.{k}={v}" for k, v in OLD.items()]
    )
    model = aegen.build_model("vqvae", run.model_config)
    out = tmp_path / "old"
    write_old_config(out, run)
    write_checkpoint(out, model, {"finished": True})

    loaded = aegen.load(out)
    assert loaded.config == run.model_config
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    keys = ("model", "model_config", "train", "data")
    assert stage_state(out, run.to_json(), keys, "VQ-VAE") == "done"  # not "other settings"


def test_a_run_written_with_the_old_names_resumes_to_the_uncut_runs_weights(tmp_path):
    """A vqvae run whose config.json holds the old names, killed after a mid-epoch
    checkpoint, resumes from its own directory to the weights of a run never cut."""
    overrides = [f"model.{k}={v}" for k, v in NEW.items()]
    overrides += ["train.amp=off", "train.channels_last=false", "train.ckpt_every=2"]
    run = make_run_config("vqvae", data="synthetic", overrides=overrides, **TRAIN)
    data = aegen.load_data("synthetic", val_size=100, limit=400)  # 334 training images
    full = train_run(run, tmp_path / "full", progress=False, data=data)

    # the cut run: config.json as a run from before the renames wrote it, then training
    # that stops on call 7 of the loss: epoch 1 is 3 training calls and 1 validation call,
    # so that is step 6, and the last checkpoint is step 4, epoch 2's first
    cut = tmp_path / "cut"
    write_old_config(cut, run)
    aegen.seed_everything(run.train.seed)
    model = aegen.build_model("vqvae", run.model_config)
    calls = {"n": 0}

    def loss_then_stop(batch):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return model.loss(batch)

    trainer = aegen.Trainer(
        model, run.train, cut, loss_fn=loss_then_stop, progress=False, metadata={"model": "vqvae"}
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data)
    state = read_train_state(cut)
    assert (state["epoch"], state["step"], state["step_in_epoch"]) == (1, 4, 1)

    aegen.seed_everything(123)  # resuming must not depend on the caller's RNG
    resumed = train_run(None, cut, resume=True, progress=False, data=data)
    assert resumed.config.model_config == run.model_config
    assert read_train_state(cut)["finished"]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _tiny_ae_run(*overrides: str):
    tiny = ["model.hidden=16", "model.code_dim=4", *overrides]
    return make_run_config("ae-mlp", "synthetic", tiny, epochs=1, batch_size=100, limit=300)


@pytest.mark.parametrize("made", [True, False], ids=["new directory", "empty directory given"])
def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_nothing(
    tmp_path, monkeypatch, made
):
    """Else the next try is refused ("already holds a run") and --resume has nothing to resume."""
    out = tmp_path / "run"
    if not made:
        out.mkdir()

    def fails(self, data, resume=False):
        assert (out / "config.json").is_file()  # the run was under way
        raise RuntimeError("failed in the first epoch")

    monkeypatch.setattr(aegen.train.Trainer, "fit", fails)
    with pytest.raises(RuntimeError, match="first epoch"):
        train_run(_tiny_ae_run(), out, progress=False)
    assert not out.exists() if made else list(out.iterdir()) == []
    monkeypatch.undo()
    train_run(_tiny_ae_run(), out, progress=False)  # the same run again, not refused
    assert (out / "model.safetensors").is_file()


def test_a_compiled_loss_without_a_gradient_is_one_clear_error(tmp_path, monkeypatch):
    """train.compile=true on a loss torch.compile hands back without a gradient: a UserError
    naming the switch, not a RuntimeError from backward()."""
    from aegen.errors import UserError
    from aegen.models.ae import AEMLP

    real = AEMLP.loss
    monkeypatch.setattr(AEMLP, "loss", lambda self, b: (real(self, b)[0].detach(), {}))
    with pytest.raises(UserError, match="train.compile"):
        train_run(_tiny_ae_run("train.compile=true"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_mlp_autoencoders_compiled_loss_has_a_gradient():
    """torch 2.13 compiled recon + 0 returned beside recon.detach() without a gradient:
    the AE's loss without a sparsity penalty returns recon itself."""
    torch.manual_seed(0)
    model = aegen.build_model("ae-mlp", hidden=(16,), code_dim=4)
    loss, logs = torch.compile(model.loss)(Batch(torch.rand(8, 1, 28, 28), None))
    assert loss.requires_grad and torch.equal(loss.detach(), logs["recon"])
