"""The MaskGIT prior: its cosine masking in training, its unmasking schedule, seeded sampling.

Class-disjoint sampling is tested for every prior in tests/test_priors.py.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import aegen
from aegen.models.abilities import ScoresCodeLikelihood
from aegen.priors.maskgit import masked_after

K, H, W = 12, 5, 6


def _maskgit(**kw):
    torch.manual_seed(0)
    cfg = {"d_model": 32, "n_layers": 2, "n_heads": 4, "num_classes": 3, **kw}
    return aegen.build_model("maskgit", num_codes=K, height=H, width=W, **cfg).eval()


def test_masked_after_is_the_cosine_schedule():
    # ⌊49·cos(π/2 · s/8)⌋ for s = 1 … 8
    assert masked_after(49, 8) == [48, 45, 40, 34, 27, 18, 9, 0]
    assert masked_after(49, 1) == [0]
    assert masked_after(3, 8) == [2, 1, 0, 0, 0, 0, 0, 0]  # one fewer each step, then none
    for t in (1, 16, 30, 49):
        for steps in (1, 2, 4, 8, 16):
            c = masked_after(t, steps)
            assert len(c) == steps and c[-1] == 0
            assert all(b < a or b == 0 for a, b in zip([t, *c], c, strict=False)), (t, steps, c)


@pytest.mark.parametrize("steps", [1, 4, 8])
def test_unmasking_follows_the_schedule_and_keeps_what_it_fixed(steps):
    prior = _maskgit()
    trace = list(prior.unmasking(5, torch.Generator().manual_seed(0), label=1, steps=steps))
    assert len(trace) == steps
    masked = [(g == K).flatten(1).sum(1) for g in trace]  # (5,) per step
    for m, want in zip(masked, masked_after(H * W, steps), strict=True):
        assert m.tolist() == [want] * 5
    for a, b in zip(trace, trace[1:], strict=False):
        known = a != K
        assert torch.equal(b[known], a[known])  # a code, once kept, never changes
    final = trace[-1]
    assert final.shape == (5, H, W) and int(final.max()) < K and int(final.min()) >= 0
    again = prior.sample(5, generator=torch.Generator().manual_seed(0), label=1, steps=steps)
    assert torch.equal(again, final)


def test_sampling_is_seeded_and_uses_its_parameters():
    prior = _maskgit()

    def draw(seed, **kw):
        return prior.sample(6, generator=torch.Generator().manual_seed(seed), **kw)

    a = draw(3)
    assert torch.equal(a, draw(3)) and torch.equal(a, draw(3, use_cache=False))
    assert torch.equal(a, draw(3, steps=8))  # the config's default
    assert not torch.equal(a, draw(4))
    for kw in ({"steps": 4}, {"temperature": 0.5}, {"choice_temperature": 0.0}, {"top_k": 2}):
        assert not torch.equal(a, draw(3, **kw)), kw


def test_training_masks_by_the_cosine_schedule_and_scores_masked_codes_only():
    prior = _maskgit()
    g = torch.Generator().manual_seed(0)
    mask = prior.random_mask(4000, g)  # (n, T)
    u = torch.rand(4000, generator=torch.Generator().manual_seed(0))
    want = (torch.cos(0.5 * math.pi * u) * H * W).ceil().clamp(1, H * W)
    assert torch.equal(mask.sum(1).float(), want)
    # E cos(πu/2) = 2/π, and rounding up adds about half a position per grid
    assert mask.float().mean().item() == pytest.approx(2 / math.pi + 0.5 / (H * W), abs=0.01)
    # the eval-mode loss is the cross-entropy of the masked codes under a mask seeded 0
    codes = torch.randint(K, (8, H, W), generator=torch.Generator().manual_seed(1))
    y = torch.randint(3, (8,), generator=torch.Generator().manual_seed(2))
    loss, logs = prior.loss(aegen.Batch(codes, y))
    m = prior.random_mask(8, torch.Generator().manual_seed(0)).view(8, H, W)
    logits = prior(codes.masked_fill(m, K), y)
    want = F.cross_entropy(logits, codes, reduction="none")[m].mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert logs["masked_ce_bits"] == pytest.approx(want.item() / math.log(2), rel=1e-5)
    assert prior.masked_ce_bits(codes, y) == pytest.approx(float(logs["masked_ce_bits"]), rel=1e-5)


def test_label_dropout_trains_the_no_label_token():
    prior = _maskgit(label_dropout=0.5).train()
    codes = torch.randint(K, (16, H, W), generator=torch.Generator().manual_seed(1))
    y = torch.randint(3, (16,), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    prior.loss(aegen.Batch(codes, y))[0].backward()
    assert prior.cls.weight.grad[3].abs().sum() > 0  # row C = 3: "no label"
    plain = _maskgit().train()
    torch.manual_seed(0)
    plain.loss(aegen.Batch(codes, y))[0].backward()
    assert plain.cls.weight.grad[3].abs().sum() == 0


def test_it_claims_no_likelihood():
    assert not isinstance(_maskgit(), ScoresCodeLikelihood)
    assert isinstance(aegen.build_model("transformer", num_codes=K), ScoresCodeLikelihood)
