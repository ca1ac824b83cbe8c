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

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..data.codes import check_indices
from ..data.loader import Batch
from ..nn import ResidualBlock
from ..quantize import FiniteScalarQuantizer, VectorQuantizer
from ..registry import register
from .base import Autoencoder, Logs

__all__ = ["VQVAE", "VQVAEConfig", "check_indices"]

GRID = (7, 7)  # 28 → 14 → 7 by two stride-2 convolutions


@dataclass
class VQVAEConfig:
    """Sizes of the VQ-VAE and its quantizer (lecture defaults: K = 256, D = 64, 7×7 grid)."""

    num_codes: int = bounded(256, ge=2, le=65535, note=" (codes are stored as uint16)")  # K
    codebook_dim: int = bounded(64, ge=1)  # D, the size of each code vector
    channels: tuple[int, ...] = bounded((32, 64), ge=1, length=2)  # width at 14×14 and at 7×7
    res_blocks: int = bounded(2, ge=0)  # residual blocks at 7×7, in the encoder and the decoder
    res_dim: int = bounded(32, ge=1)  # channels inside a residual block
    beta: float = bounded(0.25, ge=0)  # commitment weight
    ema: bool = True  # codebook by exponential moving averages instead of the codebook loss
    decay: float = bounded(0.99, gt=0, lt=1)  # EMA decay (codebook and code usage)
    kmeans_init: bool = True  # initialise the codebook by k-means on the first batch
    # restart codes used less than this × the mean; 0: off
    restart_threshold: float = bounded(0.05, ge=0)
    # bce: the output is logits (the default: on full Fashion-MNIST, 3 epochs, fp32, the test
    # reconstructions scored FID 78 and recall 0.44 against MSE's 154 and 0.17, at the same
    # speed and with a higher PSNR, docs/vqvae.md); mse: a linear output (the paper's
    # Gaussian decoder), clamped to [0, 1]. (MSE after a sigmoid saturates and can stall.)
    recon_loss: Literal["mse", "bce"] = "bce"
    # vq: the lecture's nearest-code quantizer; fsq: finite scalar quantization, a fixed
    # grid of prod(fsq_levels) codes (must equal num_codes) with nothing to collapse
    quantizer: Literal["vq", "fsq"] = "vq"
    fsq_levels: tuple[int, ...] = bounded((4, 4, 4, 4), ge=2, min_length=1)
    cosine: bool = False  # vq only: codes compared by direction (unit vectors)
    rotation_trick: bool = False  # vq only: the rotation trick instead of straight-through

    # names before the one config vocabulary (docs/architecture.md): code_dim meant the
    # code vectors' size here and the whole code's size in the AEs; hidden was one width
    # (half of it at 14×14) where the other conv models take channels per resolution
    renamed: ClassVar[dict[str, Any]] = {
        "code_dim": "codebook_dim",
        "hidden": ("channels", lambda h: [int(h) // 2, int(h)]),  # JSON-like, as read
        "res_hidden": "res_dim",
    }

    def validate(self) -> None:
        if self.quantizer == "fsq":
            k = math.prod(self.fsq_levels)
            check(
                k == self.num_codes,
                f"model.fsq_levels {tuple(self.fsq_levels)} make {k} codes but model.num_codes "
                f"is {self.num_codes}; set model.num_codes={k}",
            )
            check(
                not (self.cosine or self.rotation_trick),
                "model.cosine and model.rotation_trick apply to model.quantizer=vq only",
            )


@register("vqvae", VQVAEConfig)
class VQVAE(Autoencoder):
    """Encoder 28→14→7 with residual blocks, vector quantizer, mirror-image decoder."""

    family = "vqvae"
    # bf16 autocast + channels_last: faster on CPUs with bf16, and the test MSE of a full
    # Fashion-MNIST run stayed as good as fp32's (measured: docs/vqvae.md); "auto" is fp32
    # where the CPU has no bf16. 8 epochs: the decoder caps every prior's samples, and on full
    # Fashion-MNIST (fp32, AVX2) 8 epochs took 6.3 min and scored its test reconstructions
    # FID 37 / recall 0.69 against 3 epochs' 78 / 0.44 (docs/vqvae.md).
    train_defaults = {
        "epochs": 8,
        "batch_size": 128,
        "lr": 2e-3,
        "amp": "auto",
        "channels_last": True,
    }

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c = config
        c1, c2 = c.channels
        self.grid = GRID
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),  # (B, c2, 7, 7)
            nn.Conv2d(c2, c2, 3, padding=1),
            *[ResidualBlock(c2, c.res_dim) for _ in range(c.res_blocks)],
            nn.ReLU(),
            nn.Conv2d(c2, c.codebook_dim, 1),  # (B, D, 7, 7)
        )  # fmt: skip
        if c.quantizer == "fsq":
            self.quantizer = FiniteScalarQuantizer(c.fsq_levels, c.codebook_dim)
        else:
            self.quantizer = VectorQuantizer(
                c.num_codes,
                c.codebook_dim,
                beta=c.beta,
                ema=c.ema,
                decay=c.decay,
                kmeans_init=c.kmeans_init,
                restart_threshold=c.restart_threshold,
                cosine=c.cosine,
                rotation_trick=c.rotation_trick,
            )
        self.decoder = nn.Sequential(
            nn.Conv2d(c.codebook_dim, c2, 3, padding=1),  # (B, c2, 7, 7)
            *[ResidualBlock(c2, c.res_dim) for _ in range(c.res_blocks)],
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )  # fmt: skip

    # ------------------------------------------------------------------ the lecture's pieces

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) code vectors the decoder sees (FSQ: the projected grid points)."""
        return self.quantizer.codes()

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
