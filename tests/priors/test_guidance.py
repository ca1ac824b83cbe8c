"""Classifier-free guidance of the priors: ``label_dropout`` trains a "no label" class,
and ``guidance`` W samples from l_u + W·(l_c − l_u); the refusals; old runs; the CLI."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_user_error
from torch import nn

import aegen
from aegen.checkpoint import MODEL, load_config, save_model, weights_hash, write_config
from aegen.config import TrainConfig, to_dict
from aegen.data.datasets import Dataset, Split
from aegen.errors import UserError
from aegen.pipelines.vq_prior import sample_images, samples_record
from aegen.priors import base, maskgit
from aegen.priors.base import Prior, draw
from aegen.registry import available, entry
from aegen.runs import stage_state
from aegen.train import Trainer

PRIORS = available("prior")
AUTOREGRESSIVE = [n for n in PRIORS if issubclass(entry(n).cls, Prior)]
SMALL = {
    "pixelcnn": {"d_model": 16, "n_layers": 2, "kernel": 3, "head_dim": 32},
    "pixelrnn": {"embed_dim": 16, "d_model": 32, "n_layers": 1},
    "transformer": {"d_model": 32, "n_layers": 2, "n_heads": 4},
    "maskgit": {"d_model": 32, "n_layers": 2, "n_heads": 4},
}
C = 3  # classes; "no label" is class C


def _prior(name, label_dropout=0.25, num_classes=C, height=5, width=6):
    torch.manual_seed(0)
    return aegen.build_model(
        name,
        num_codes=12,
        height=height,
        width=width,
        num_classes=num_classes,
        label_dropout=label_dropout,
        **SMALL[name],
    ).eval()


def _class_embeddings(prior):
    """A prior's class embeddings (the PixelCNN has one per gated layer)."""
    return [m for n, m in prior.named_modules() if isinstance(m, nn.Embedding) and n != "tok"]


def _set_no_label(prior, value=None):
    """Give the "no label" rows other weights than the classes' (random, or ``value``): at
    initialisation MaskGIT's label barely moves its logits, and guidance would change little."""
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for emb in _class_embeddings(prior):
            d = emb.weight.shape[1]
            emb.weight[C] = (
                torch.full((d,), value) if value is not None else 3 * torch.randn(d, generator=g)
            )
    return prior


def _spy_on_draw(monkeypatch, module):
    """Every logits tensor the sampler of ``module`` draws from, in order."""
    seen = []

    def spy(logits, *args, **kw):
        seen.append(logits.detach().clone())
        return draw(logits, *args, **kw)

    monkeypatch.setattr(module, "draw", spy)
    return seen


def _guided(prior, codes, y, w):
    """l_u + W·(l_c − l_u) from two teacher-forced passes: (B, K, T)."""
    with torch.no_grad():
        cond = prior(codes, y).flatten(2)
        uncond = prior(codes, torch.full_like(y, C)).flatten(2)
    return uncond + w * (cond - uncond), cond


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
@pytest.mark.parametrize("use_cache", [True, False])
def test_guided_logits_combine_two_teacher_forced_passes(name, use_cache, monkeypatch):
    """At every position the logits a code is drawn from are l_u + W·(l_c − l_u) of the
    training forward pass, conditional and with the "no label" class, on the drawn grids."""
    prior = _set_no_label(_prior(name))
    y, w = torch.tensor([0, 2, 1]), 2.5
    seen = _spy_on_draw(monkeypatch, base)
    g = torch.Generator().manual_seed(4)
    s = prior.sample(3, g, label=y, temperature=0.8, guidance=w, use_cache=use_cache)
    assert len(seen) == prior.length and s.shape == (3, 5, 6)
    want, cond = _guided(prior, s, y, w)
    for t, logits in enumerate(seen):
        torch.testing.assert_close(logits, want[:, :, t], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(torch.stack(seen, 2), cond, atol=1e-2)  # guidance moved them


def test_maskgit_guided_logits_combine_two_passes(monkeypatch):
    """MaskGIT: at each step, l_u + W·(l_c − l_u) of the grid the step starts from."""
    prior = _set_no_label(_prior("maskgit"))
    y, w = torch.tensor([0, 2, 1]), 3.0
    seen = _spy_on_draw(monkeypatch, maskgit)
    g = torch.Generator().manual_seed(4)
    after = list(prior.unmasking(3, g, label=y, steps=4, guidance=w))
    starts = [torch.full_like(after[0], prior.mask_token), *after[:-1]]
    assert len(seen) == 4
    for logits, grid in zip(seen, starts, strict=True):
        want, cond = _guided(prior, grid, y, w)  # (B, K, T)
        want = want.transpose(1, 2).reshape(-1, 12)  # the sampler's (B·T, K)
        torch.testing.assert_close(logits, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(seen[0], cond.transpose(1, 2).reshape(-1, 12), atol=1e-2)


@pytest.mark.parametrize("name", PRIORS)
def test_guidance_1_is_the_conditional_and_0_the_unconditional_draw(name, monkeypatch):
    """W = 1 draws exactly what the conditional prior draws and never runs the "no label"
    class (poisoned, it changes nothing); W = 0 draws exactly what sampling with the
    "no label" class as the label draws."""
    prior = _set_no_label(_prior(name))
    y = torch.tensor([0, 2, 1, 1])

    def at(w):
        return prior.sample(4, torch.Generator().manual_seed(3), label=y, guidance=w)

    cond, uncond = at(1.0), at(0.0)
    assert not torch.equal(cond, uncond)
    assert torch.equal(cond, prior.sample(4, torch.Generator().manual_seed(3), label=y))
    with monkeypatch.context() as m:
        m.setattr(prior, "_sample_labels", lambda n, label, g: torch.full((n,), C))
        assert torch.equal(at(1.0), uncond)
    _set_no_label(prior, math.nan)
    assert torch.equal(at(1.0), cond)


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
def test_cached_sampling_equals_uncached_with_guidance(name):
    prior = _set_no_label(_prior(name))
    kw = {"label": 1, "temperature": 0.9, "top_k": 8, "guidance": 3.0}
    a = prior.sample(5, torch.Generator().manual_seed(5), use_cache=True, **kw)
    b = prior.sample(5, torch.Generator().manual_seed(5), use_cache=False, **kw)
    assert torch.equal(a, b)
    plain = prior.sample(5, torch.Generator().manual_seed(5), **{**kw, "guidance": 1.0})
    assert not torch.equal(a, plain)


def _spy_on_weights(monkeypatch, module):
    """Every W the sampler of ``module`` guides with, in order."""
    seen, guide = [], base.guide

    def spy(logits, w):
        seen.append(w)
        return guide(logits, w)

    monkeypatch.setattr(module, "guide", spy)
    return seen


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_ramp_guides_each_position_from_a_to_b(use_cache, monkeypatch):
    """(A, B) guides position t of the raster order at A + (B − A)·t/(T − 1), and each
    code is drawn from l_u + W_t·(l_c − l_u) of the training forward pass."""
    prior = _set_no_label(_prior("transformer"))
    y, ramp = torch.tensor([0, 2, 1]), (1.0, 4.0)
    weights, seen = _spy_on_weights(monkeypatch, base), _spy_on_draw(monkeypatch, base)
    s = prior.sample(3, torch.Generator().manual_seed(4), label=y, guidance=ramp,
                     use_cache=use_cache)  # fmt: skip
    t = prior.length
    assert weights == pytest.approx([1.0 + 3.0 * i / (t - 1) for i in range(t)])
    assert (weights[0], weights[-1]) == (1.0, 4.0)
    for i, logits in enumerate(seen):
        want, _ = _guided(prior, s, y, weights[i])
        torch.testing.assert_close(logits, want[:, :, i], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", PRIORS)
def test_a_flat_ramp_draws_what_its_constant_draws(name):
    prior = _set_no_label(_prior(name))

    def at(w):
        return prior.sample(4, torch.Generator().manual_seed(6), label=1, guidance=w)

    assert torch.equal(at((2.5, 2.5)), at(2.5))
    assert not torch.equal(at((1.0, 4.0)), at(2.5))


def test_maskgit_ramp_rises_with_the_codes_known_before_each_step(monkeypatch):
    prior = _set_no_label(_prior("maskgit"))
    weights = _spy_on_weights(monkeypatch, maskgit)
    list(prior.unmasking(3, torch.Generator().manual_seed(4), label=1, steps=4, guidance=(2, 3)))
    left = [prior.length, *maskgit.masked_after(prior.length, 4)[:-1]]  # masked before each step
    known = [prior.length - m for m in left]
    assert weights == pytest.approx([2 + k / known[-1] for k in known])
    assert weights[0] == 2 and weights[-1] == 3 and weights == sorted(weights)
    weights.clear()
    list(prior.unmasking(3, torch.Generator().manual_seed(4), label=1, steps=1, guidance=(2, 3)))
    assert weights == [2]  # one step: the first draw, A


@pytest.mark.parametrize("name", PRIORS)
def test_guidance_refusals(name):
    with pytest.raises(UserError, match="without labels"):
        _prior(name, num_classes=0).sample(2, guidance=2.0)
    with pytest.raises(UserError, match="label_dropout=0"):
        _prior(name, label_dropout=0.0).sample(2, guidance=0.0)
    prior = _prior(name)
    for bad in (-0.5, math.nan, math.inf, (1.0, -1.0), (math.nan, 2.0)):
        with pytest.raises(UserError, match="finite number >= 0"):
            prior.sample(2, guidance=bad)
    _prior(name, label_dropout=0.0).sample(2, guidance=1.0)  # W = 1 needs nothing
    _prior(name, num_classes=0).sample(2, guidance=1.0)


# --------------------------------------------------------------------------- training


def _batch(seed=0, n=16):
    codes = torch.randint(12, (n, 5, 6), generator=torch.Generator().manual_seed(seed))
    return aegen.Batch(codes, torch.arange(n) % C)


@pytest.mark.parametrize("name", PRIORS)
def test_label_dropout_draws_its_mask_from_the_global_rng_in_training_only(name):
    """In training, the labels the network sees are the batch's with those where
    torch.rand(B) < p (global RNG) replaced by C; in evaluation the true labels, and the
    global RNG is not touched; with p = 0 the labels stay and, for the autoregressive
    priors, nothing is drawn (training at the default is what it was)."""
    batch = _batch()
    prior = _prior(name, label_dropout=0.5).train()
    seen = []
    prior.register_forward_pre_hook(lambda module, args: seen.append(args[1].clone()))
    torch.manual_seed(7)
    prior.loss(batch)
    torch.manual_seed(7)
    drop = torch.rand(16) < 0.5
    assert 0 < int(drop.sum()) < 16
    assert torch.equal(seen[-1], batch.y.masked_fill(drop, C))
    prior.eval()
    state = torch.get_rng_state()
    prior.loss(batch)
    assert torch.equal(seen[-1], batch.y) and torch.equal(torch.get_rng_state(), state)

    prior = _prior(name, label_dropout=0.0).train()
    prior.register_forward_pre_hook(lambda module, args: seen.append(args[1].clone()))
    state = torch.get_rng_state()
    prior.loss(batch)
    assert torch.equal(seen[-1], batch.y)
    if name in AUTOREGRESSIVE:
        assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", PRIORS)
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_only_label_dropout_trains_the_no_label_row(name, p):
    """The "no label" row gets gradient when p > 0; with p = 0 the autoregressive priors
    have no such row (so older runs' weights fit) and MaskGIT's gets none."""
    prior = _prior(name, label_dropout=p).train()
    torch.manual_seed(1)
    loss, _ = prior.loss(_batch())
    loss.backward()
    embeddings = _class_embeddings(prior)
    assert embeddings
    for emb in embeddings:
        grad = emb.weight.grad.abs().sum(1)  # per row
        assert torch.all(grad[:C] > 0), grad
        if p > 0:
            assert emb.weight.shape[0] == C + 1 and grad[C] > 0, grad
        elif name in AUTOREGRESSIVE:
            assert emb.weight.shape[0] == C
        else:
            assert grad[C] == 0


def _codes_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(C, (n,), generator=g)
    return Split(torch.randint(4, (n, 5, 6), generator=g) + 4 * y[:, None, None], y)


def test_resume_with_label_dropout_is_exact(tmp_path):
    """Killed after a mid-epoch checkpoint and resumed, a prior trained with label dropout
    ends with the same weights as one trained straight through (the masks come from the
    global RNG the Trainer checkpoints)."""
    data = Dataset("codes", _codes_data(96, 0), _codes_data(16, 1), _codes_data(16, 2), list("abc"))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, ckpt_every=2, seed=0)

    def build():
        return _prior("transformer", label_dropout=0.5).train()

    full = build()
    Trainer(full, cfg, tmp_path / "full", progress=False).fit(data)
    cut = build()
    calls = {"n": 0}

    def loss(batch):  # call 10 is step 3 of epoch 2 (6 steps + 1 validation call in epoch 1)
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return cut.loss(batch)

    with pytest.raises(KeyboardInterrupt):
        Trainer(cut, cfg, tmp_path / "cut", loss_fn=loss, progress=False).fit(data)
    resumed = build()
    torch.manual_seed(123)  # resuming does not depend on the caller's RNG
    Trainer(resumed, cfg, tmp_path / "cut", progress=False).fit(data, resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- runs and the CLI


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny VQ-VAE run and two transformer priors of its 7×7 grids of 12 codes: one
    trained with label dropout, one from before label_dropout (no key in config.json)."""
    root = tmp_path_factory.mktemp("guidance")
    torch.manual_seed(0)
    vq = aegen.build_model(
        "vqvae", num_codes=12, codebook_dim=4, channels=(4, 8), res_blocks=0, res_dim=4
    )
    (root / "vqvae").mkdir()
    save_model(root / "vqvae" / MODEL, vq)
    write_config(root / "vqvae", {"model": "vqvae", "model_config": to_dict(vq.config)})
    codes = {"vqvae_weights_sha256": weights_hash(root / "vqvae" / MODEL)}
    for name, p in (("guided", 0.25), ("old", 0.0)):
        prior = _prior("transformer", p, height=7, width=7)
        model_config = to_dict(prior.config)
        if p:
            _set_no_label(prior)
        else:
            del model_config["label_dropout"]
        (root / name).mkdir()
        save_model(root / name / MODEL, prior)
        write_config(
            root / name,
            {
                "model": "transformer",
                "model_config": model_config,
                "family": "prior",
                "codes": codes,
            },
        )
    return root


def _generate(cli, runs, prior, png, *more):
    return cli("generate", runs / prior, "--vqvae", runs / "vqvae", "--n", "4", "--out", png,
               "--label", "2", "--seed", "1", *more)  # fmt: skip


def test_generate_with_guidance(runs, tmp_path, cli):
    r = _generate(cli, runs, "guided", tmp_path / "w.png", "--guidance", "2.5")
    assert r.code == 0, r.err
    codes = torch.from_numpy(np.load(tmp_path / "w.npy").astype(np.int64))
    prior = aegen.load(runs / "guided")
    want = prior.sample(4, torch.Generator().manual_seed(1), label=2, guidance=2.5)
    assert torch.equal(codes, want)
    assert _generate(cli, runs, "guided", tmp_path / "p.png").code == 0
    assert not np.array_equal(np.load(tmp_path / "p.npy"), np.load(tmp_path / "w.npy"))
    images = sample_images(
        runs / "guided", runs / "vqvae", 4, torch.Generator().manual_seed(1), label=2,
        guidance=2.5,
    )  # fmt: skip
    vq = aegen.load(runs / "vqvae")
    assert torch.equal(images, vq.decode_indices(codes))


def test_a_run_from_before_label_dropout_loads_samples_and_refuses_guidance(runs, tmp_path, cli):
    assert "label_dropout" not in load_config(runs / "old")["model_config"]
    prior = aegen.load(runs / "old")
    assert prior.config.label_dropout == 0.0 and prior.cls.weight.shape[0] == C
    assert _generate(cli, runs, "old", tmp_path / "a.png").code == 0
    r = _generate(cli, runs, "old", tmp_path / "b.png", "--guidance", "2")
    assert_user_error(r, "label_dropout=0")
    assert not (tmp_path / "b.png").exists()
    # a pipeline finds the old prior's settings equal to today's defaults, not other ones
    old = tmp_path / "old"
    shutil.copytree(runs / "old", old)  # stage_state removes a run with no train state
    want = {**load_config(old), "model_config": to_dict(prior.config)}
    keys = ("model", "model_config", "codes")
    other = {**want, "model_config": {**want["model_config"], "label_dropout": 0.25}}
    with pytest.raises(UserError, match="model_config.label_dropout"):
        stage_state(old, other, keys, "prior")
    assert stage_state(old, want, keys, "prior") == "fresh"


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "strong", "1:", ":2", "1:-2", "1:2:3"])
def test_a_bad_guidance_is_one_error_line(runs, tmp_path, cli, bad):
    assert_user_error(_generate(cli, runs, "guided", tmp_path / "x.png", "--guidance", bad),
                      "--guidance")  # fmt: skip
    assert not (tmp_path / "x.png").exists()
    r = cli("pipeline", "vqvae", "--data", "synthetic", "--out", tmp_path / "p", "--guidance", bad)
    assert_user_error(r, "--guidance")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("more", [["--set", "prior.model.label_dropout=0"], ["--unconditional"]])
def test_pipeline_refuses_guidance_without_a_no_label_class_before_training(tmp_path, cli, more):
    """The pipeline's conditional prior has label dropout unless the user removes it."""
    args = ["pipeline", "vqvae", "--data", "synthetic", "--limit", "600", "--out", tmp_path / "p"]
    r = cli(*args, "--guidance", "2", *more)
    assert_user_error(r, "without labels" if "--unconditional" in more else "label_dropout=0")
    assert not (tmp_path / "p").exists()


def test_the_samples_record_holds_guidance_other_than_1(runs):
    def record(w):
        return samples_record(runs / "guided", runs / "vqvae", 4, 0, None, 1.0, None, w)

    assert "guidance" not in record(1.0)  # records from before guidance still match
    assert record(1.0) == samples_record(runs / "guided", runs / "vqvae", 4, 0, None, 1.0, None)
    assert record(2.0)["guidance"] == 2.0 and record(2.0) != record(1.0)
    assert record(2.0) != record(3.0)
    ramp = record((1.5, 3.5))
    assert ramp["guidance"] == [1.5, 3.5] and ramp != record(2.5)
    assert json.loads(json.dumps(ramp)) == ramp  # a record read back still matches


def test_generate_with_a_ramp(runs, tmp_path, cli):
    r = _generate(cli, runs, "guided", tmp_path / "r.png", "--guidance", "1:4")
    assert r.code == 0, r.err
    codes = torch.from_numpy(np.load(tmp_path / "r.npy").astype(np.int64))
    prior = aegen.load(runs / "guided")
    want = prior.sample(4, torch.Generator().manual_seed(1), label=2, guidance=(1.0, 4.0))
    assert torch.equal(codes, want)
    assert _generate(cli, runs, "guided", tmp_path / "f.png", "--guidance", "2:2").code == 0
    assert _generate(cli, runs, "guided", tmp_path / "c.png", "--guidance", "2").code == 0
    assert np.array_equal(np.load(tmp_path / "f.npy"), np.load(tmp_path / "c.npy"))
