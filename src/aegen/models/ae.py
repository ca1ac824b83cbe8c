"""Deterministic autoencoders: the lecture's MLP AE and an all-convolutional AE.

Both can be denoising autoencoders (``noise="gaussian"`` or ``"dropout"``): the
input is corrupted during training only and the target stays the clean image.
The reconstruction loss is averaged over pixels and over the batch (``mse`` on
[0, 1] images, or ``bce`` on the decoder's logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import bounded, check
from ..data.loader import Batch
from ..nn import activation
from ..registry import register
from .base import Autoencoder, Logs

__all__ = ["AEConv", "AEConvConfig", "AEMLP", "AEMLPConfig", "corrupt", "recon_loss"]

Noise = Literal["none", "gaussian", "dropout"]
Activation = Literal["relu", "gelu", "silu", "tanh", "sigmoid"]


def corrupt(
    x: torch.Tensor, noise: str, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The denoising AE's input corruption.

    - ``gaussian``: x + level·N(0, 1), clipped back to [0, 1];
    - ``dropout``: each pixel is zeroed with probability ``level`` (masking noise,
      a dropout layer without the 1/(1-p) rescaling, so inputs stay images);
    - ``none``: x unchanged.
    """
    if noise == "none" or level == 0:
        return x
    if noise == "gaussian":
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return (x + level * eps).clamp_(0, 1)
    if noise == "dropout":
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
        return x * keep
    raise ValueError(f"unknown noise {noise!r}")


def recon_loss(kind: str, logits: torch.Tensor, output: torch.Tensor, target: torch.Tensor):
    """Mean over pixels and batch; ``logits`` for bce, ``output`` (after activation) for mse."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(output, target)


def _check_noise(cfg) -> None:
    check(
        cfg.noise != "dropout" or cfg.noise_level < 1,
        f"model.noise_level must be below 1 for dropout noise, got {cfg.noise_level}",
    )


# --------------------------------------------------------------------------- MLP


@dataclass
class AEMLPConfig:
    """The lecture's MNIST autoencoder: 784 → hidden … → code → … hidden → 784."""

    input_dim: int = bounded(784, ge=1)  # 784 for 28×28 images; 3 for the plane demo
    hidden: tuple[int, ...] = bounded((512, 256), ge=1)  # () : no hidden layer
    code_dim: int = bounded(32, ge=1)
    activation: Activation = "relu"
    linear: bool = False  # no non-linearity between layers (the PCA-equivalent AE)
    tied: bool = False  # decoder weights are the transposed encoder weights
    output: Literal["sigmoid", "linear"] = "sigmoid"
    recon_loss: Literal["mse", "bce"] = "bce"  # bce on logits: no sigmoid saturation trap
    sparsity: Literal["none", "l1", "kl"] = "none"  # penalty on the code's activations
    sparsity_weight: float = bounded(1e-3, ge=0)
    # ρ for the KL penalty (code units are sigmoids then)
    sparsity_target: float = bounded(0.05, gt=0, lt=1)
    noise: Noise = "none"
    noise_level: float = bounded(0.3, ge=0)

    def validate(self) -> None:
        _check_noise(self)
        check(
            self.recon_loss != "bce" or self.output == "sigmoid",
            "model.recon_loss=bce needs model.output=sigmoid",
        )


@register("ae-mlp", AEMLPConfig)
class AEMLP(Autoencoder):
    """Fully connected AE. Layer pair k (0 = outermost) is ``enc[k]``/decoder k.

    The pairs are what phased (greedy layer-wise) training trains one at a time,
    see :mod:`aegen.phased`.
    """

    def __init__(self, config: AEMLPConfig):
        super().__init__(config)
        c = config
        self.dims = [c.input_dim, *c.hidden, c.code_dim]
        pairs = range(len(self.dims) - 1)
        self.enc = nn.ModuleList(nn.Linear(self.dims[k], self.dims[k + 1]) for k in pairs)
        if c.tied:
            self.dec = None
            self.dec_bias = nn.ParameterList(nn.Parameter(torch.zeros(self.dims[k])) for k in pairs)
        else:
            self.dec = nn.ModuleList(nn.Linear(self.dims[k + 1], self.dims[k]) for k in pairs)
        self.act = nn.Identity() if c.linear else activation(c.activation)
        self.code_act = nn.Sigmoid() if c.sparsity == "kl" else nn.Identity()
        self.image = c.input_dim == 784

    @property
    def encoder(self) -> nn.Module:
        """The encoder's layers (what classifiers fine-tune)."""
        return self.enc

    @property
    def num_pairs(self) -> int:
        return len(self.enc)

    # layer-pair pieces, shared by the full model and by phased training
    def enc_layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        h = self.enc[k](h)
        return self.code_act(h) if k == self.num_pairs - 1 else self.act(h)

    def dec_layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Decoder of pair k, pre-activation for k = 0 (logits), activated for inner pairs."""
        if self.dec is None:
            h = F.linear(h, self.enc[k].weight.t(), self.dec_bias[k])
        else:
            h = self.dec[k](h)
        return h if k == 0 else self.act(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (B, 784)
        for k in range(self.num_pairs):
            h = self.enc_layer(k, h)
        return h  # (B, code_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for k in reversed(range(self.num_pairs)):
            h = self.dec_layer(k, h)
        return h.view(-1, 1, 28, 28) if self.image else h

    def output_act(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.config.output == "sigmoid" else logits

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.output_act(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self(x)
        return out.clamp(0, 1) if self.config.output == "sigmoid" else out

    def sparsity_penalty(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.sparsity == "l1":
            return c.sparsity_weight * z.abs().sum(1).mean()
        if c.sparsity == "kl":
            rho, rho_hat = c.sparsity_target, z.mean(0).clamp(1e-6, 1 - 1e-6)
            kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
            return c.sparsity_weight * kl.sum()
        return z.new_zeros(())

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        c = self.config
        x = batch.x
        inp = corrupt(x, c.noise, c.noise_level) if self.training else x
        z = self.encode(inp)
        logits = self.decode_logits(z)
        out = self.output_act(logits)
        recon = recon_loss(c.recon_loss, logits, out, x)
        logs: Logs = {"recon": recon.detach(), "mse": F.mse_loss(out.detach(), x)}
        if c.sparsity == "none":
            # not recon + 0: compiled (train.compile), a sum with a constant zero returned
            # beside recon.detach() came back without a gradient (torch 2.13)
            return recon, logs
        penalty = self.sparsity_penalty(z)
        logs["sparsity"] = penalty.detach()
        return recon + penalty, logs


# --------------------------------------------------------------------------- convolutional


@dataclass
class AEConvConfig:
    """All-convolutional AE: 28 → 14 → 7 by strided convolutions, then a 7×7 conv to the code."""

    channels: tuple[int, ...] = bounded((32, 64), ge=1, length=2)  # width at 14×14 and at 7×7
    code_dim: int = bounded(32, ge=1)
    activation: Activation = "relu"
    # a 3×3 convolution at 28×28 before the first downsampling and after the last upsampling;
    # without them the first and last layers are the strided ones (about half the time a step)
    full_res_layers: bool = True
    norm: Literal["none", "batch"] = "none"  # batch norm after every hidden convolution
    recon_loss: Literal["mse", "bce"] = "bce"  # bce on logits: no sigmoid saturation trap
    noise: Noise = "none"
    noise_level: float = bounded(0.3, ge=0)

    def validate(self) -> None:
        _check_noise(self)


@register("ae-conv", AEConvConfig)
class AEConv(Autoencoder):
    """Convolutions with stride and padding all the way: no fully connected layer."""

    # bf16 autocast + channels_last: faster than fp32 at the same test MSE; fused AdamW
    # faster in bf16 and on AVX2 in fp32 alike (measured: docs/performance.md); "auto"
    # is fp32 where the CPU has no bf16. Off: train.amp=off, train.channels_last=false,
    # train.fused=false.
    train_defaults = {"amp": "auto", "channels_last": True, "fused": True}

    def __init__(self, config: AEConvConfig):
        super().__init__(config)
        c1, c2 = config.channels
        act = config.activation

        def block(conv: nn.Module) -> list[nn.Module]:  # conv → (batch norm) → activation
            norm = [nn.BatchNorm2d(conv.out_channels)] if config.norm == "batch" else []
            return [conv, *norm, activation(act)]

        if config.full_res_layers:
            stem = [*block(nn.Conv2d(1, c1, 3, padding=1)), *block(nn.Conv2d(c1, c1, 4, 2, 1))]
            head = [*block(nn.ConvTranspose2d(c1, c1, 4, 2, 1)), nn.Conv2d(c1, 1, 3, padding=1)]
        else:
            stem = block(nn.Conv2d(1, c1, 4, stride=2, padding=1))
            head = [nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1)]
        self.encoder = nn.Sequential(
            *stem,  # (B, c1, 14, 14)
            *block(nn.Conv2d(c1, c2, 3, padding=1)),
            *block(nn.Conv2d(c2, c2, 4, stride=2, padding=1)),  # (B, c2, 7, 7)
            nn.Conv2d(c2, config.code_dim, 7),  # (B, code, 1, 1)
        )
        self.decoder = nn.Sequential(
            *block(nn.ConvTranspose2d(config.code_dim, c2, 7)),  # (B, c2, 7, 7)
            *block(nn.ConvTranspose2d(c2, c2, 4, stride=2, padding=1)),  # (B, c2, 14, 14)
            *block(nn.Conv2d(c2, c1, 3, padding=1)),
            *head,  # logits (B, 1, 28, 28)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)  # (B, code_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(z.shape[0], -1, 1, 1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        c = self.config
        x = batch.x
        inp = corrupt(x, c.noise, c.noise_level) if self.training else x
        logits = self.decode_logits(self.encode(inp))
        out = torch.sigmoid(logits)
        recon = recon_loss(c.recon_loss, logits, out, x)
        return recon, {"recon": recon.detach(), "mse": F.mse_loss(out.detach(), x)}
