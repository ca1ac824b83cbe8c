"""VQ-VAE: a convolutional encoder to a 7×7 grid of D-vectors, a K×D codebook, a decoder.

The lecture's model with its defaults (K = 256 codes of D = 64, a 7×7 grid for
28×28 images)::

    x (B,1,28,28) → encoder → z_e (B,D,7,7) → nearest code → z_q (B,D,7,7) → decoder → x̂
                                              indices (B,7,7) in [0, K)

The loss is the reconstruction loss (mean over pixels and batch) plus the
quantizer's loss (β·commitment, and the codebook term unless the codebook is
learned by EMA); see :class:`aegen.quantize.VectorQuantizer`. The model has no
``sample``: new images come from a prior over its index grids
(:mod:`aegen.priors`, :mod:`aegen.pipelines.vq_prior`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..data.loader import Batch
from ..errors import DataError
from ..nn import ResidualBlock
from ..quantize import VectorQuantizer
from ..registry import register
from .base import Autoencoder, Logs

__all__ = ["VQVAE", "VQVAEConfig", "check_indices"]

GRID = (7, 7)  # 28 → 14 → 7 by two stride-2 convolutions


def check_indices(
    indices: torch.Tensor, num_codes: int, grid: tuple[int, int], where: str = "codes"
):
    """Refuse index grids that are not (N, H, W) integers in [0, K) with one clear line."""
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise DataError(f"{where}: codes must be integers, got {indices.dtype}")
    if indices.dim() != 3 or tuple(indices.shape[1:]) != tuple(grid):
        raise DataError(
            f"{where}: code grids must be (N, {grid[0]}, {grid[1]}), got {tuple(indices.shape)}"
        )
    if indices.numel():
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= num_codes:
            bad = hi if hi >= num_codes else lo
            raise DataError(
                f"{where}: code {bad} is outside the codebook (valid codes are 0..{num_codes - 1})"
            )


@dataclass
class VQVAEConfig:
    """Sizes of the VQ-VAE and its quantizer (lecture defaults: K = 256, D = 64, 7×7 grid)."""

    num_codes: int = 256  # K
    code_dim: int = 64  # D
    hidden: int = 64  # channels at 7×7 (half as many at 14×14)
    res_blocks: int = 2  # residual blocks at 7×7, in the encoder and in the decoder
    res_hidden: int = 32
    beta: float = 0.25  # commitment weight
    ema: bool = True  # codebook by exponential moving averages instead of the codebook loss
    decay: float = 0.99  # EMA decay (codebook and code usage)
    kmeans_init: bool = True  # initialise the codebook by k-means on the first batch
    restart_threshold: float = 0.05  # restart codes used less than this × the mean; 0: off
    # mse: a linear output (the paper's Gaussian decoder), clamped to [0, 1] for images;
    # bce: the output is logits. (MSE after a sigmoid saturates and can stall for good.)
    recon_loss: Literal["mse", "bce"] = "mse"

    def validate(self) -> None:
        check(self.num_codes >= 2, f"model.num_codes must be at least 2, got {self.num_codes}")
        check(
            self.num_codes <= 65535,
            f"model.num_codes must be at most 65535 (codes are stored as uint16), got {self.num_codes}",
        )
        check(self.code_dim >= 1, f"model.code_dim must be at least 1, got {self.code_dim}")
        check(
            self.hidden >= 2 and self.hidden % 2 == 0,
            f"model.hidden must be an even number >= 2, got {self.hidden}",
        )
        check(self.res_blocks >= 0, f"model.res_blocks must be >= 0, got {self.res_blocks}")
        check(self.res_hidden >= 1, f"model.res_hidden must be at least 1, got {self.res_hidden}")
        check(self.beta >= 0, f"model.beta must be >= 0, got {self.beta}")
        check(0 < self.decay < 1, f"model.decay must be in (0, 1), got {self.decay}")
        check(
            self.restart_threshold >= 0,
            f"model.restart_threshold must be >= 0, got {self.restart_threshold}",
        )


@register("vqvae", VQVAEConfig)
class VQVAE(Autoencoder):
    """Encoder 28→14→7 with residual blocks, vector quantizer, mirror-image decoder."""

    family = "vqvae"
    # bf16 autocast + channels_last: faster on CPUs with bf16, and the test MSE of a full
    # Fashion-MNIST run stayed within 2 % of fp32 (+1.5 %, docs/vqvae.md); "auto" is fp32
    # where the CPU has no bf16.
    train_defaults = {
        "epochs": 3,
        "batch_size": 128,
        "lr": 2e-3,
        "amp": "auto",
        "channels_last": True,
    }

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        h, h2 = c.hidden, c.hidden // 2
        self.grid = GRID
        self.encoder = nn.Sequential(
            nn.Conv2d(1, h2, 4, stride=2, padding=1), nn.ReLU(),  # (B, h/2, 14, 14)
            nn.Conv2d(h2, h, 4, stride=2, padding=1), nn.ReLU(),  # (B, h, 7, 7)
            nn.Conv2d(h, h, 3, padding=1),
            *[ResidualBlock(h, c.res_hidden) for _ in range(c.res_blocks)],
            nn.ReLU(),
            nn.Conv2d(h, c.code_dim, 1),  # (B, D, 7, 7)
        )  # fmt: skip
        self.quantizer = VectorQuantizer(
            c.num_codes,
            c.code_dim,
            beta=c.beta,
            ema=c.ema,
            decay=c.decay,
            kmeans_init=c.kmeans_init,
            restart_threshold=c.restart_threshold,
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(c.code_dim, h, 3, padding=1),  # (B, h, 7, 7)
            *[ResidualBlock(h, c.res_hidden) for _ in range(c.res_blocks)],
            nn.ReLU(),
            nn.ConvTranspose2d(h, h2, 4, stride=2, padding=1), nn.ReLU(),  # (B, h/2, 14, 14)
            nn.ConvTranspose2d(h2, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )  # fmt: skip

    # ------------------------------------------------------------------ the lecture's pieces

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) codebook."""
        return self.quantizer.codebook

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output before quantization, z_e: (B, D, 7, 7)."""
        return self.encoder(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Quantized latents z_q (B, D, 7, 7); gradients pass straight through to the encoder."""
        return self.quantizer(self.encoder(x)).quantized

    def decode_logits(self, zq: torch.Tensor) -> torch.Tensor:
        """The decoder's output (B, 1, 28, 28) before it becomes an image: logits for bce,
        the Gaussian mean (unclamped) for mse."""
        return self.decoder(zq)

    def output_act(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder output → image in [0, 1]: clamped (mse) or through a sigmoid (bce logits)."""
        if self.config.recon_loss == "bce":
            return torch.sigmoid(out)
        return out.clamp(0, 1)

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from a (B, D, 7, 7) latent map."""
        return self.output_act(self.decode_logits(zq))

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices (B, 7, 7) long of images ``x`` (B, 1, 28, 28) in [0, 1]."""
        return self.quantizer.indices(self.encoder(x))

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] from code grids (B, 7, 7): decoder(codebook[indices]).

        Codes outside [0, K) or grids of another shape are refused with a DataError.
        """
        check_indices(indices, self.num_codes, self.grid, "decode_indices")
        return self.decode(self.quantizer.lookup(indices.long()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D·7·7): the encoder's continuous output, flattened (differentiable)."""
        return self.encoder(x).flatten(1)

    # ------------------------------------------------------------------ training

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        x = batch.x
        q = self.quantizer(self.encoder(x))
        out = self.decode_logits(q.quantized).float()  # (B, 1, 28, 28)
        if self.config.recon_loss == "bce":
            recon = F.binary_cross_entropy_with_logits(out, x)
        else:
            recon = F.mse_loss(out, x)
        logs: Logs = {
            "recon": recon.detach(),
            "mse": F.mse_loss(self.output_act(out.detach()), x),
            "commitment": q.commitment_loss,
            "perplexity": q.perplexity,
            "codes_used": float(q.codes_used),
        }
        if not self.config.ema:
            logs["codebook"] = q.codebook_loss
        return recon + q.loss, logs
