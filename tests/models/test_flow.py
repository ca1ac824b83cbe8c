"""The normalizing flow: exact inverse, exact log-determinants, a likelihood that learns,
exact resume, and the CLI's sample / bad-input rules for it."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_user_error
from safetensors.torch import load_file

import aegen
from aegen.checkpoint import MODEL
from aegen.config import TrainConfig
from aegen.eval.evaluate import EvalOptions, evaluate_run
from aegen.models.flow import (
    ActNorm,
    AffineCoupling,
    FlowStep,
    InvConv1x1,
    SplitPrior,
    dequantize,
    squeeze,
    unsqueeze,
)
from aegen.runs import make_run_config, train_run
from aegen.train import Trainer

TINY = {"n_scales": 2, "steps": 1, "channels": (4, 4)}
SMALL_TRAIN = {"n_scales": 2, "steps": 2, "channels": (16, 16)}


def _randomize(module: torch.nn.Module, seed: int, scale: float = 0.2) -> torch.nn.Module:
    """Move every parameter away from its identity-like start (zero-initialised nets, unit
    actnorm), so the checks see a flow whose every layer does something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    for m in module.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    return module.eval()


def _tiny_flow(seed: int = 0) -> torch.nn.Module:
    """A tiny float64 flow with random weights, moved only so far (0.1) that its inverse keeps
    N(0, I) draws inside logit ±7: a wilder one sends them past logit ±35, where y = sigmoid
    is 1 in float64 and no map through y ∈ (0, 1) can come back."""
    torch.manual_seed(seed)
    return _randomize(aegen.build_model("flow", TINY).double(), seed + 1, scale=0.1)


def _unit_cube(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.02 + 0.96 * torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- invertibility


def test_squeeze_is_a_pixel_permutation_and_unsqueeze_undoes_it():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    assert torch.equal(s[0, :4, 0, 0], torch.tensor([0.0, 1.0, 6.0, 7.0]))  # one 2×2 patch
    assert torch.equal(unsqueeze(s), x)


def test_forward_then_inverse_and_inverse_then_forward_are_the_identity():
    flow = _tiny_flow()
    y = _unit_cube(3, seed=1)
    eps, _ = flow(y)
    assert eps.shape == (3, 784)
    assert (flow.inverse(eps) - y).abs().max() < 1e-5
    e = torch.randn(3, 784, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    back, _ = flow(flow.inverse(e))
    assert (back - e).abs().max() < 1e-5
    assert (eps - y.flatten(1)).abs().max() > 0.1  # it is not the identity map


def test_the_default_flow_inverts_in_float32_too():
    torch.manual_seed(0)
    flow = _randomize(aegen.build_model("flow"), 1, scale=0.05)
    y = _unit_cube(2, seed=3).float()
    assert (flow.inverse(flow(y)[0]) - y).abs().max() < 1e-4


# --------------------------------------------------------------------------- log-determinants


def _brute_force_logdet(fn, x: torch.Tensor) -> float:
    """log|det J| of ``fn`` at one input ``x`` (1, …), from the full Jacobian."""
    flat = x.flatten()

    def f(v: torch.Tensor) -> torch.Tensor:
        return fn(v.view_as(x)).flatten()

    jac = torch.autograd.functional.jacobian(f, flat, vectorize=True)  # (D, D)
    return float(torch.linalg.slogdet(jac)[1])


def _split_as_map(prior: SplitPrior):
    def fn(x):
        h, eps, _ = prior(x)
        return torch.cat([h, eps], 1)

    return fn


LAYERS = {
    "actnorm": lambda: ActNorm(4),
    "invconv": lambda: InvConv1x1(4),
    "coupling": lambda: AffineCoupling(4, 8),
    "step": lambda: FlowStep(4, 8),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_layer_logdet_equals_the_brute_force_jacobian(name):
    torch.manual_seed(0)
    layer = _randomize(LAYERS[name]().double(), 1, scale=0.5)
    x = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y, logdet = layer(x)
    logdet = logdet.detach()
    assert (layer.inverse(y) - x).abs().max() < 1e-10
    assert float(logdet[0]) == pytest.approx(
        _brute_force_logdet(lambda v: layer(v)[0], x), abs=1e-8
    )
    assert abs(float(logdet[0])) > 1e-3  # a volume change to get right, not a trivial zero


def test_split_prior_logdet_equals_the_brute_force_jacobian():
    torch.manual_seed(0)
    prior = _randomize(SplitPrior(4).double(), 1, scale=0.5)
    x = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    h, eps, logdet = prior(x)
    assert torch.equal(prior.inverse(h, eps)[:, :2], x[:, :2])
    assert (prior.inverse(h, eps) - x).abs().max() < 1e-10
    brute = _brute_force_logdet(_split_as_map(prior), x)
    assert float(logdet[0].detach()) == pytest.approx(brute, abs=1e-8) and abs(brute) > 1e-3


def test_the_whole_flow_logdet_equals_the_brute_force_jacobian():
    """Logit pre-transform, squeezes, every step and the split prior at once: 784×784."""
    flow = _tiny_flow()
    y = _unit_cube(1, seed=4)
    _, logdet = flow(y)
    assert float(logdet[0].detach()) == pytest.approx(
        _brute_force_logdet(lambda v: flow(v)[0], y), abs=1e-6
    )


# --------------------------------------------------------------------------- likelihood


def test_dequantization_keeps_each_pixel_in_its_own_level():
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (4, 1, 28, 28), generator=g)
    y = dequantize(levels.float() / 255, torch.Generator().manual_seed(1))
    assert torch.equal(torch.floor(y * 256).long(), levels)
    assert y.std() > 0  # noise was added
    # the same generator seed, the same draw
    again = dequantize(levels.float() / 255, torch.Generator().manual_seed(1))
    assert torch.equal(y, again)


def test_actnorm_initialises_from_the_first_training_batch_only():
    torch.manual_seed(0)
    norm = ActNorm(3).train()
    x = 5 + 3 * torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    y, _ = norm(x)
    assert y.mean((0, 2, 3)).abs().max() < 1e-4
    assert (y.std((0, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm(x * 10)
    assert all(torch.equal(before[k], v) for k, v in norm.state_dict().items())


def _fit(data, config: dict, steps_cfg: dict, out=None, resume=False, model=None):
    torch.manual_seed(0)
    model = model or aegen.build_model("flow", config)
    cfg = TrainConfig(**{"batch_size": 64, "lr": 3e-3, "amp": "off", **steps_cfg})
    Trainer(model, cfg, out, progress=False).fit(data, resume=resume)
    return model


def test_bits_per_dim_after_brief_training_is_below_the_uniform_models_8(small_synthetic):
    torch.manual_seed(0)
    untrained = aegen.build_model("flow", SMALL_TRAIN).eval()
    trained = _fit(small_synthetic, SMALL_TRAIN, {"epochs": 2}).eval()
    x = small_synthetic.test.x[:200].unsqueeze(1).float() / 255

    def bits(model):
        ll = model.log_likelihood(x, k=1, generator=torch.Generator().manual_seed(0))
        return float(-ll.mean() / (784 * math.log(2)))

    assert bits(trained) < 8.0  # the uniform model over 256 levels: exactly 8 bits/dim
    assert bits(trained) < bits(untrained) - 1.0  # and training is what got it there


def test_eval_reports_the_flows_bits_per_dim_in_the_likelihood_section(tmp_path, small_synthetic):
    sets = ["model.steps=1", "model.channels=4,4", "train.lr=3e-3"]
    run = make_run_config("flow", "synthetic", sets, epochs=1, batch_size=64, limit=1200)
    model = train_run(run, tmp_path / "run", progress=False).model
    options = EvalOptions(nll_images=50, iwae_k=2)
    got = evaluate_run(tmp_path / "run", small_synthetic, options=options, only=["likelihood"])
    lik = got.sections["likelihood"]
    x = small_synthetic.test.x[:50].unsqueeze(1).float() / 255
    ll = model.eval().log_likelihood(x, k=2, generator=torch.Generator().manual_seed(0))
    assert lik["importance_samples"] == 2 and lik["n"] == 50
    assert lik["nll_nats"] == pytest.approx(float(-ll.double().mean()), rel=1e-5)
    assert lik["bits_per_dim"] == pytest.approx(lik["nll_nats"] / (784 * math.log(2)))


def test_more_dequantization_draws_tighten_the_bound(small_synthetic):
    """log mean_k p(y_k) ≥ mean_k log p(y_k) (Jensen), so k = 8 reports more nats than k = 1
    on average over the same images."""
    model = _fit(small_synthetic, TINY, {"epochs": 1}).eval()
    x = small_synthetic.test.x[:100].unsqueeze(1).float() / 255
    one = model.log_likelihood(x, k=1, generator=torch.Generator().manual_seed(0)).mean()
    eight = model.log_likelihood(x, k=8, generator=torch.Generator().manual_seed(0)).mean()
    assert eight > one
    # and it is exactly log of the mean of k densities, over the same k draws
    g = torch.Generator().manual_seed(0)
    singles = torch.stack([model.log_likelihood(x[:5], k=1, generator=g) for _ in range(8)])
    together = model.log_likelihood(x[:5], k=8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(together, torch.logsumexp(singles, 0) - math.log(8), atol=1e-3)


def test_a_run_interrupted_mid_epoch_resumes_bit_exactly(tmp_path, small_synthetic):
    """Dequantization noise and actnorm's one-time init are restored with the RNG and the
    weights, so a run stopped after a mid-epoch checkpoint ends with the same weights."""
    steps = {"epochs": 2, "ckpt_every": 5, "seed": 3}
    _fit(small_synthetic, TINY, steps, out=tmp_path / "full")

    class Killed(Exception):
        pass

    torch.manual_seed(0)
    model = aegen.build_model("flow", TINY)
    calls = {"n": 0}
    loss = model.loss

    def dies_at_step_23(batch):
        calls["n"] += 1
        if calls["n"] > 23:
            raise Killed
        return loss(batch)

    cfg = TrainConfig(batch_size=64, lr=3e-3, amp="off", **steps)
    with pytest.raises(Killed):
        Trainer(model, cfg, tmp_path / "cut", loss_fn=dies_at_step_23, progress=False).fit(
            small_synthetic
        )
    torch.manual_seed(123)  # a fresh process would have another RNG state: resume restores it
    _fit(
        small_synthetic,
        TINY,
        steps,
        out=tmp_path / "cut",
        resume=True,
        model=aegen.build_model("flow", TINY),
    )
    a, b = load_file(tmp_path / "full" / MODEL), load_file(tmp_path / "cut" / MODEL)
    assert sorted(a) == sorted(b) and any("initialized" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- CLI


TRAIN = ["--data", "synthetic", "--limit", "600", "--epochs", "1", "--batch-size", "50", "--quiet"]
TINY_SET = ["--set", "model.steps=1", "--set", "model.channels=4,4"]


def test_cli_trains_samples_and_reports_bits_per_dim(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "flow", "--out", run, *TRAIN, *TINY_SET)
    assert r.code == 0, r.err
    assert "test_bits_per_dim" in r.err
    assert (run / "samples" / "samples.png").is_file()
    assert not (run / "samples" / "reconstructions.png").exists()  # a flow does not reconstruct
    assert cli("sample", run, "--n", "6", "--out", tmp_path / "a.png", "--seed", "1").code == 0
    assert cli("sample", run, "--n", "6", "--out", tmp_path / "b.png", "--seed", "1").code == 0
    r = cli("sample", run, "--n", "6", "--out", tmp_path / "c.png", "--temperature", "0.7")
    assert r.code == 0, r.err
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        (["model.n_scales=3"], ["model.n_scales", "7×7"]),
        (["model.n_scales=1"], ["model.channels", "one width per scale"]),
        (["model.alpha=0.5"], ["model.alpha", "(0, 0.5)"]),
        (["model.steps=0"], ["model.steps", "at least 1"]),
        (["model.channels=0,8"], ["model.channels", "at least 1"]),
    ],
)
def test_impossible_flow_configs_are_one_clean_error(cli, tmp_path, sets, fragments):
    out = tmp_path / "o"
    args = [a for s in sets for a in ("--set", s)]
    assert_user_error(cli("train", "flow", "--out", out, *TRAIN, *args), *fragments)
    assert not out.exists()
