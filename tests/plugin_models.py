"""Models that misbehave on purpose, registered through AEGEN_PLUGINS by tests that run the CLI."""

import atexit
import os
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from aegen.errors import UserError
from aegen.models.ae import AEMLP, AEMLPConfig
from aegen.registry import register


@dataclass
class FailingConfig(AEMLPConfig):
    fail_at_step: int = 3


@register("test-fails-on-rank1", FailingConfig)
class FailsOnRank1(AEMLP):
    def __init__(self, config):
        super().__init__(config)
        self.calls = 0

    def loss(self, batch):
        self.calls += 1
        if (
            dist.is_initialized()
            and dist.get_rank() == 1
            and self.calls == self.config.fail_at_step
        ):
            raise UserError("rank 1 found something wrong at its third step")
        return super().loss(batch)


@dataclass
class NaNConfig(AEMLPConfig):
    nan_at_call: int = 5


@register("test-nan-at-step", NaNConfig)
class NaNAtStep(AEMLP):
    """Its training loss becomes NaN on the n-th training call."""

    def __init__(self, config):
        super().__init__(config)
        self.calls = 0

    def loss(self, batch):
        loss, logs = super().loss(batch)
        if self.training:
            self.calls += 1
            if self.calls >= self.config.nan_at_call:
                loss = loss * float("nan")
        return loss, logs


if _marker := os.environ.get("AEGEN_TEST_FINALIZED"):  # test_distributed: which processes
    _who = os.environ.get("RANK", "launcher")  # ran the interpreter's finalization
    atexit.register(lambda: Path(f"{_marker}.{_who}").write_text("finalized"))
