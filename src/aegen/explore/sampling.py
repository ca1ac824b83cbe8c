"""The prior page: an autoregressive prior drawing a code grid position by position, watched.

A :class:`SamplingSession` is ``Prior.sample`` for one image taken apart: the
same generator, the same order of random numbers (the class first when it is
drawn, then one uniform number per position), the same cache or prefix logits,
the same :func:`~aegen.priors.base.draw` — so stepping a session T times from a
seed gives exactly ``prior.sample(1, generator=seeded, ...)``. Between steps it
keeps the logits of the next position, which the page shows as the top
candidates with their probabilities after temperature and top-k.

"Resample from here" starts a session whose first t codes are given: they are fed
through the prior (filling its cache) without drawing, and drawing goes on from t.

Several tabs sample at once: each has its own session, found by an id the page
sends back; the oldest sessions are dropped beyond :data:`MAX_SESSIONS`.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import OrderedDict
from typing import Any

import torch

from ..priors.base import draw
from .pages import (
    Page,
    RequestError,
    field_float,
    field_int,
    field_int_list,
    field_optional_int,
    pixels,
)
from .vq import VQPage

__all__ = ["PriorPage", "SamplingSession"]

MAX_SESSIONS = 64
TOP_CANDIDATES = 8
MAX_SEED = 2**63 - 1
STATIC_RECORDINGS = 4


def candidate_probs(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """(K,) probabilities the next draw uses: softmax of logits / temperature, top-k kept."""
    z = logits.float() / temperature
    if top_k is not None and top_k < z.shape[0]:
        kth = z.topk(top_k).values[-1]
        z = z.masked_fill(z < kth, -math.inf)
    return z.softmax(0)


class SamplingSession:
    """One image drawn by ``prior`` in raster order, a step at a time (see the module docstring)."""

    def __init__(
        self,
        prior: torch.nn.Module,
        seed: int,
        label: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: list[int] | None = None,
    ):
        self.prior = prior
        self.temperature, self.top_k, self.seed = temperature, top_k, seed
        self.length = prior.length  # T
        self.generator = torch.Generator().manual_seed(seed)
        c = prior.config.num_classes
        if c == 0:
            self.y = None
        elif label is None:  # as Prior.sample: a uniformly random class, drawn first
            self.y = torch.randint(c, (1,), generator=self.generator)
        else:
            self.y = torch.tensor([label], dtype=torch.long)
        self.flat = torch.zeros(1, self.length, dtype=torch.long)  # (1, T)
        self.cache = prior.init_cache(1, self.y)
        self.t = 0
        self.lock = threading.Lock()
        prefix = prefix or []
        with torch.no_grad():
            for code in prefix:  # fed through the prior, nothing drawn
                self._logits()
                self.flat[0, self.t] = code
                self.t += 1
            self.next_logits = self._logits() if self.t < self.length else None

    @property
    def label(self) -> int | None:
        return None if self.y is None else int(self.y[0])

    @property
    def done(self) -> bool:
        return self.t >= self.length

    def _logits(self) -> torch.Tensor:
        """Logits (1, K) at position t; advances the cache past the code at t − 1."""
        t = self.t
        if self.cache is not None:
            logits, self.cache = self.prior.step(
                self.flat[:, t - 1] if t else None, self.y, t, self.cache
            )
            return logits
        return self.prior.prefix_logits(self.flat, self.y, t)

    @torch.no_grad()
    def step(self) -> int:
        """Draw the code at position t and move on; returns the code."""
        if self.done:
            raise RequestError("the grid is complete; restart or resample from an earlier position")
        code = draw(self.next_logits, self.generator, self.temperature, self.top_k)  # (1,)
        self.flat[0, self.t] = code[0]
        self.t += 1
        self.next_logits = self._logits() if self.t < self.length else None
        return int(code[0])

    def codes(self) -> list[int]:
        """The grid in raster order, −1 where nothing is drawn yet."""
        out = self.flat[0].tolist()
        return [c if i < self.t else -1 for i, c in enumerate(out)]

    def candidates(self, n: int = TOP_CANDIDATES) -> list[dict[str, Any]]:
        """The ``n`` most likely codes at position t and their probabilities (empty when done)."""
        if self.next_logits is None:
            return []
        p = candidate_probs(self.next_logits[0], self.temperature, self.top_k)
        top = p.topk(min(n, p.shape[0]))
        return [
            {"code": int(k), "p": float(v)}
            for k, v in zip(top.indices.tolist(), top.values.tolist(), strict=True)
            if v > 0
        ]


class PriorPage(Page):
    """A prior run paired with its VQ-VAE's page (the decoder and the background code)."""

    kind = "prior"

    def __init__(self, name: str, title: str, prior: torch.nn.Module, vq: VQPage):
        super().__init__(name, title)
        self.prior = prior.eval()
        self.vq = vq
        self.num_classes = int(prior.config.num_classes)
        self.sessions: OrderedDict[str, SamplingSession] = OrderedDict()
        self.sessions_lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        classes = self.vq.classes[: self.num_classes] if self.num_classes else []
        if len(classes) < self.num_classes:
            classes = [str(i) for i in range(self.num_classes)]
        return {
            **self.summary(),
            "vq": self.vq.name,
            "num_codes": self.vq.num_codes,
            "grid": list(self.vq.grid),
            "conditional": self.num_classes > 0,
            "classes": classes,
            "background": self.vq.background,
        }

    def picture(self, session: SamplingSession) -> torch.Tensor:
        """The decode of what is drawn so far, the rest filled with the background code."""
        flat = session.flat.clone()
        flat[0, session.t :] = self.vq.background
        return self.vq.decode_grids(flat.view(1, *self.vq.grid))[0]

    def state(self, sid: str, session: SamplingSession) -> dict[str, Any]:
        return {
            "session": sid,
            "t": session.t,
            "done": session.done,
            "label": session.label,
            "seed": session.seed,
            "codes": session.codes(),
            "candidates": session.candidates(),
            "image": pixels(self.picture(session)),
        }

    def new_session(self, body: dict[str, Any]) -> SamplingSession:
        k, length = self.vq.num_codes, self.prior.length
        if self.num_classes:
            label = field_optional_int(body, "label", 0, self.num_classes - 1)
        elif body.get("label") is not None:
            raise RequestError("this prior was trained without labels; send label null")
        else:
            label = None
        top_k = field_optional_int(body, "top_k", 1, k)
        prefix = (
            field_int_list(body, "prefix", (0, length - 1), 0, k - 1) if "prefix" in body else []
        )
        return SamplingSession(
            self.prior,
            seed=field_int(body, "seed", 0, MAX_SEED, default=0),
            label=label,
            temperature=field_float(body, "temperature", 0.05, 10.0, default=1.0),
            top_k=top_k,
            prefix=prefix,
        )

    def act_start(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self.new_session(body)
        sid = secrets.token_urlsafe(12)
        with self.sessions_lock:
            self.sessions[sid] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return self.state(sid, session)

    def act_step(self, body: dict[str, Any]) -> dict[str, Any]:
        sid = body.get("session")
        if not isinstance(sid, str) or len(sid) > 64:
            raise RequestError("session must be the id that start returned")
        with self.sessions_lock:
            session = self.sessions.get(sid)
            if session is not None:
                self.sessions.move_to_end(sid)
        if session is None:
            raise RequestError("unknown sampling session (it may have expired); start again", 404)
        steps = field_int(body, "steps", 1, self.prior.length, default=1)
        with session.lock:
            for _ in range(min(steps, session.length - session.t) or 1):
                session.step()
            return self.state(sid, session)

    # ------------------------------------------------------------------ export

    def recording(self, seed: int, label: int | None) -> dict[str, Any]:
        """Every state of one sampling run, t = 0 … T, for the exported page to replay."""
        session = SamplingSession(self.prior, seed=seed, label=label)
        states = [self.state("", session)]
        while not session.done:
            session.step()
            states.append(self.state("", session))
        return {"seed": seed, "label": session.label, "states": states}

    def static(self) -> dict[str, Any]:
        labels = [
            i % self.num_classes if self.num_classes else None for i in range(STATIC_RECORDINGS)
        ]
        return {
            **self.info(),
            "codebook": self.vq.act_codebook({})["images"],
            "recordings": [self.recording(seed, label) for seed, label in enumerate(labels)],
        }
