"""The deterministic autoencoders: phased training, denoising, the plane, sparsity, tying."""

import pytest
import torch

import aegen
from aegen.config import TrainConfig
from aegen.data.loader import Batch, to_float
from aegen.eval.metrics import reconstruction_metrics
from aegen.models.ae import corrupt


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
