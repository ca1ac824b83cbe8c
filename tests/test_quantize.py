"""Vector quantization: the lecture's toy example, nearest codes, the straight-through gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from aegen.quantize import (
    FiniteScalarQuantizer,
    VectorQuantizer,
    code_usage,
    kmeans,
    nearest_code,
    rotate_to,
    squared_distances,
)


def test_lecture_toy_codebook():
    """e0 = (1,1), e1 = (3,1), e2 = (2,3); A → e0, B → e1, C → e2 (the lecture's table)."""
    e = torch.tensor([[1.0, 1.0], [3.0, 1.0], [2.0, 3.0]])
    z = torch.tensor([[0.8, 1.2], [2.9, 0.8], [2.1, 2.7]])  # A, B, C
    assert nearest_code(z, e).tolist() == [0, 1, 2]
    vq = VectorQuantizer(num_codes=3, dim=2, ema=False, kmeans_init=False).eval()
    vq.codebook.data.copy_(e)
    out = vq(z.T.reshape(1, 2, 1, 3))  # the three latents as a 1×3 grid, (B, D, H, W)
    assert out.indices.tolist() == [[[0, 1, 2]]]
    assert torch.equal(out.quantized[0, :, 0].T, e)  # z_q is exactly e0, e1, e2


def _brute(z, e):
    return ((z[:, None, :] - e[None, :, :]) ** 2).sum(-1).argmin(1)


@pytest.mark.parametrize("chunk", [7, 64, 100_000])
def test_nearest_code_matches_brute_force(chunk):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 16, generator=g, dtype=torch.float64)
    e = torch.randn(37, 16, generator=g, dtype=torch.float64)
    assert torch.equal(nearest_code(z, e, chunk_size=chunk), _brute(z, e))
    # leading dimensions are kept
    assert torch.equal(nearest_code(z.view(5, 10, 10, 16), e, chunk).flatten(), _brute(z, e))


def test_nearest_code_float32_picks_a_nearest_row():
    """In float32 near-ties may resolve differently, but the chosen distance is minimal."""
    g = torch.Generator().manual_seed(1)
    z, e = torch.randn(2000, 64, generator=g), torch.randn(256, 64, generator=g)
    idx = nearest_code(z, e, chunk_size=300)
    d = torch.cdist(z.double(), e.double()) ** 2
    chosen = d.gather(1, idx[:, None]).squeeze(1)
    assert torch.allclose(chosen, d.min(1).values, rtol=1e-5, atol=1e-5)
    assert (idx == d.argmin(1)).float().mean() > 0.999
    ref = torch.cdist(z.double(), e.double()) ** 2
    assert torch.allclose(squared_distances(z.double(), e.double()), ref, atol=1e-9)


@pytest.mark.parametrize("ema", [False, True])
def test_codebook_of_indices_equals_quantized(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=32, dim=8, ema=ema)
    z = torch.randn(4, 8, 5, 6)
    vq.train()
    vq(z)  # k-means initialisation and one update
    for mode in (vq.eval, vq.train):
        mode()
        before = vq.codebook.detach().clone()
        out = vq(z)
        assert out.indices.shape == (4, 5, 6)
        looked_up = before[out.indices].permute(0, 3, 1, 2)  # codebook[indices], (B, D, H, W)
        assert torch.equal(out.quantized, looked_up)
        assert torch.equal(out.indices, nearest_code(z.permute(0, 2, 3, 1), before))


def test_straight_through_passes_decoder_gradient_unchanged():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=16, dim=4, ema=False, kmeans_init=False).eval()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    upstream = torch.randn_like(out.quantized)  # what a decoder would send back
    (out.quantized * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)


def test_losses_and_their_gradients():
    """commitment = β·mean‖z − sg[e]‖² reaches only the encoder; the codebook loss only e."""
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, dim=3, beta=0.25, ema=False, kmeans_init=False).eval()
    z = torch.randn(2, 3, 2, 2, requires_grad=True)
    out = vq(z)
    e = vq.codebook[out.indices].permute(0, 3, 1, 2)
    mse = (z - e).pow(2).mean()
    assert torch.allclose(out.commitment_loss, mse) and torch.allclose(out.codebook_loss, mse)
    out.loss.backward()
    assert torch.allclose(z.grad, 0.25 * 2 * (z - e).detach() / z.numel())
    # codebook gradient: 2(e − z)/N summed over the vectors assigned to each code
    want = torch.zeros_like(vq.codebook).index_add_(
        0,
        out.indices.flatten(),
        (2 * (e - z) / z.numel()).detach().permute(0, 2, 3, 1).reshape(-1, 3),
    )
    assert torch.allclose(vq.codebook.grad, want)


def test_ema_moves_codes_to_the_mean_of_their_vectors():
    """With decay → 0 an EMA step puts each used code at the mean of its assigned vectors."""
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=4, dim=2, ema=True, decay=1e-6, eps=1e-12, kmeans_init=False)
    vq.restart_threshold = 0
    vq.codebook.data.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    z = torch.tensor([[1.0, 1.0], [-1.0, 0.0], [9.0, 1.0], [11.0, 0.0], [0.0, 12.0]])
    vq.train()
    out = vq(z.T.reshape(1, 2, 1, 5))
    assert out.indices.flatten().tolist() == [0, 0, 1, 1, 2]
    cb = vq.codebook.detach()
    assert torch.allclose(cb[0], torch.tensor([0.0, 0.5]), atol=1e-4)
    assert torch.allclose(cb[1], torch.tensor([10.0, 0.5]), atol=1e-4)
    assert torch.allclose(cb[2], torch.tensor([0.0, 12.0]), atol=1e-4)
    assert not vq.codebook.requires_grad  # the optimiser leaves an EMA codebook alone


def test_dead_codes_restart_on_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, dim=2, ema=False, kmeans_init=False, usage_decay=0.5)
    vq.codebook.data.copy_(torch.randn(8, 2))
    vq.codebook.data[5] = 1e3  # far from everything: never chosen
    z = torch.randn(1, 2, 8, 8)
    vq.train()
    for _ in range(12):
        vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    # code 5 now sits exactly on one of the encoder's vectors
    assert (flat == vq.codebook.detach()[5]).all(1).any()


def test_kmeans_init_uses_the_first_batch_and_happens_once():
    torch.manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    x = centres.repeat(100, 1) + 0.01 * torch.randn(300, 2)
    c, counts = kmeans(x, 3, iters=10)
    assert sorted(counts.tolist()) == [100, 100, 100]
    assert torch.cdist(c, centres).min(1).values.max() < 0.05
    vq = VectorQuantizer(num_codes=3, dim=2, ema=False, restart_threshold=0)
    vq.train()
    vq(x.T.reshape(1, 2, 1, 300))
    assert bool(vq.initialized)
    assert torch.cdist(vq.codebook.detach(), centres).min(1).values.max() < 0.05
    snapshot = vq.codebook.detach().clone()
    vq(x.T.reshape(1, 2, 1, 300) + 100)  # no second initialisation
    assert torch.equal(vq.codebook.detach(), snapshot)


def test_code_usage():
    assert code_usage(torch.tensor([0, 1, 2, 3]), 8) == pytest.approx((4.0, 4))
    assert code_usage(torch.tensor([5, 5, 5]), 8) == pytest.approx((1.0, 1))
    p, used = code_usage(torch.tensor([0, 0, 0, 1]), 4)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert p == pytest.approx(math.exp(h)) and used == 2


def test_ema_without_kmeans_keeps_unused_codes_where_they_were():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=16, dim=4, ema=True, kmeans_init=False, restart_threshold=0)
    start = vq.codebook.detach().clone()
    vq.train()
    for _ in range(5):
        out = vq(torch.randn(2, 4, 3, 3) + 5.0)  # far from the codes: few of them win
    unused = torch.ones(16, dtype=torch.bool)
    unused[out.indices.unique()] = False
    assert torch.isfinite(vq.codebook).all()
    assert torch.allclose(vq.codebook.detach()[unused], start[unused], atol=1e-4)


# --------------------------------------------------------------------------- options: cosine,
# the rotation trick, finite scalar quantization


def _rotation_matrix(e: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """λR for one pair of vectors, built as a matrix from its definition."""
    e_hat, q_hat = e / e.norm(), q / q.norm()
    r = (e_hat + q_hat) / (e_hat + q_hat).norm()
    eye = torch.eye(len(e), dtype=e.dtype)
    rot = eye - 2 * torch.outer(r, r) + 2 * torch.outer(q_hat, e_hat)
    return (q.norm() / e.norm()) * rot


def test_rotate_to_maps_e_onto_q_with_the_gradient_of_a_fixed_rotation():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(5, 6, generator=g, dtype=torch.float64)
    out = rotate_to(e, q)
    assert torch.allclose(out, q, atol=1e-12)  # the value is q
    upstream = torch.randn(5, 6, generator=g, dtype=torch.float64)
    (out * upstream).sum().backward()
    for i in range(5):
        m = _rotation_matrix(e[i].detach(), q[i])
        assert torch.allclose(m @ e[i].detach(), q[i], atol=1e-12)  # R is a rotation onto q
        assert torch.allclose(
            m.T @ m / (q[i].norm() / e[i].norm()) ** 2, torch.eye(6, dtype=m.dtype)
        )
        assert torch.allclose(e.grad[i], m.T @ upstream[i], atol=1e-12)
    # not the straight-through gradient: that would hand back the upstream gradient unchanged
    assert not torch.allclose(e.grad, upstream, atol=1e-3)


def test_rotation_trick_in_the_quantizer_keeps_values_and_changes_gradients():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 3, 3)
    grads = {}
    for trick in (False, True):
        vq = VectorQuantizer(
            num_codes=16, dim=4, ema=False, kmeans_init=False, rotation_trick=trick
        )
        vq.codebook.data.copy_(torch.randn(16, 4, generator=torch.Generator().manual_seed(1)))
        zz = z.clone().requires_grad_(True)
        out = vq.eval()(zz)
        assert torch.equal(out.quantized, vq.codebook.detach()[out.indices].permute(0, 3, 1, 2))
        upstream = torch.ones_like(out.quantized)
        (out.quantized * upstream).sum().backward()
        grads[trick] = zz.grad
    assert torch.equal(grads[False], torch.ones_like(z))  # straight-through
    assert not torch.allclose(grads[True], grads[False], atol=1e-3)


def test_cosine_codes_are_unit_and_ignore_the_vectors_length():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, dim=3, ema=True, cosine=True, restart_threshold=0)
    z = torch.randn(4, 3, 5, 5)
    vq.train()
    for _ in range(3):
        vq(z)  # k-means init, then EMA steps
    assert torch.allclose(vq.codebook.detach().norm(dim=1), torch.ones(8), atol=1e-5)
    vq.eval()
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    best_cos = (F.normalize(flat, dim=1) @ vq.codebook.detach().T).argmax(1)
    assert torch.equal(out.indices.flatten(), best_cos)
    scaled = z * torch.rand(4, 1, 5, 5) * 10  # lengths change, directions do not
    assert torch.equal(vq(scaled).indices, out.indices)
    # a learned (not EMA) cosine codebook is read normalised even if the optimiser moved it
    learned = VectorQuantizer(num_codes=8, dim=3, ema=False, kmeans_init=False, cosine=True)
    learned.codebook.data.mul_(7.0)
    assert torch.allclose(learned.codes().norm(dim=1), torch.ones(8), atol=1e-5)


def test_fsq_grid_indices_and_codes_agree():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(levels=(4, 5, 3), dim=6)
    assert fsq.num_codes == 60
    every = torch.arange(60)
    grid = fsq.grid_of(every)  # (60, 3), each dimension on its own levels in [−1, 1]
    assert grid.min() >= -1 and grid.max() <= 1
    assert len({tuple(row) for row in grid.tolist()}) == 60  # every index its own point
    assert torch.equal(fsq._to_index(grid), every)  # index ↔ point is a bijection
    z = torch.randn(8, 6, 7, 7) * 3
    out = fsq(z)
    assert out.indices.shape == (8, 7, 7)
    assert out.indices.min() >= 0 and out.indices.max() < 60
    assert torch.equal(out.quantized, fsq.lookup(out.indices))
    assert torch.equal(fsq.indices(z), out.indices)
    assert out.loss.item() == 0.0
    # many random vectors reach every grid point: nothing can die
    wide = fsq(torch.randn(64, 6, 7, 7) * 5)
    assert wide.codes_used == 60


def test_fsq_rounds_with_a_straight_through_gradient():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(levels=(5, 5), dim=4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    fsq(z).quantized.sum().backward()
    assert z.grad.abs().sum() > 0 and fsq.project_in.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 2"):
        FiniteScalarQuantizer(levels=(4, 1))
