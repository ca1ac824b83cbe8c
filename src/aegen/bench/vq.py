"""The VQ pipeline's hot paths: VQ-VAE training in fp32 and bf16, encoding images to
code grids, and prior sampling with and without the key/value (or hidden-state) cache."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..config import parse_override
from ..data.loader import Batch
from ..pipelines.vq_prior import PIPELINE_PRIOR_RECIPE
from ..registry import available, build_model
from ..train import autocast
from .core import Case


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Least seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def train_speed(
    x: torch.Tensor, steps: int, amp: str, channels_last: bool, repeats: int = 2
) -> float:
    """images/s of a bare VQ-VAE training loop on the float batch ``x`` (B, 1, 28, 28)."""
    torch.manual_seed(0)
    model = build_model("vqvae").train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    y = torch.zeros(x.shape[0], dtype=torch.long)

    def run() -> None:
        for _ in range(steps):
            with autocast(amp):
                loss, _ = model.loss(Batch(x, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return steps * x.shape[0] / best_of(run, repeats)


def encode_speed(x: torch.Tensor, repeats: int = 3) -> float:
    """images/s of ``encode_indices`` (what ``aegen encode`` does), eval mode, fp32."""
    model = build_model("vqvae").eval()
    with torch.no_grad():
        return x.shape[0] / best_of(lambda: model.encode_indices(x), repeats)


def sample_speed(name: str, n: int, use_cache: bool, repeats: int = 2, **model: object) -> float:
    """Code grids per second drawn by prior ``name`` (its default config with the ``model``
    settings, class-conditional)."""
    torch.manual_seed(0)
    prior = build_model(name, num_classes=10, **model).eval()
    g = torch.Generator()
    return n / best_of(
        lambda: prior.sample(n, generator=g.manual_seed(0), use_cache=use_cache), repeats
    )


def pipeline_model(prior: str) -> dict[str, str]:
    """The model settings ``aegen pipeline vqvae`` gives ``prior`` beyond its defaults
    (its ``PIPELINE_PRIOR_RECIPE``; the transformer's: 2 blocks), as ``build_model`` takes
    them."""
    sets, _ = PIPELINE_PRIOR_RECIPE.get(prior, ((), None))
    pairs = (parse_override(t) for t in sets)
    return {key.removeprefix("model."): v for key, v in pairs if key.startswith("model.")}


def sampling_cases(n: int) -> list[Case]:
    """Each prior's sampling speed; ratio = cached / uncached (PixelCNN has no cache), and
    for MaskGIT (8 parallel steps, its default) against the KV-cached transformer, both
    as ``aegen pipeline vqvae`` builds them (where they are compared), at ``n`` grids per
    call and at one (where a few steps beat 49 sequential ones most)."""
    cases = []
    for name in available("prior"):
        if name == "maskgit":
            own, ar = pipeline_model(name), pipeline_model("transformer")
            extra = {
                "baseline": "the pipeline's transformer prior with its KV cache",
                "model": own,
                "baseline_model": ar,
            }
            cases.append(
                Case(
                    f"sample/{name}_8_steps",
                    sample_speed(name, n, True, **own),
                    "grids/s",
                    sample_speed("transformer", n, True, **ar),
                    extra={**extra, "n": n},
                )
            )
            cases.append(
                Case(
                    f"sample/{name}_8_steps_one_grid",
                    sample_speed(name, 1, True, repeats=5, **own),
                    "grids/s",
                    sample_speed("transformer", 1, True, repeats=5, **ar),
                    extra={**extra, "n": 1},
                )
            )
        elif name == "pixelcnn":
            cases.append(
                Case(
                    f"sample/{name}",
                    sample_speed(name, n, True),
                    "grids/s",
                    extra={"cache": "none (masked convolutions)"},
                )
            )
        else:
            cases.append(
                Case(
                    f"sample/{name}_kv_cache",
                    sample_speed(name, n, True),
                    "grids/s",
                    sample_speed(name, n, False),
                    extra={"baseline": "the same sampler without its cache", "n": n},
                )
            )
    return cases
