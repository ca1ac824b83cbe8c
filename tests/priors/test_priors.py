"""The priors: causality, no blind spot, cached sampling, learning, the sampler (the
autoregressive ones); labels and class-disjoint codes (all, MaskGIT included).
MaskGIT's own schedule and sampler: tests/test_maskgit.py."""

import math

import pytest
import torch

import aegen
from aegen.config import TrainConfig
from aegen.data.datasets import Dataset, Split
from aegen.errors import UserError
from aegen.priors.base import Prior, draw
from aegen.registry import available, entry
from aegen.train import Trainer

PRIORS = available("prior")
AUTOREGRESSIVE = [n for n in PRIORS if issubclass(entry(n).cls, Prior)]
SMALL = {
    "pixelcnn": {"d_model": 16, "n_layers": 3, "kernel": 5, "head_dim": 32},
    "pixelrnn": {"embed_dim": 16, "d_model": 32, "n_layers": 2},
    "transformer": {"d_model": 32, "n_layers": 2, "n_heads": 4, "dropout": 0.0},
    "maskgit": {"d_model": 32, "n_layers": 2, "n_heads": 4},
}


def _prior(name, **kw):
    torch.manual_seed(0)
    return aegen.build_model(name, num_codes=12, height=5, width=6, **{**SMALL[name], **kw}).eval()


def test_all_four_are_registered():
    assert PRIORS == ["maskgit", "pixelcnn", "pixelrnn", "transformer"]
    assert AUTOREGRESSIVE == ["pixelcnn", "pixelrnn", "transformer"]


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
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


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
def test_changing_later_codes_leaves_earlier_logits_alone(name):
    prior = _prior(name)
    a = torch.randint(12, (3, 5, 6), generator=torch.Generator().manual_seed(1))
    b = a.clone()
    b.view(3, -1)[:, 13:] = (b.view(3, -1)[:, 13:] + 5) % 12
    la, lb = prior(a).flatten(2), prior(b).flatten(2)
    assert torch.allclose(la[:, :, :14], lb[:, :, :14], atol=1e-6)
    assert not torch.allclose(la[:, :, 14:], lb[:, :, 14:])


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
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


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
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


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
@pytest.mark.parametrize("classes", [0, 3])
def test_sampling_logits_equal_the_teacher_forced_ones(name, classes):
    """At every position, the logits that sampling uses — recomputed from the prefix and
    from the cache, one step at a time — equal those of the training forward pass."""
    prior = _prior(name, num_classes=classes)
    codes = torch.randint(12, (3, 5, 6), generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 2, 1]) if classes else None
    with torch.no_grad():
        forced = prior(codes, y).flatten(2)  # (B, K, T)
        flat = codes.flatten(1)  # (B, T)
        cache = prior.init_cache(3, y)
        for t in range(prior.length):
            garbage = flat.clone()
            garbage[:, t:] = (garbage[:, t:] * 7 + 3) % 12  # what is not yet drawn
            torch.testing.assert_close(
                prior.prefix_logits(garbage, y, t), forced[:, :, t], atol=1e-5, rtol=1e-5
            )
            if cache is not None:
                logits, cache = prior.step(flat[:, t - 1] if t else None, y, t, cache)
                torch.testing.assert_close(logits, forced[:, :, t], atol=1e-5, rtol=1e-5)


def _disjoint_code_data(n, seed, classes=3, per_class=4):
    """Grids of codes drawn uniformly from their class's own codes c·4 … c·4 + 3 (K = 12)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    codes = torch.randint(per_class, (n, 5, 6), generator=g) + per_class * y[:, None, None]
    return codes, y


@pytest.mark.parametrize("name", PRIORS)
def test_each_class_samples_only_its_own_codes(name):
    """Trained on classes that use disjoint codes, a prior asked for class c draws only
    c's codes (98 % or more: temperature 1 leaves a little mass elsewhere); one that
    ignores its label draws another class's first code 2 times in 3."""
    prior = _prior(name, num_classes=3).train()
    codes, y = _disjoint_code_data(600, 0)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(250):
        idx = torch.randint(600, (48,), generator=g)
        loss, _ = prior.loss(aegen.Batch(codes[idx], y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for c in range(3):
        s = prior.sample(20, generator=torch.Generator().manual_seed(c), label=c)
        own = (s // 4 == c).float().mean().item()
        assert own >= 0.98, (c, own)


def _row_code_data(n, seed, classes=8, h=4, w=4):
    """Grids in which every row repeats its first code, one of the two codes 2y and 2y + 1
    of the grid's class y (K = 2 · classes codes, each class its own pair).

    Per h×w grid: h bits given the label (one fair bit per row), h + log2(classes) bits
    without it (the first row must also reveal the class); the unigram entropy is
    log2(2 · classes) bits per code.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    first = torch.randint(2, (n, h, 1), generator=g) + 2 * y[:, None, None]
    return Split(first.expand(n, h, w).clone(), y)


def test_trainer_trains_a_prior_below_the_unigram_entropy(tmp_path):
    """Through the shared Trainer (codes as int64 x), seeded: held-out NLL ends far below
    the unigram entropy (4 bits/code), and also below what the best prior that ignores its
    label could reach, so a label-blind (or position-blind) prior fails it (seeds 0-3 end
    at 0.256-0.257 bits/code, the same prior without labels at 0.444)."""
    classes, t = 8, 16
    given_label, label_blind = 4 / t, (4 + math.log2(classes)) / t  # 0.25, 0.4375 bits/code
    data = Dataset(
        "codes",
        _row_code_data(1600, 0),
        _row_code_data(200, 1),
        _row_code_data(400, 2),
        [str(c) for c in range(classes)],
    )
    torch.manual_seed(0)
    prior = aegen.build_model(
        "transformer", num_codes=16, height=4, width=4, num_classes=classes, **SMALL["transformer"]
    )
    cfg = TrainConfig(epochs=6, batch_size=32, lr=1e-2, seed=0)
    Trainer(prior, cfg, tmp_path, progress=False).fit(data)
    nll = prior.nll_bits(data.test.x, data.test.y)
    assert nll < (given_label + label_blind) / 2, (nll, given_label, label_blind)


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


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
def test_default_configs_see_the_whole_past_of_a_7x7_grid(name):
    """With the shipped defaults (K = 256, 7×7), the last position depends on every other one."""
    torch.manual_seed(0)
    prior = aegen.build_model(name, num_codes=256, num_classes=10).eval()
    codes = torch.randint(256, (1, 7, 7), generator=torch.Generator().manual_seed(0))
    emb = prior.embed(codes).detach().requires_grad_(True)
    prior.logits_from(emb, torch.tensor([4])).flatten(2)[0, :, 48].pow(2).sum().backward()
    g = emb.grad[0].abs().sum(-1).flatten()
    assert torch.all(g[:48] > 0) and g[48] == 0, g
