"""VAEs: the loss against closed forms, torch.distributions and Monte Carlo; the IWAE bound;
KL warm-up and free bits; sampling; the diagnostics. (Shapes, overfitting one batch and
save/load for vae-mlp and vae-conv are in test_models.py, with every model.)"""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import aegen
from aegen.config import TrainConfig
from aegen.data.loader import Batch, to_float
from aegen.eval.vae import vae_diagnostics
from aegen.models.vae import kl_weight, reparameterize
from aegen.prob import log_normal_diag, log_std_normal

SMALL = {"hidden": (64,), "latent_dim": 4}


def _x(data, n=16):
    return to_float(data.train.x[:n])


def _manual_loss(model, x, beta, free_bits=0.0):
    """The documented objective, from torch.distributions (independent of the model's code)."""
    mu, logvar = model.encoder_params(x)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn_like(mu)
    out = model.decode_logits(z)
    if model.config.likelihood == "bernoulli":
        log_px = Bernoulli(logits=out, validate_args=False).log_prob(x).flatten(1).sum(1)
    else:
        log_px = Normal(torch.sigmoid(out), model.decoder_sigma()).log_prob(x).flatten(1).sum(1)
    kl_dim = kl_divergence(Normal(mu, std), Normal(0.0, 1.0))  # (B, D)
    kl = kl_dim.mean(0).clamp(min=free_bits).sum() if free_bits else kl_dim.sum(1).mean()
    return -log_px.mean() + beta * kl


@pytest.mark.parametrize(
    "name,extra",
    [
        ("vae-mlp", {}),
        ("vae-conv", {"channels": (4, 8)}),
        ("vae-mlp", {"likelihood": "gaussian", "sigma": 0.3}),
        ("vae-mlp", {"likelihood": "gaussian", "decoder_var": "learned"}),
    ],
)
def test_loss_is_per_sample_sums_averaged_over_the_batch(name, extra, small_synthetic):
    torch.manual_seed(0)
    kw = {"latent_dim": 4, **({"hidden": (64,)} if name == "vae-mlp" else {})}
    model = aegen.build_model(name, beta=2.5, **kw, **extra)
    x = _x(small_synthetic)
    torch.manual_seed(1)
    loss, logs = model.loss(Batch(x, None))
    torch.manual_seed(1)
    expected = _manual_loss(model, x, beta=2.5)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-3)
    # logs: recon + kl = nelbo, all in nats per image
    torch.testing.assert_close(logs["recon"] + logs["kl"], logs["nelbo"])
    assert logs["recon"] > 100  # summed over 784 pixels, not averaged


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, 5, generator=g, dtype=torch.float64) * 0.5
    n = 200_000
    z = reparameterize(mu.expand(n, 3, 5), logvar.expand(n, 3, 5), g)  # (n, 3, 5)
    mc = (log_normal_diag(z, mu, logvar) - log_std_normal(z)).mean(0)  # E_q[log q − log p]
    closed = aegen.prob.kl_vae(mu, logvar)
    torch.testing.assert_close(mc, closed, atol=0.03, rtol=0.01)
    # and the private log densities agree with torch.distributions
    ref_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z[:10]).sum(-1)
    torch.testing.assert_close(log_normal_diag(z[:10], mu, logvar), ref_q)
    torch.testing.assert_close(log_std_normal(z[:10]), Normal(0.0, 1.0).log_prob(z[:10]).sum(-1))


def test_reparameterization_passes_gradients():
    mu = torch.tensor([0.5, -1.0], requires_grad=True)
    logvar = torch.tensor([0.2, -0.4], requires_grad=True)
    g = torch.Generator().manual_seed(0)
    z = reparameterize(mu, logvar, g)
    z.sum().backward()
    eps = torch.randn(2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mu.grad, torch.ones(2))  # dz/dμ = 1
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)


def test_reconstruction_gradient_reaches_the_encoder(small_synthetic):
    """With β = 0 the only path to the encoder is through the sampled z."""
    torch.manual_seed(0)
    model = aegen.build_model("vae-mlp", beta=0.0, **SMALL)
    loss, _ = model.loss(Batch(_x(small_synthetic), None))
    loss.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert model.to_params.weight.grad[4:].abs().sum() > 0  # the log σ² rows too


@torch.no_grad()
def test_iwae_bound_is_not_below_the_elbo(small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model("vae-mlp", **SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = _x(small_synthetic, 64)
    with torch.enable_grad():  # a briefly trained model, so the posterior is not the prior
        for _ in range(60):
            loss, _ = model.loss(Batch(x, None))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    g = torch.Generator().manual_seed(1)
    elbo = torch.stack([model.log_likelihood(x, k=1, generator=g).mean() for _ in range(30)])
    iwae = torch.stack([model.log_likelihood(x, k=64, generator=g).mean() for _ in range(5)])
    noise = 3 * (elbo.std() / math.sqrt(len(elbo)) + iwae.std() / math.sqrt(len(iwae)))
    assert iwae.mean() >= elbo.mean() - noise, (iwae.mean(), elbo.mean(), noise)
    assert iwae.mean() > elbo.mean()  # strictly tighter here, by a margin well above the noise
    # k = 1 is the ELBO with a Monte Carlo KL: same expectation as the closed-form ELBO
    closed = torch.stack([model.elbo(x, generator=g).mean() for _ in range(30)])
    assert abs(closed.mean() - elbo.mean()) < noise + 0.5


def test_iwae_objective_is_the_negative_bound(small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model("vae-mlp", iwae_k=5, **SMALL)
    x = _x(small_synthetic)
    torch.manual_seed(3)
    loss, _ = model.loss(Batch(x, None))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    torch.manual_seed(3)
    bound = model.log_likelihood(x, k=5)
    torch.testing.assert_close(loss.detach(), -bound.mean(), rtol=1e-5, atol=1e-3)


def test_free_bits_floor_each_dimension(small_synthetic):
    torch.manual_seed(0)
    lam = 0.5
    model = aegen.build_model("vae-mlp", free_bits=lam, **SMALL)
    x = _x(small_synthetic)
    with torch.no_grad():  # push dim 0 far from the prior so it sits above the floor
        model.to_params.bias[0] = 3.0
    torch.manual_seed(1)
    loss, logs = model.loss(Batch(x, None))
    kl_term = loss - logs["recon"]
    mu, logvar = model.encoder_params(x)
    per_dim = aegen.prob.kl_vae(mu.unsqueeze(-1), logvar.unsqueeze(-1)).mean(0)  # (D,)
    assert per_dim[0] > lam and (per_dim[1:] < lam).all()  # the case being tested
    torch.testing.assert_close(kl_term, per_dim.clamp(min=lam).sum(), rtol=1e-5, atol=1e-4)
    assert kl_term >= lam * model.config.latent_dim
    torch.manual_seed(1)
    torch.testing.assert_close(
        loss, _manual_loss(model, x, 1.0, free_bits=lam), rtol=1e-5, atol=1e-3
    )

    # the floored dims get no KL gradient: only the reconstruction moves them
    def grad_mu_bias(beta):
        model.config.beta = beta
        model.zero_grad()
        torch.manual_seed(1)
        model.loss(Batch(x, None))[0].backward()
        return model.to_params.bias.grad[:4].clone()

    kl_grad = grad_mu_bias(1.0) - grad_mu_bias(0.0)  # (4,) the KL term's share
    assert kl_grad[0] != 0 and torch.all(kl_grad[1:].abs() < 1e-6)


def test_kl_warmup_schedules():
    from aegen.models.vae import VAEConfig

    lin = VAEConfig(beta=2.0, kl_warmup="linear", kl_warmup_steps=100)
    got = [kl_weight(torch.tensor(s), lin).item() for s in (0, 50, 100, 1000)]
    assert got == pytest.approx([0.0, 1.0, 2.0, 2.0])
    cyc = VAEConfig(beta=1.0, kl_warmup="cyclical", kl_warmup_steps=100, kl_cycles=2)
    got = [kl_weight(torch.tensor(s), cyc).item() for s in (0, 25, 50, 99, 100, 125, 200, 225)]
    assert got == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0])
    assert kl_weight(torch.tensor(7), VAEConfig(beta=3.0)).item() == 3.0


def test_warmup_step_lives_in_the_model_so_resume_is_exact(small_synthetic, tmp_path):
    """The warm-up's step counter is a buffer: saved, restored, and only advanced by training."""
    cfg = TrainConfig(epochs=2, batch_size=100, lr=3e-3, schedule="constant")
    build = lambda: aegen.build_model("vae-mlp", kl_warmup="linear", kl_warmup_steps=15, **SMALL)  # noqa: E731
    aegen.seed_everything(0)
    full = build()
    aegen.Trainer(full, cfg, tmp_path / "full", progress=False).fit(small_synthetic)
    assert full.step.item() == 20  # 2 epochs × 10 steps; validation does not count

    aegen.seed_everything(0)
    part = build()
    one = TrainConfig(**{**cfg.__dict__, "epochs": 1})
    aegen.Trainer(part, one, tmp_path / "cut", progress=False).fit(small_synthetic)
    resumed = build()
    aegen.Trainer(resumed, cfg, tmp_path / "cut", progress=False).fit(small_synthetic, resume=True)
    assert resumed.step.item() == 20
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_sampling_is_reproducible_with_a_generator():
    model = aegen.build_model("vae-mlp", **SMALL).eval()
    a = model.sample(6, generator=torch.Generator().manual_seed(5))
    b = model.sample(6, generator=torch.Generator().manual_seed(5))
    c = model.sample(6, generator=torch.Generator().manual_seed(6))
    assert a.shape == (6, 1, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    cold = model.sample(3, generator=torch.Generator().manual_seed(5), temperature=1e-6)
    torch.testing.assert_close(cold, model.decode(torch.zeros(3, 4)), atol=1e-5, rtol=0)
    ll = lambda s: model.log_likelihood(a, k=8, generator=torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(ll(1), ll(1)) and ll(1).shape == (6,)


def test_reconstruct_and_features_use_the_posterior_mean(small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model("vae-mlp", **SMALL).eval()
    x = _x(small_synthetic, 4)
    mu, _ = model.encoder_params(x)
    assert torch.equal(model.features(x), mu)
    assert torch.equal(model.reconstruct(x), model.decode(mu).clamp(0, 1))
    assert torch.equal(model.reconstruct(x), model.reconstruct(x))  # deterministic


def test_learned_decoder_variance_is_saved_and_loaded(tmp_path, small_synthetic):
    from aegen.checkpoint import load, save_model, write_config
    from aegen.config import to_dict

    torch.manual_seed(0)
    model = aegen.build_model(
        "vae-mlp", likelihood="gaussian", decoder_var="learned", kl_warmup="linear",
        kl_warmup_steps=9, **SMALL,
    )  # fmt: skip
    with torch.no_grad():
        model.log_sigma.fill_(-1.5)
        model.step.fill_(4)
    write_config(tmp_path, {"model": "vae-mlp", "model_config": to_dict(model.config)})
    save_model(tmp_path / "model.safetensors", model)
    back = load(tmp_path, family="vae")
    assert back.log_sigma.item() == -1.5 and back.step.item() == 4
    x = _x(small_synthetic, 4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(back.log_likelihood(x, 4, g()), model.eval().log_likelihood(x, 4, g()))


def test_config_errors_name_the_problem():
    from aegen.errors import ConfigError

    with pytest.raises(ConfigError, match="kl_warmup_steps"):
        aegen.build_model("vae-mlp", kl_warmup="linear")
    with pytest.raises(ConfigError, match="free_bits"):
        aegen.build_model("vae-mlp", free_bits=0.1, iwae_k=4)
    with pytest.raises(ConfigError, match="likelihood=gaussian"):
        aegen.build_model("vae-mlp", decoder_var="learned")
    with pytest.raises(ConfigError, match="latent_dim"):
        aegen.build_model("vae-conv", latent_dim=0)


# --------------------------------------------------------------------------- diagnostics


# --------------------------------------------------------------------------- latent paths


# --------------------------------------------------------------------------- real data (slow)


@pytest.mark.slow
def test_vae_mlp_learns_fashion_mnist(fashion_small, tmp_path):
    """A few epochs on 5000 real images: a sensible ELBO, an IWAE NLL below −ELBO, no collapse."""
    from aegen.runs import make_run_config, train_run

    run = make_run_config("vae-mlp", epochs=5, data_dir=None)
    trained = train_run(run, tmp_path, progress=False, data=fashion_small)
    diag = vae_diagnostics(trained.model, fashion_small.test, k=50, nll_images=1000)
    assert -diag["elbo"] < 280  # nats per image; an untrained model is at ~545
    assert diag["nll"] < -diag["elbo"]
    assert diag["active_units"] >= 8 and not diag["posterior_collapse"]
    assert diag["sharpness"]["samples_vs_data"] < 1  # VAE samples are blurrier than the data


def test_fused_adamw_option_trains_like_the_default(small_synthetic):
    """train.fused (added for the VAE defaults) changes the kernel, not the optimisation."""
    weights = []
    for fused in (False, True):
        aegen.seed_everything(0)
        model = aegen.build_model("vae-mlp", **SMALL)
        cfg = TrainConfig(epochs=1, batch_size=100, lr=3e-3, fused=fused)
        trainer = aegen.Trainer(model, cfg, None, progress=False)
        assert bool(trainer.optimizer.defaults["fused"]) is fused
        trainer.fit(small_synthetic)
        weights.append(model.state_dict())
    for k, v in weights[0].items():
        torch.testing.assert_close(weights[1][k], v, rtol=1e-4, atol=1e-5)
