"""Autoregressive priors: causality, no blind spot, cached sampling, learning, the sampler."""

import math

import pytest
import torch

import aegen
from aegen.config import TrainConfig
from aegen.data.datasets import Dataset, Split
from aegen.errors import UserError
from aegen.priors.base import draw
from aegen.registry import available
from aegen.train import Trainer

PRIORS = available("prior")
SMALL = {
    "pixelcnn": {"d_model": 16, "n_layers": 3, "kernel": 5, "head_dim": 32},
    "pixelrnn": {"embed_dim": 16, "d_model": 32, "n_layers": 2},
    "transformer": {"d_model": 32, "n_layers": 2, "n_heads": 4, "dropout": 0.0},
}


def _prior(name, **kw):
    torch.manual_seed(0)
    return aegen.build_model(name, num_codes=12, height=5, width=6, **{**SMALL[name], **kw}).eval()


def test_all_three_are_registered():
    assert PRIORS == ["pixelcnn", "pixelrnn", "transformer"]


@pytest.mark.parametrize("name", PRIORS)
@pytest.mark.parametrize("t", [0, 7, 29])
def test_causal_and_no_blind_spot(name, t):
    """The output at position t has zero gradient w.r.t. inputs at t and later, and a
    non-zero one w.r.t. every earlier input (no blind spot)."""
    prior = _prior(name, num_classes=3)
    codes = torch.randint(12, (2, 5, 6), generator=torch.Generator().manual_seed(t))
    emb = prior.embed(codes).detach().requires_grad_(True)  # (B, H, W, C)
    logits = prior.logits_from(emb, torch.tensor([0, 2]))  # (B, K, H, W)
    assert logits.shape == (2, 12, 5, 6)
    logits.flatten(2)[0, :, t].pow(2).sum().backward()
    g = emb.grad[0].abs().sum(-1).flatten()  # (T,) gradient size per input position
    assert torch.all(g[t:] == 0), g
    assert torch.all(g[:t] > 0), g
    assert torch.all(emb.grad[1] == 0)  # images in a batch do not mix


@pytest.mark.parametrize("name", PRIORS)
def test_changing_later_codes_leaves_earlier_logits_alone(name):
    prior = _prior(name)
    a = torch.randint(12, (3, 5, 6), generator=torch.Generator().manual_seed(1))
    b = a.clone()
    b.view(3, -1)[:, 13:] = (b.view(3, -1)[:, 13:] + 5) % 12
    la, lb = prior(a).flatten(2), prior(b).flatten(2)
    assert torch.allclose(la[:, :, :14], lb[:, :, :14], atol=1e-6)
    assert not torch.allclose(la[:, :, 14:], lb[:, :, 14:])


@pytest.mark.parametrize("name", PRIORS)
def test_cached_sampling_equals_uncached(name):
    prior = _prior(name, num_classes=4)
    kw = {"label": 2, "temperature": 0.9, "top_k": 8}
    a = prior.sample(6, generator=torch.Generator().manual_seed(5), use_cache=True, **kw)
    b = prior.sample(6, generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
    assert a.shape == (6, 5, 6) and a.dtype == torch.long
    assert torch.equal(a, b)
    c = prior.sample(6, generator=torch.Generator().manual_seed(6), **kw)
    assert not torch.equal(a, c)
    assert 0 <= int(a.min()) and int(a.max()) < 12


@pytest.mark.parametrize("name", PRIORS)
def test_sampling_follows_a_peaked_model(name):
    """A prior trained on one constant grid samples that grid (and nll → 0)."""
    prior = _prior(name).train()
    grid = torch.randint(12, (1, 5, 6), generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    batch = aegen.Batch(grid.expand(8, -1, -1), torch.zeros(8, dtype=torch.long))
    for _ in range(150):
        loss, logs = prior.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["nll_bits"] == pytest.approx(loss.item() / math.log(2))
    assert prior.nll_bits(grid) < 0.05
    s = prior.sample(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, grid.expand(4, -1, -1))


def _code_data(n=1200, seed=0):
    """Grids with strong structure: each row repeats its first code, which is one of two."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    first = torch.randint(2, (n, 5, 1), generator=g) + 4 * y[:, None, None]
    codes = first.expand(n, 5, 6).clone()
    return Split(codes, y)


def test_trainer_trains_a_prior_below_the_unigram_entropy(tmp_path):
    """Through the shared Trainer (codes as int64 x): held-out NLL falls far below the
    unigram entropy of these codes (2 bits), towards the true 1/6 bit per code."""
    data = Dataset("codes", _code_data(1200, 0), _code_data(200, 1), _code_data(200, 2), ["a", "b"])
    prior = aegen.build_model(
        "transformer", num_codes=12, height=5, width=6, num_classes=2, **SMALL["transformer"]
    )
    Trainer(prior, TrainConfig(epochs=3, batch_size=50, lr=3e-3), tmp_path, progress=False).fit(
        data
    )
    nll = prior.nll_bits(data.test.x, data.test.y)
    assert nll < 0.4, nll  # the data's entropy is 5 bits per 30 codes ≈ 0.17 bits/code


def test_draw_temperature_top_k_and_exact_random_use():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0]]).expand(20000, -1))
    g = torch.Generator().manual_seed(0)
    x = draw(logits, g)
    freq = torch.bincount(x, minlength=4).float() / x.numel()
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2, 0.0]), atol=0.015)
    x = draw(logits, torch.Generator().manual_seed(0), top_k=2)
    freq = torch.bincount(x, minlength=4).float() / x.numel()
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0, 0]), atol=0.015)
    x = draw(logits, torch.Generator().manual_seed(0), temperature=0.5)  # p² renormalised
    freq = torch.bincount(x, minlength=4).float() / x.numel()
    assert torch.allclose(freq, torch.tensor([25, 9, 4, 0]) / 38.0, atol=0.015)
    g = torch.Generator().manual_seed(0)
    draw(logits[:3], g)
    assert torch.equal(g.get_state(), _after_n_uniforms(3))


def _after_n_uniforms(n):
    g = torch.Generator().manual_seed(0)
    torch.rand(n, 1, generator=g)
    return g.get_state()


@pytest.mark.parametrize("name", PRIORS)
def test_label_errors(name):
    with pytest.raises(UserError, match="without labels"):
        _prior(name).sample(2, label=1)
    with pytest.raises(UserError, match="not a class"):
        _prior(name, num_classes=3).sample(2, label=3)


@pytest.mark.parametrize("name", PRIORS)
def test_default_configs_see_the_whole_past_of_a_7x7_grid(name):
    """With the shipped defaults (K = 256, 7×7), the last position depends on every other one."""
    torch.manual_seed(0)
    prior = aegen.build_model(name, num_codes=256, num_classes=10).eval()
    codes = torch.randint(256, (1, 7, 7), generator=torch.Generator().manual_seed(0))
    emb = prior.embed(codes).detach().requires_grad_(True)
    prior.logits_from(emb, torch.tensor([4])).flatten(2)[0, :, 48].pow(2).sum().backward()
    g = emb.grad[0].abs().sum(-1).flatten()
    assert torch.all(g[:48] > 0) and g[48] == 0, g
