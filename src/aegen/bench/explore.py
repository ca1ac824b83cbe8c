"""How live ``aegen explore`` feels: one decode (and one prior step) answered over HTTP.

Each case times the request a hovering mouse makes — a JSON POST on a kept-alive
connection to a server on 127.0.0.1, answered with the decoded picture — for
models of the default sizes (``ae-conv``, ``vae-mlp``, ``vqvae`` with K = 256,
the transformer prior; weights untrained: the speed does not depend on them).
The value is the median latency in milliseconds, the budget 50 ms (hovering
stops feeling live beyond it); the baseline is the same decode called in-process
without HTTP, so the ratio is what the server adds.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Callable

import torch

from ..explore.latent import LatentPage
from ..explore.sampling import PriorPage
from ..explore.server import make_server, start_in_thread
from ..explore.vq import VQPage
from ..registry import build_model
from .core import Case

__all__ = ["BUDGET_MS", "latency_cases"]

BUDGET_MS = 50.0


def _test_images(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8), torch.arange(n) % 10


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls, after two warm-up calls."""
    fn()
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


def latency_cases(repeats: int = 50) -> list[Case]:
    """``explore/decode_<model>`` for three models and ``explore/prior_step_transformer``."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as `aegen explore` serves (see commands/explore.py)
        return _latency_cases(repeats)
    finally:
        torch.set_num_threads(threads)


def _latency_cases(repeats: int) -> list[Case]:
    torch.manual_seed(0)
    x, y = _test_images()
    classes = [str(i) for i in range(10)]
    ae = LatentPage("ae-conv", "ae-conv", build_model("ae-conv"), x, y, classes)
    vae = LatentPage("vae-mlp", "vae-mlp", build_model("vae-mlp"), x, y, classes)
    vq = VQPage("vqvae", "vqvae", build_model("vqvae"), x, y, classes)
    prior = PriorPage("prior", "prior", build_model("transformer", num_classes=10), vq)
    server = make_server([ae, vae, vq, prior], "127.0.0.1", 0)
    start_in_thread(server, stop_after=600)
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)

    def post(run: str, action: str, body: dict) -> dict:
        conn.request(
            "POST", f"/api/{run}/{action}", json.dumps(body), {"Content-Type": "application/json"}
        )
        res = conn.getresponse()
        answer = json.loads(res.read())
        if res.status != 200:
            raise RuntimeError(f"{run}/{action}: {answer}")
        return answer

    cases = []
    try:
        requests: list[tuple[str, str, Callable[[int], dict], Callable[[], object]]] = [
            (
                name,
                "decode",
                lambda i, p=page: {"z": (p.center + 0.01 * i).tolist()},
                lambda p=page: p.decode(p.center[None]),
            )
            for name, page in (("ae-conv", ae), ("vae-mlp", vae))
        ]
        requests.append(
            (
                "vqvae",
                "decode",
                lambda i: {"codes": ((vq.codes[0].flatten() + i) % vq.num_codes).tolist()},
                lambda: vq.decode_grids(vq.codes[:1]),
            )
        )
        for name, action, body, bare in requests:
            counter = iter(range(10**9))
            http_ms = _timed(
                lambda n=name, a=action, b=body, c=counter: post(n, a, b(next(c))), repeats
            )
            bare_ms = _timed(bare, repeats)
            cases.append(_case(f"explore/decode_{name}", http_ms, bare_ms))
        session = post("prior", "start", {"seed": 0, "label": 1})["session"]

        def step() -> None:
            nonlocal session
            if post("prior", "step", {"session": session})["done"]:
                session = post("prior", "start", {"seed": 0, "label": 1})["session"]

        step_ms = _timed(step, min(repeats, 48))
        cases.append(_case("explore/prior_step_transformer", step_ms, None))
    finally:
        conn.close()
        server.shutdown()
        server.server_close()
    return cases


def _case(name: str, ms: list[float], bare_ms: list[float] | None) -> Case:
    median = statistics.median(ms)
    extra = {
        "budget_ms": BUDGET_MS,
        "within_budget": median <= BUDGET_MS,
        "p90_ms": statistics.quantiles(ms, n=10)[-1] if len(ms) >= 10 else max(ms),
        "requests": len(ms),
        "torch_threads": torch.get_num_threads(),  # 1, as the server runs
        "note": "median of one-image requests over HTTP on 127.0.0.1, kept-alive connection",
    }
    if bare_ms is not None:
        extra["baseline"] = "the same decode in-process, no HTTP"
    return Case(name, median, "ms", statistics.median(bare_ms) if bare_ms else None, extra=extra)
