"""Invariants every registered model must keep (one mixin-style suite for all of them).

The encode/decode/reconstruct invariants are for the autoencoders (the models that
reconstruct); a GAN only samples (tests/test_gan.py, tests/test_generative_contract.py)."""

import pytest
import torch

import aegen
from aegen.checkpoint import load, save_model, write_config
from aegen.config import to_dict
from aegen.data.loader import Batch, to_float
from aegen.models.abilities import Reconstructs
from aegen.registry import available, entry

MODELS = available("model")
AUTOENCODERS = [n for n in MODELS if issubclass(entry(n).cls, Reconstructs)]


def _batch(data, n=32):
    return Batch(to_float(data.train.x[:n]), data.train.y[:n])


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_shapes(name, small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model(name)
    b = _batch(small_synthetic, 8)
    z = model.encode(b.x)
    assert z.shape[0] == 8
    assert model.decode(z).shape == b.x.shape
    r = model.reconstruct(b.x)
    assert r.shape == b.x.shape and 0 <= r.min() and r.max() <= 1
    assert model.features(b.x).shape[0] == 8 and model.features(b.x).ndim == 2
    loss, logs = model.loss(b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_overfits_one_batch(name, small_synthetic):
    """Training on one batch drives its reconstruction error down at least tenfold
    within 400 steps (checked every 50: the test stops once it has)."""
    torch.manual_seed(0)
    model = aegen.build_model(name)
    b = _batch(small_synthetic, 16)

    @torch.no_grad()
    def recon_mse() -> float:
        model.eval()
        mse = (model.reconstruct(b.x) - b.x).pow(2).mean().item()
        model.train()
        return mse

    first = recon_mse()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    losses = []
    for step in range(1, 401):
        loss, _ = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 and recon_mse() < first / 10:
            break
    assert recon_mse() < first / 10, (first, recon_mse())
    assert sum(losses[-20:]) < sum(losses[:20])


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_save_load_round_trip(name, tmp_path, small_synthetic):
    torch.manual_seed(0)
    model = aegen.build_model(name).eval()
    write_config(tmp_path, {"model": name, "model_config": to_dict(model.config)})
    save_model(tmp_path / "model.safetensors", model)
    back = load(tmp_path)
    x = _batch(small_synthetic, 4).x
    assert type(back) is type(model)
    assert torch.equal(back.reconstruct(x), model.reconstruct(x))


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights(name):
    aegen.seed_everything(7)
    a = aegen.build_model(name)
    aegen.seed_everything(7)
    b = aegen.build_model(name)
    aegen.seed_everything(8)
    c = aegen.build_model(name)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", MODELS)
def test_registry_entry_is_consistent(name):
    e = entry(name)
    model = aegen.build_model(name)
    assert model.registry_name == name and isinstance(model.config, e.config_cls)
    assert isinstance(model.family, str)
