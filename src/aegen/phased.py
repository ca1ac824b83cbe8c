"""Phased (greedy layer-wise) training of the MLP autoencoder.

Phase 1 trains the outermost encoder/decoder pair to reconstruct the image
through a one-layer code; phase k freezes pairs 1…k-1 and trains pair k to
reconstruct the (frozen) codes of pair k-1 — the stacked-autoencoder recipe of
Hinton & Salakhutdinov (2006) and the lecture's "phased training" slide. An
optional final phase fine-tunes every layer end to end on the image loss.

Each phase is an ordinary :class:`~aegen.train.Trainer` run over the pair's
parameters with a pair loss, tagged ``phase1``, ``phase2``, … ``finetune`` in
``metrics.csv`` and in the checkpoint, so ``--resume`` continues inside the
phase that was interrupted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import MODEL, TRAIN_STATE, load_state_dict, read_train_state
from .config import TrainConfig
from .data.datasets import Dataset
from .data.loader import Batch
from .errors import UserError
from .models.ae import AEMLP, corrupt, recon_loss
from .train import FitResult, Trainer

__all__ = ["PairLoss", "check_phased", "fit_phased", "phase_names"]


def check_phased(model: torch.nn.Module) -> None:
    if not isinstance(model, AEMLP):
        raise UserError(f"phased training is defined for ae-mlp, not {model.registry_name}")
    if model.config.tied:
        raise UserError("phased training needs untied weights (model.tied=false)")


class PairLoss:
    """Loss of layer pair ``k`` of an :class:`AEMLP`, the outer pairs frozen.

    Pair 0 alone (image → first hidden layer → image) reconstructs the image with
    the model's own loss, denoising included; pair k > 0 reconstructs the
    activations of the hidden layer before it (MSE). In eval mode
    the logs add the whole model's image MSE, so every phase's progress is
    comparable.
    """

    def __init__(self, model: AEMLP, k: int):
        self.model, self.k = model, k

    def parameters(self) -> list[torch.nn.Parameter]:
        m, k = self.model, self.k
        return [*m.enc[k].parameters(), *m.dec[k].parameters()]

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        m, k = self.model, self.k
        with torch.no_grad():
            h = batch.x.flatten(1)
            for j in range(k):
                h = m.enc_layer(j, h)  # (B, dims[k]): the frozen outer pairs' code
        # Denoising corrupts the image only (phase 1): hidden codes are not images.
        inp = corrupt(h, m.config.noise, m.config.noise_level) if m.training and k == 0 else h
        out = m.dec_layer(k, m.enc_layer(k, inp))  # pair k alone: dims[k] → dims[k+1] → dims[k]
        if k == 0:
            logits = out.view_as(batch.x)
            loss = recon_loss(m.config.recon_loss, logits, m.output_act(logits), batch.x)
        else:
            loss = F.mse_loss(out, h)
        logs = {"recon": loss.detach()}
        if not m.training:
            logs["mse"] = F.mse_loss(m(batch.x), batch.x)
        return loss, logs


def phase_names(model: AEMLP, finetune_epochs: int) -> list[str]:
    return [f"phase{k + 1}" for k in range(model.num_pairs)] + (
        ["finetune"] if finetune_epochs else []
    )


def fit_phased(
    model: AEMLP,
    data: Dataset,
    cfg: TrainConfig,
    out_dir: str | Path | None,
    resume: bool = False,
    progress: bool = True,
    finetune_epochs: int = 0,
) -> FitResult:
    """Train ``model`` pair by pair (``cfg.epochs`` each), then fine-tune ``finetune_epochs``."""
    check_phased(model)
    names = phase_names(model, finetune_epochs)
    start, resume_current = 0, False
    if resume and out_dir is not None and (Path(out_dir) / TRAIN_STATE).exists():
        state = read_train_state(out_dir)
        if state.get("tag") not in names:
            raise UserError(
                f"{out_dir}: checkpoint phase {state.get('tag')!r} is not one of {names}"
            )
        i = names.index(state["tag"])
        start, resume_current = (i + 1, False) if state["finished"] else (i, True)
        model.load_state_dict(load_state_dict(Path(out_dir) / MODEL))
    result = None
    for i in range(start, len(names)):
        tag = names[i]
        if tag == "finetune":
            params, loss_fn, epochs = list(model.parameters()), model.loss, finetune_epochs
        else:
            pair = PairLoss(model, i)
            params, loss_fn, epochs = pair.parameters(), pair, cfg.epochs
        trainer = Trainer(
            model,
            dataclasses.replace(cfg, epochs=epochs),
            out_dir,
            params=params,
            loss_fn=loss_fn,
            tag=tag,
            metadata={"model": model.registry_name},
            progress=progress,
        )
        result = trainer.fit(data, resume=resume_current and i == start)
    if result is None:  # everything was already done
        return FitResult(steps=0, epochs=0, best_val_loss=float("nan"), final={})
    return result
