"""The diffusion model: the forward process in closed form, the sampler, guidance, training, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import assert_user_error
from safetensors.torch import load_file

import aegen
from aegen.checkpoint import MODEL
from aegen.config import TrainConfig
from aegen.data.loader import Batch
from aegen.errors import ConfigError, UserError
from aegen.models.diffusion import Schedule, target_for, to_x0_eps
from aegen.train import Trainer

TINY = {"channels": (4, 8, 8), "embed_dim": 8}
OBJECTIVES = ("eps", "v", "flow")
SCHEDULES = ("cosine", "linear", "straight")


def _alpha_bar_reference(schedule: str, t: float) -> float:
    """ᾱ_t written out independently of the module: the closed forms its docstring names."""
    if schedule == "cosine":
        return math.cos(math.pi * t / 2) ** 2
    if schedule == "straight":  # not variance preserving: the mean's factor squared
        return (1 - t) ** 2
    integral = 0.1 * t + 0.5 * (20.0 - 0.1) * t * t  # ∫₀ᵗ β(s) ds, β from 0.1 to 20
    return math.exp(-integral)


def _variance_reference(schedule: str, t: float) -> float:
    return t * t if schedule == "straight" else 1 - _alpha_bar_reference(schedule, t)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_forward_noising_has_the_closed_form_mean_and_variance(schedule, t):
    model = aegen.build_model("diffusion", {**TINY, "schedule": schedule})
    x0 = torch.linspace(-1, 1, 784).view(1, 1, 28, 28)
    draws = 4000
    g = torch.Generator().manual_seed(0)
    eps = torch.randn((draws, 1, 28, 28), generator=g)
    x_t = model.add_noise(x0.expand(draws, -1, -1, -1), torch.full((draws,), t), eps)
    mean, var = x_t.mean(0), x_t.var(0)
    want_mean = math.sqrt(_alpha_bar_reference(schedule, t)) * x0[0]
    want_var = _variance_reference(schedule, t)
    # standard errors: σ/√n for the mean, σ²·√(2/n) for the variance; 5 of them over 784 pixels
    se = math.sqrt(want_var / draws)
    assert (mean - want_mean).abs().max() < 5 * se
    assert (var - want_var).abs().max() < 5 * want_var * math.sqrt(2 / draws)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_prediction_converts_back_to_the_image_and_noise(objective, schedule):
    path = Schedule(schedule)
    g = torch.Generator().manual_seed(1)
    x0, eps = (
        torch.rand((6, 1, 28, 28), generator=g) * 2 - 1,
        torch.randn((6, 1, 28, 28), generator=g),
    )
    t = torch.tensor([0.02, 0.2, 0.4, 0.6, 0.8, 0.98]).view(-1, 1, 1, 1)
    alpha, sigma = path.alpha_sigma(t)
    x_t = alpha * x0 + sigma * eps
    x0_hat, eps_hat = to_x0_eps(objective, path, target_for(objective, path, x0, eps, t), x_t, t)
    torch.testing.assert_close(x0_hat, x0, atol=1e-3, rtol=0)
    torch.testing.assert_close(eps_hat, eps, atol=1e-3, rtol=0)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_flow_target_is_the_time_derivative_of_the_path(schedule):
    path = Schedule(schedule)
    x0, eps = torch.tensor(0.3), torch.tensor(-1.2)
    t, h = torch.tensor(0.4, dtype=torch.float64), 1e-6

    def x_at(s):
        a, sg = path.alpha_sigma(s)
        return a * x0 + sg * eps

    numeric = (x_at(t + h) - x_at(t - h)) / (2 * h)
    assert abs(float(target_for("flow", path, x0, eps, t)) - float(numeric)) < 1e-5


class _OptimalPredictor(torch.nn.Module):
    """The exact optimum of every objective when the data set is the one image ``x0``:
    ε* = (x_t − α·x0)/σ, and v or the velocity that go with (x0, ε*)."""

    def __init__(self, x0: torch.Tensor, objective: str, path: Schedule):
        super().__init__()
        self.x0, self.objective, self.path = x0, objective, path
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the model finds its device by it

    def forward(self, x_t, t, y):
        tb = t.view(-1, 1, 1, 1).double()
        alpha, sigma = self.path.alpha_sigma(tb)
        eps = (x_t.double() - alpha * self.x0) / sigma
        return target_for(self.objective, self.path, self.x0, eps, tb).float()


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("steps", [1, 2, 7, 25])
def test_sampler_with_the_optimal_predictor_returns_the_one_image(objective, schedule, steps):
    model = aegen.build_model(
        "diffusion", {**TINY, "objective": objective, "schedule": schedule}
    ).eval()
    image = torch.rand((1, 1, 28, 28), generator=torch.Generator().manual_seed(2))
    model.unet = _OptimalPredictor(image.double() * 2 - 1, objective, model.path)
    out = model.sample(3, generator=torch.Generator().manual_seed(3), steps=steps, guidance=2.0)
    assert out.shape == (3, 1, 28, 28)
    # float32 rounding of the prediction, amplified by 1/α at the first step (α = 1.6e-3 for ε)
    assert (out - image).abs().max() < 1e-3


class _NullLabels(torch.nn.Module):
    """The unconditional model: the same network, always shown the null class."""

    def __init__(self, unet: torch.nn.Module, null: int):
        super().__init__()
        self.unet, self.null = unet, null

    def forward(self, x_t, t, y):
        return self.unet(x_t, t, torch.full_like(y, self.null))


def test_guidance_zero_is_the_unconditional_model():
    torch.manual_seed(0)
    model = aegen.build_model("diffusion", TINY).eval()
    with torch.no_grad():  # untrained, the zero-initialised last layers would hide the label
        for p in model.unet.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.1)
        model.unet.label.weight.normal_(0, 3.0)
    labels = torch.tensor([0, 1, 7, 9])

    def draw(guidance):
        g = torch.Generator().manual_seed(4)
        return model.sample(4, generator=g, steps=4, guidance=guidance, labels=labels)

    guided_zero, conditional = draw(0.0), draw(1.0)
    unet = model.unet
    model.unet = _NullLabels(unet, model.null_class)
    unconditional = draw(1.0)
    model.unet = unet
    torch.testing.assert_close(guided_zero, unconditional, atol=1e-5, rtol=0)
    assert (guided_zero - conditional).abs().max() > 1e-2  # the label does change the images


def test_labels_are_checked():
    model = aegen.build_model("diffusion", TINY).eval()
    with pytest.raises(UserError, match="0..9"):
        model.sample(2, labels=10, steps=1)
    with pytest.raises(UserError, match="steps"):
        model.sample(2, steps=0)
    with pytest.raises(UserError, match="guidance"):
        model.sample(2, steps=1, guidance=-1.0)
    plain = aegen.build_model("diffusion", {**TINY, "num_classes": 0}).eval()
    with pytest.raises(UserError, match="without labels"):
        plain.sample(2, labels=1, steps=1)
    with pytest.raises(UserError, match="without labels"):
        plain.sample(2, guidance=2.0, steps=1)
    assert plain.sample(2, steps=2).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    "values",
    [
        {"channels": (4, 0, 8)},
        {"channels": (4, 8)},
        {"p_uncond": 1.0},
        {"objective": "x0"},
        {"schedule": "sigmoid"},
        {"sample_steps": 0},
        {"num_classes": 0, "guidance": 2.0},
    ],
)
def test_impossible_configs_are_refused(values):
    with pytest.raises(ConfigError):
        aegen.build_model("diffusion", values)


def test_labels_reach_the_loss_and_are_dropped_with_p_uncond():
    model = aegen.build_model("diffusion", {**TINY, "p_uncond": 0.5})
    seen = []
    forward = model.unet.forward
    model.unet.forward = lambda x, t, y: seen.append(y.clone()) or forward(x, t, y)  # type: ignore[method-assign]
    torch.manual_seed(0)
    y = torch.randint(10, (400,))
    model.loss(Batch(torch.rand(400, 1, 28, 28), y))
    dropped = seen[0] == model.null_class
    assert 0.4 < dropped.float().mean() < 0.6
    assert torch.equal(seen[0][~dropped], y[~dropped])
    model.eval()
    model.loss(Batch(torch.rand(400, 1, 28, 28), y))
    assert torch.equal(seen[1], y)  # validation: the labels as they are


def _fit(out, data, epochs, ckpt_every=0):
    torch.manual_seed(0)
    model = aegen.build_model("diffusion", TINY)
    cfg = TrainConfig(epochs=epochs, batch_size=50, lr=2e-3, seed=3, ckpt_every=ckpt_every)
    return model, Trainer(model, cfg, out, progress=False)


def test_training_lowers_the_validation_loss(tmp_path, small_synthetic):
    model, trainer = _fit(tmp_path / "run", small_synthetic, epochs=2)
    before = trainer.validate(small_synthetic)["loss"]
    result = trainer.fit(small_synthetic)
    assert result.final["loss"] < 0.8 * before


def test_resume_after_a_crash_is_bit_exact(tmp_path, small_synthetic):
    _, full = _fit(tmp_path / "full", small_synthetic, epochs=2)
    full.fit(small_synthetic)
    model, cut = _fit(tmp_path / "cut", small_synthetic, epochs=2, ckpt_every=7)
    calls, loss = [0], model.loss

    def crash_at_step_30(batch):
        calls[0] += 1
        if calls[0] == 30 and model.training:
            raise KeyboardInterrupt  # dies between checkpoints: steps 29 and 30 are lost
        return loss(batch)

    cut.loss_fn = crash_at_step_30
    with pytest.raises(KeyboardInterrupt):
        cut.fit(small_synthetic)
    _, resumed = _fit(tmp_path / "cut", small_synthetic, epochs=2, ckpt_every=7)
    resumed.fit(small_synthetic, resume=True)
    a, b = load_file(tmp_path / "full" / MODEL), load_file(tmp_path / "cut" / MODEL)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_sample_and_eval_flags(cli, tmp_path, tiny_features):
    run = tmp_path / "run"
    sets = ["--set", "model.channels=4,8,8", "--set", "model.embed_dim=8"]
    args = ["--data", "synthetic", "--limit", "300", "--epochs", "1", "--batch-size", "100"]
    assert cli("train", "diffusion", "--out", run, *args, *sets, "--quiet").code == 0
    assert (run / "samples" / "samples.png").is_file()
    out = tmp_path / "grid.png"
    r = cli(
        "sample", run, "--n", "6", "--out", out, "--steps", "3", "--guidance", "2", "--label", "4"
    )
    assert r.code == 0, r.err
    assert out.is_file()
    assert_user_error(cli("sample", run, "--n", "2", "--out", out, "--label", "10"), "label")
    assert_user_error(cli("sample", run, "--n", "2", "--out", out, "--steps", "0"), "--steps")
    assert_user_error(
        cli("sample", run, "--n", "2", "--out", out, "--temperature", "0.5"), "temperature"
    )
    # FID against steps, beside the usual sample scores; a VAE-style flag is refused early
    feats = ["--features", tiny_features.directory, "--n", "20", "--quiet"]
    r = cli("eval", run, *feats, "--steps", "1,3")
    assert r.code == 0, r.err
    by_steps = json.loads((run / "metrics.json").read_text())["samples_by_steps"]
    assert [row["steps"] for row in by_steps["rows"]] == [1, 3]
    assert all(row["fid"] >= 0 and row["images_per_s"] > 0 for row in by_steps["rows"])
    assert_user_error(cli("eval", run, *feats, "--steps", "0"), "at least 1")


def test_steps_flags_are_refused_for_models_without_steps(cli, tmp_path, tiny_features):
    run = tmp_path / "vae"
    args = ["--data", "synthetic", "--limit", "300", "--epochs", "1", "--batch-size", "100"]
    sets = ["--set", "model.hidden=16", "--set", "model.latent_dim=2"]
    assert cli("train", "vae-mlp", "--out", run, *args, *sets, "--quiet").code == 0
    out = tmp_path / "grid.png"
    assert_user_error(cli("sample", run, "--n", "2", "--out", out, "--steps", "5"), "--steps")
    assert_user_error(cli("sample", run, "--n", "2", "--out", out, "--guidance", "2"), "--guidance")
    assert not out.exists()
    feats = ["--features", tiny_features.directory, "--n", "20", "--quiet"]
    assert_user_error(cli("eval", run, *feats, "--steps", "5"), "has no steps")
