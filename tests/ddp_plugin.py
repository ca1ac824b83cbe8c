"""A model for the distributed tests: it fails with a user error on rank 1 only."""

from dataclasses import dataclass

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
