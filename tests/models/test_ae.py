"""The deterministic autoencoders: phased training, denoising, the plane, sparsity, tying."""

import pytest
import torch

import aegen
from aegen.config import TrainConfig
from aegen.data.loader import Batch, to_float
from aegen.eval.metrics import reconstruction_metrics
from aegen.models.ae import corrupt
from aegen.phased import fit_phased
from aegen.plane import run_plane_demo


def test_linear_ae_reaches_the_pca_optimum_on_the_plane():
    result = run_plane_demo(None, epochs=200, seed=0)
    # It can reach but not beat PCA (beyond float noise): the optimum of a linear AE.
    assert result["ratio"] < 1.02
    assert result["ratio"] > 0.999


def test_phased_training_trains_one_pair_at_a_time(small_synthetic, tmp_path):
    aegen.seed_everything(0)
    model = aegen.build_model("ae-mlp", hidden=(64, 32), code_dim=8)
    snapshots = {}
    original_fit = aegen.Trainer.fit

    def spy(self, data, resume=False):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        out = original_fit(self, data, resume)
        changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        snapshots[self.tag] = changed
        return out

    aegen.Trainer.fit = spy
    try:
        fit_phased(
            model,
            small_synthetic,
            TrainConfig(epochs=1, batch_size=100),
            tmp_path,
            progress=False,
            finetune_epochs=1,
        )
    finally:
        aegen.Trainer.fit = original_fit
    assert snapshots["phase1"] == {"enc.0.weight", "enc.0.bias", "dec.0.weight", "dec.0.bias"}
    assert snapshots["phase2"] == {"enc.1.weight", "enc.1.bias", "dec.1.weight", "dec.1.bias"}
    assert snapshots["phase3"] == {"enc.2.weight", "enc.2.bias", "dec.2.weight", "dec.2.bias"}
    assert len(snapshots["finetune"]) == 12
    phases = [r["phase"] for r in __import__("csv").DictReader(open(tmp_path / "metrics.csv"))]
    assert phases == ["phase1", "phase2", "phase3", "finetune"]


def test_phased_resume_skips_finished_phases(small_synthetic, tmp_path):
    aegen.seed_everything(0)
    full = aegen.build_model("ae-mlp", hidden=(32,), code_dim=4)
    fit_phased(
        full, small_synthetic, TrainConfig(epochs=1, batch_size=100), tmp_path / "a", progress=False
    )
    # stop after phase 1, by running a model with one fewer phase into the same layout
    from aegen.checkpoint import read_train_state

    aegen.seed_everything(0)
    part = aegen.build_model("ae-mlp", hidden=(32,), code_dim=4)
    calls = []
    original_fit = aegen.Trainer.fit

    def stop_after_phase1(self, data, resume=False):
        calls.append(self.tag)
        if self.tag == "phase2":
            raise KeyboardInterrupt
        return original_fit(self, data, resume)

    aegen.Trainer.fit = stop_after_phase1
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_phased(
                part,
                small_synthetic,
                TrainConfig(epochs=1, batch_size=100),
                tmp_path / "b",
                progress=False,
            )
    finally:
        aegen.Trainer.fit = original_fit
    assert read_train_state(tmp_path / "b")["tag"] == "phase1"
    resumed = aegen.build_model("ae-mlp", hidden=(32,), code_dim=4)
    fit_phased(
        resumed,
        small_synthetic,
        TrainConfig(epochs=1, batch_size=100),
        tmp_path / "b",
        resume=True,
        progress=False,
    )
    sa, sb = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_corrupt():
    x = torch.full((2, 1, 28, 28), 0.5)
    g = torch.Generator().manual_seed(0)
    d = corrupt(x, "dropout", 0.3, generator=g)
    frac = (d == 0).float().mean().item()
    assert 0.25 < frac < 0.35 and set(d.unique().tolist()) <= {0.0, 0.5}
    n = corrupt(x, "gaussian", 0.2, generator=g)
    assert 0 <= n.min() and n.max() <= 1 and (n - x).abs().mean() > 0.05
    assert torch.equal(corrupt(x, "none", 0.3), x)


def test_noise_only_in_training(small_synthetic):
    model = aegen.build_model("ae-mlp", noise="dropout", noise_level=0.5).eval()
    b = Batch(to_float(small_synthetic.test.x[:8]), small_synthetic.test.y[:8])
    assert torch.equal(model.loss(b)[0], model.loss(b)[0])  # deterministic in eval mode


@pytest.mark.parametrize(("kind", "key"), [("l1", "sparsity"), ("kl", "sparsity")])
def test_sparsity_penalty_is_applied(small_synthetic, kind, key):
    torch.manual_seed(0)
    model = aegen.build_model("ae-mlp", sparsity=kind, sparsity_weight=0.1)
    b = Batch(to_float(small_synthetic.train.x[:16]), small_synthetic.train.y[:16])
    loss, logs = model.loss(b)
    assert logs[key] > 0 and loss.item() == pytest.approx(
        (logs["recon"] + logs[key]).item(), rel=1e-5
    )
    if kind == "kl":
        assert 0 <= model.encode(b.x).min() and model.encode(b.x).max() <= 1


def test_tied_weights_share_parameters():
    tied = aegen.build_model("ae-mlp", tied=True)
    untied = aegen.build_model("ae-mlp")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(tied) < n(untied)
    assert not any("dec." in k and "weight" in k for k in tied.state_dict())


def test_denoising_ae_beats_plain_ae_on_noisy_inputs(fashion_small):
    """The lecture's claim, measured on real Fashion-MNIST images (a subset, to stay fast)."""
    cfg = TrainConfig(epochs=4, batch_size=100, lr=2e-3)
    results = {}
    for noise in ("none", "gaussian"):
        aegen.seed_everything(0)
        model = aegen.build_model(
            "ae-mlp", hidden=(256,), code_dim=32, noise=noise, noise_level=0.3
        )
        aegen.Trainer(model, cfg, None, progress=False).fit(fashion_small)
        g = torch.Generator().manual_seed(1)  # the same noisy test inputs for both models

        def noisy(x, g=g):
            return corrupt(x, "gaussian", 0.3, generator=g)

        results[noise] = reconstruction_metrics(model, fashion_small.test, corrupt_fn=noisy)["psnr"]
    assert results["gaussian"] > results["none"] + 0.5, results
