"""The semi-supervised VAE (M2): its unlabeled bound, where its gradients go, sampling."""

from __future__ import annotations

import math

import pytest
import torch

import aegen
from aegen.data.loader import Batch
from aegen.models.m2 import M2, style_grid
from aegen.prob import log_normal_diag, log_std_normal

TINY = {"latent_dim": 3, "channels": (4, 8), "hidden": 16}


def _model(**kw) -> M2:
    torch.manual_seed(0)
    return aegen.build_model("m2", {**TINY, **kw})


def _x(n: int = 5) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_unlabeled_elbo_is_the_q_weighted_labeled_elbos_plus_the_entropy():
    model = _model().eval()
    x = _x()
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        elbo_u, q = model.unlabeled_elbo(x, eps)
        labeled = torch.stack(
            [model.labeled_elbo(x, torch.full((5,), c), eps)[0] for c in range(10)], dim=1
        )  # (B, K)
    entropy = -(q * q.log()).sum(-1)
    assert torch.allclose(q.sum(-1), torch.ones(5))
    assert torch.allclose(elbo_u, (q * labeled).sum(-1) + entropy, rtol=1e-5, atol=1e-3)
    assert (entropy > 0).all()  # the term is really there: an untrained q(y|x) is unsure


def test_labeled_elbo_matches_its_definition_with_the_primers_densities():
    """ELBO(x, y) = log p(x|y,z) + log p(y) − KL, and the closed-form KL is the expectation of
    log q(z|x,y) − log p(z) (checked by Monte Carlo with the primer's Gaussian log densities)."""
    model = _model().eval()
    x, y = _x(3), torch.tensor([0, 4, 9])
    eps = torch.zeros(3, 3)
    with torch.no_grad():
        elbo, log_px, kl = model.labeled_elbo(x, y, eps)
        mu, logvar = model.style_params(x)
        mu, logvar = mu[y, torch.arange(3)], logvar[y, torch.arange(3)]  # (B, D)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(20000, 3, 3)  # (S, B, D)
        mc = (log_normal_diag(z, mu, logvar) - log_std_normal(z)).mean(0)
    assert torch.allclose(elbo, log_px - math.log(10) - kl)
    assert torch.allclose(kl, mc, rtol=0.05, atol=0.05)


def _grads(model: M2, batch: Batch) -> tuple[list, list]:
    model.zero_grad()
    model.train()
    loss, _ = model.loss(batch)
    loss.backward()
    clf = [p.grad for p in model.classifier.parameters()]
    enc = [p.grad for p in model.encoder.parameters()]
    return clf, enc


def _moved(grads) -> bool:
    return any(g is not None and g.abs().sum() > 0 for g in grads)


def test_with_alpha_zero_labeled_terms_give_the_classifier_no_gradient():
    x, y = _x(6), torch.tensor([0, 1, 2, 3, 4, 5])
    clf, enc = _grads(_model(alpha=0.0), Batch(x, y))
    assert not _moved(clf)  # the labeled ELBO does not depend on q(y|x)
    assert _moved(enc)
    clf, _ = _grads(_model(alpha=1.0), Batch(x, y))
    assert _moved(clf)  # α > 0: the cross-entropy reaches it
    clf, _ = _grads(_model(alpha=0.0), Batch(x, torch.full((6,), -1)))
    assert _moved(clf)  # unlabeled images train q(y|x) through the marginal bound


def test_loss_is_the_sum_of_its_parts():
    model = _model(alpha=3.0, unlabeled_weight=0.5)
    x, y = _x(6), torch.tensor([2, 7, -1, -1, 0, -1])
    torch.manual_seed(5)
    loss, logs = model.eval().loss(Batch(x, y))
    want = logs["nelbo_labeled"] + 3.0 * logs["ce"] + 0.5 * logs["nelbo_unlabeled"]
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_sampling_a_label_and_the_style_grid():
    model = _model().eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = model.sample(4, g(), label=7)
    b = model.sample(4, g(), label=2)
    assert a.shape == (4, 1, 28, 28) and not torch.equal(a, b)
    # same seed and label: the same styles, so the same images
    assert torch.equal(a, model.sample(4, g(), label=7))
    grid = style_grid(model, 3, generator=g())  # rows: styles, columns: classes
    assert grid.shape == (30, 1, 28, 28)
    z = torch.randn(3, 3, generator=g())
    row1 = torch.cat([z[1].expand(10, 3), torch.eye(10)], dim=1)
    assert torch.allclose(grid[10:20], model.decode(row1))
    with pytest.raises(ValueError, match="label"):
        model.sample(2, g(), label=10)


def test_cli_samples_a_class_from_an_m2_run(cli, tmp_path):
    from aegen.checkpoint import save_model, write_config
    from aegen.config import to_dict

    model = _model()
    write_config(tmp_path, {"model": "m2", "model_config": to_dict(model.config)})
    save_model(tmp_path / "model.safetensors", model)
    r = cli("sample", tmp_path, "--label", "3", "--n", "8", "--out", tmp_path / "s.png")
    assert r.code == 0, r.err
    r = cli("sample", tmp_path, "--every-class", "--n", "20", "--out", tmp_path / "g.png")
    assert r.code == 0, r.err
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "g.png").stat().st_size > 0
    r = cli("sample", tmp_path, "--label", "10", "--out", tmp_path / "bad.png")
    assert r.code == 2 and r.err.startswith("error:") and "--label" in r.err
    assert not (tmp_path / "bad.png").exists()
