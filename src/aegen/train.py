"""One model-agnostic training loop.

The trainer knows four things about a model: its parameters, ``loss(batch) ->
(loss, logs)``, ``train()``/``eval()``, and its state dict. Everything else —
what the loss is, what gets logged — belongs to the model.

What it does: AdamW with a warm-up + cosine (or constant) learning rate,
optional gradient clipping, seeded data order, a progress bar, validation every
epoch, ``metrics.csv`` (and TensorBoard event files when tensorboard is
installed), last and best checkpoints, and exact resume: the checkpoint holds
the optimizer, the step, the position inside the epoch and every RNG state, and
each epoch's order is rebuilt from (seed, epoch), so a resumed run takes the same
steps as an uninterrupted one.

``train.max_minutes`` is a wall-clock budget: after the first optimiser step that
ends past it, the epoch in progress is closed (validation, its row, best weights,
the checkpoint) and the run is finished. The seconds spent are kept in the
checkpoint (``elapsed_s``), so a resumed run counts them; the time between the
last checkpoint and a kill is not counted. The learning-rate schedule does not
know the budget: its horizon stays ``epochs``, so the step-to-rate map is the same
with or without a budget (and a resumed run takes the same steps), and a run
stopped by time ends before a cosine reaches zero — pair a budget with
``schedule=constant`` or with ``epochs`` set to the horizon you want.

:meth:`Trainer.fit` is a loop over named steps: ``_start`` (checks, resume or
seed, compile, DDP), then per epoch ``_train_epoch`` (``_train_step`` per batch,
with the non-finite-loss policy and mid-epoch checkpoints) and ``_finish_epoch``
(validation, the epoch's row, best weights, the checkpoint), then ``_end``. The
row goes to a :class:`~aegen.runlog.RunLog`, which owns metrics.csv, TensorBoard
and the printed line; RNG capture is beside the checkpoint code
(:func:`aegen.checkpoint.capture_rng`).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoint import (
    BEST,
    MODEL,
    capture_rng,
    load_state_dict,
    read_train_state,
    restore_rng,
    save_model,
    write_checkpoint,
)
from .config import TrainConfig
from .data.datasets import Dataset, Split
from .data.loader import Batch, epoch_batches, num_batches, to_float
from .distributed import barrier, resolve_device
from .distributed import context as dist_context
from .errors import CheckpointError, UserError
from .files import ensure_dir
from .models.abilities import TrainingPhase, TrainsInPhases
from .runlog import RunLog

__all__ = [
    "FitResult",
    "TrainingDiverged",
    "Trainer",
    "autocast",
    "bf16_supported",
    "check_batch_size",
    "evaluate_loss",
    "lr_at",
    "seed_everything",
]

CPU = torch.device("cpu")
budget_clock = time.perf_counter  # what train.max_minutes is measured with (tests replace it)
LossFn = Callable[[Batch], tuple[torch.Tensor, dict[str, Any]]]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_batch_size(batch_size: int, n: int | None, world: int = 1) -> None:
    """Refuse a batch larger than the ``n`` training examples (None: not known yet) or one
    that the ``world`` processes cannot share evenly, before anything is written."""
    if n is not None and n < batch_size:
        raise UserError(f"train.batch_size={batch_size} is larger than the {n} training examples")
    if batch_size % world:
        raise UserError(f"train.batch_size={batch_size} must be divisible by the {world} processes")


def bf16_supported(device_type: str = "cpu") -> bool:
    """Whether the device has native bf16 arithmetic (a CPU with AVX-512 BF16 or AMX; most GPUs)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def uses_bf16(amp: str, device_type: str = "cpu") -> bool:
    """Whether ``amp`` means bf16 on this device (``auto``: where it has native bf16)."""
    return amp == "bf16" or (amp == "auto" and bf16_supported(device_type))


def autocast(amp: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast when ``amp`` asks for it (``auto``: where the device supports it)."""
    if uses_bf16(amp, device_type):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at ``step``: linear warm-up, then constant or cosine decay to zero."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _as_float(v: Any) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    split: Split,
    batch_size: int = 512,
    amp: str = "off",
    channels_last: bool = False,
    loss_fn: LossFn | None = None,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world: int = 1,
) -> dict[str, float]:
    """Mean loss and logs over ``split`` in eval mode (weighted by batch size).

    With ``world`` > 1 each rank evaluates a contiguous share and the sums are
    all-reduced, so every rank returns the same means over the whole split.
    """
    loss_fn = loss_fn or model.loss
    device = torch.device(device)
    was_training = model.training
    model.eval()
    n = len(split)
    lo, hi = rank * n // world, (rank + 1) * n // world
    sums: dict[str, float] = {}
    for start in range(lo, hi, batch_size):
        stop = min(start + batch_size, hi)
        x = to_float(split.x[start:stop].to(device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(amp, device.type):
            loss, logs = loss_fn(Batch(x, split.y[start:stop].to(device)))
        w = stop - start
        for k, v in {"loss": loss, **logs}.items():
            sums[k] = sums.get(k, 0.0) + _as_float(v) * w
    model.train(was_training)
    keys = sorted(sums) if world == 1 else _agreed_keys(sums)
    vec = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64)
    if world > 1:
        vec = vec.to(device)
        dist.all_reduce(vec)
        vec = vec.cpu()
    return {k: float(v) / n for k, v in zip(keys, vec.tolist(), strict=True)}


def _agreed_keys(sums: dict[str, float]) -> list[str]:
    """The union of log keys over all ranks (a rank with an empty share has none)."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sorted(sums))
    return sorted(set().union(*gathered))


@dataclass
class FitResult:
    """What a finished fit reports; ``history`` holds the metrics rows of this run directory."""

    steps: int
    epochs: int
    best_val_loss: float
    final: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Plan:
    """What every epoch of one fit uses: sizes, the data on the device, the loss to call."""

    n: int
    steps_per_epoch: int
    total_steps: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    loss_fn: Callable[[Batch], tuple[torch.Tensor, dict[str, Any]]]
    phase_losses: list[LossFn] = field(default_factory=list)  # one per phase (several optimizers)


@dataclass
class _Epoch:
    """One epoch in progress: sums of the logged values, skipped batches, the step it began at."""

    sums: dict[str, torch.Tensor | float]
    skipped: int
    first: int
    seconds: float = 0.0


class _LossModule(torch.nn.Module):
    """Makes ``loss_fn(batch)`` the forward of a module, so DDP can wrap it.

    DDP synchronises gradients for what runs through its ``forward``; the trainer's
    unit of work is the model's loss, so that is what goes through it.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Batch):
        return self.loss_fn(batch)


class Trainer:
    """Trains ``model`` with ``cfg``, writing checkpoints and metrics to ``out_dir``.

    ``params`` restricts what is optimised (phased training); ``loss_fn`` replaces
    ``model.loss`` (same signature); ``tag`` labels the metrics rows and the
    checkpoint (e.g. ``phase1``); ``metadata`` goes into the safetensors header.
    With ``out_dir=None`` nothing is written.

    A model that owns several optimizers (:class:`~aegen.models.abilities.TrainsInPhases`,
    e.g. a GAN) is trained, when neither ``params`` nor ``loss_fn`` is given, by one
    AdamW per phase, stepped in the phases' order on every batch (``_train_phases``);
    every optimizer's state is in the checkpoint. Such a model trains in one process.

    Under torchrun (a live process group) every rank runs the same Trainer: each
    takes its share of every global batch, DDP averages the gradients, metrics are
    reduced across ranks and only rank 0 writes files.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        out_dir: str | os.PathLike | None = None,
        *,
        params: Iterable[torch.nn.Parameter] | None = None,
        loss_fn: LossFn | None = None,
        tag: str = "",
        metadata: dict[str, str] | None = None,
        progress: bool = True,
    ):
        ctx = dist_context()
        self.rank, self.world = ctx.rank, ctx.world
        self.device = resolve_device(cfg.device, ctx.local_rank)
        self.model = model.to(self.device)
        self.cfg = cfg
        self.out_dir = Path(out_dir) if out_dir is not None else None
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.params = [p for p in (params if params is not None else trainable) if p.requires_grad]
        self.loss_fn = loss_fn or model.loss
        self.tag = tag
        self.metadata = {"tag": tag, **(metadata or {})} if tag else dict(metadata or {})
        self.progress = progress
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.phases: list[TrainingPhase] = (
            model.training_phases()
            if isinstance(model, TrainsInPhases) and params is None and loss_fn is None
            else []
        )
        # one optimizer per phase, or the one optimizer over self.params (the fast path)
        self.optimizers = {
            ph.name: torch.optim.AdamW(
                [p for p in ph.params if p.requires_grad],
                lr=cfg.lr * ph.lr_scale,
                betas=ph.betas,
                weight_decay=cfg.weight_decay,
                fused=cfg.fused or None,
            )
            for ph in self.phases
        }
        self.optimizer = (
            None
            if self.phases
            else torch.optim.AdamW(
                self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused or None
            )
        )
        self._partial_params = len(self.params) < len(trainable)
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.best_val = math.inf
        self.history: list[dict[str, Any]] = []
        self._partial: dict[str, float] = {}  # sums of this epoch's logs so far (for resume)
        self.elapsed_before = 0.0  # training seconds of earlier sessions (train.max_minutes)
        self.out_of_time = False  # latched at a step boundary once train.max_minutes is spent
        self._t_fit = budget_clock()
        self.log = RunLog(None, show=False)  # replaced by fit

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """The resumable state; a collective under DDP (every rank's RNG is gathered)."""
        rng = capture_rng(self.device)
        if self.world > 1:
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if self.optimizer is None:
            opt = {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}
        else:
            opt = {"optimizer": self.optimizer.state_dict()}
        return {
            **opt,
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "best_val": self.best_val,
            "rows": len(self.history),
            "partial": dict(self._partial),
            "rng": gathered,  # one entry per rank
            "world": self.world,
            "tag": self.tag,
            "elapsed_s": self.elapsed(),
            "out_of_time": self.out_of_time,
            "finished": self.epoch >= self.cfg.epochs or self.out_of_time,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        world = int(state.get("world", 1))
        if world != self.world:
            raise UserError(
                f"{self.out_dir} was trained with {world} process(es); "
                f"resume it with the same number (now {self.world}) to continue exactly"
            )
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            saved = state.get("optimizers")
            if not isinstance(saved, dict) or set(saved) != set(self.optimizers):
                raise CheckpointError(
                    f"{self.out_dir}: the checkpoint holds no state for the optimizers "
                    f"{', '.join(self.optimizers)} of this model; wrong run directory?"
                )
            for name, opt in self.optimizers.items():
                opt.load_state_dict(saved[name])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.best_val = float(state["best_val"])
        self._partial = {k: float(v) for k, v in state["partial"].items()}
        self.history = self.history[: int(state["rows"])]
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.out_of_time = bool(state.get("out_of_time", False))
        restore_rng(state["rng"][self.rank], self.device)

    def elapsed(self) -> float:
        """Training seconds so far, earlier sessions of a resumed run included."""
        return self.elapsed_before + budget_clock() - self._t_fit

    def _spent_budget(self) -> bool:
        """Whether train.max_minutes is spent; under DDP one rank past it stops them all, together."""
        if not self.cfg.max_minutes:
            return False
        up = self.elapsed() >= 60.0 * self.cfg.max_minutes
        if self.world > 1:
            flag = torch.tensor([float(up)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            up = bool(flag.item())
        return up

    def checkpoint(self) -> None:
        """Write weights + state (rank 0); every rank takes part in gathering the state."""
        if self.out_dir is None:
            return
        state = self.state()
        if self.rank == 0:
            write_checkpoint(self.out_dir, self.model, state, self.metadata)
        barrier()

    def _resume(self) -> None:
        if self.rank == 0:
            state = read_train_state(self.out_dir)  # may finish an interrupted commit
        barrier()
        if self.rank != 0:
            state = read_train_state(self.out_dir)
        self.load_state(state)
        self.model.load_state_dict(load_state_dict(self.out_dir / MODEL))

    # ------------------------------------------------------------------ loop

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (all ranks must agree to skip or stop)."""
        if self.world == 1:  # one sync and no extra tensors: this runs every step
            return math.isfinite(float(loss.detach()))
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        dist.all_reduce(bad)
        return not bool(bad.item())

    def _reduce(self, sums: dict[str, Any], count: float) -> dict[str, float]:
        """Mean of per-step sums over all steps of all ranks."""
        keys = sorted(sums)
        vec = torch.tensor([_as_float(sums[k]) for k in keys] + [count], dtype=torch.float64)
        if self.world > 1:
            vec = vec.to(self.device)
            dist.all_reduce(vec)
            vec = vec.cpu()
        total = max(1.0, float(vec[-1]))
        return {k: float(v) / total for k, v in zip(keys, vec[:-1].tolist(), strict=True)}

    def fit(self, data: Dataset, resume: bool = False) -> FitResult:
        """Train until ``cfg.epochs`` epochs are done or ``cfg.max_minutes`` is spent
        (continuing a checkpoint if ``resume``)."""
        plan = self._start(data, resume)
        t_start = time.perf_counter()
        self._t_fit = budget_clock()
        val: dict[str, float] = {}
        while self.epoch < self.cfg.epochs and not self.out_of_time:
            epoch = self._train_epoch(plan)
            val = self._finish_epoch(plan, data, epoch)
        self._end()
        return FitResult(
            steps=self.step,
            epochs=self.epoch,
            best_val_loss=self.best_val,
            final=val,
            history=self.history,
            seconds=time.perf_counter() - t_start,
        )

    # ------------------------------------------------------------------ fit's steps

    def _start(self, data: Dataset, resume: bool) -> _Plan:
        """Check the batch, prepare the directory, resume or seed, and place the data and
        the loss (compiled, DDP-wrapped) where training runs."""
        cfg = self.cfg
        n = len(data.train)
        check_batch_size(cfg.batch_size, n, self.world)
        if self.out_dir is not None:
            if self.rank == 0:
                ensure_dir(self.out_dir)
            barrier()
        self.log = RunLog(self.out_dir, show=self.progress and self.rank == 0, write=self.rank == 0)
        if self.out_dir is not None:
            self.history = [dict(r) for r in self.log.history()]
        if resume:
            self._resume()
        else:
            # ranks draw different noise (input corruption, VAE samples) from different streams
            seed_everything(cfg.seed + 1_000_003 * self.rank)
        loss_fn = torch.compile(self.loss_fn) if cfg.compile else self.loss_fn
        phase_losses = [torch.compile(ph.loss) if cfg.compile else ph.loss for ph in self.phases]
        if self.phases and self.world > 1:
            raise UserError(
                "a model with several optimizers trains in one process; drop --nproc / torchrun"
            )
        if self.world > 1:
            loss_fn = DistributedDataParallel(
                _LossModule(self.model, loss_fn),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self._partial_params,
            )
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        steps_per_epoch = num_batches(n, cfg.batch_size)
        return _Plan(
            n=n,
            steps_per_epoch=steps_per_epoch,
            total_steps=steps_per_epoch * cfg.epochs,
            train_x=data.train.x.to(self.device),
            train_y=data.train.y.to(self.device),
            loss_fn=loss_fn,
            phase_losses=phase_losses,
        )

    def _train_epoch(self, plan: _Plan) -> _Epoch:
        """The optimiser steps of one epoch, from ``step_in_epoch`` (mid-epoch after a resume)."""
        cfg = self.cfg
        self.model.train()
        batches = epoch_batches(
            plan.n, cfg.batch_size, cfg.seed, self.epoch, True, self.rank, self.world
        )
        sums: dict[str, torch.Tensor | float] = dict(self._partial)
        epoch = _Epoch(sums=sums, skipped=int(sums.pop("skipped", 0)), first=self.step_in_epoch)
        t0 = time.perf_counter()
        bar = tqdm(
            total=plan.steps_per_epoch,
            initial=self.step_in_epoch,
            desc=f"{self.tag + ' ' if self.tag else ''}epoch {self.epoch + 1}/{cfg.epochs}",
            disable=not self.log.show,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        for i in range(self.step_in_epoch, plan.steps_per_epoch):
            loss = self._train_step(plan, batches[i], epoch)
            self.step += 1
            self.step_in_epoch = i + 1
            if self.log.show and (i % 25 == 0 or i == plan.steps_per_epoch - 1):
                bar.set_postfix(loss=f"{_as_float(loss):.4g}", refresh=False)
            bar.update(1)
            if self._spent_budget():
                self.out_of_time = True
                break
            if cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and i + 1 < plan.steps_per_epoch:
                self._partial = {k: _as_float(v) for k, v in epoch.sums.items()}
                self._partial["skipped"] = float(epoch.skipped)
                self.checkpoint()
        bar.close()
        epoch.seconds = time.perf_counter() - t0
        return epoch

    def _train_step(self, plan: _Plan, idx: torch.Tensor, epoch: _Epoch) -> torch.Tensor:
        """One batch: learning rate, forward, the non-finite-loss policy, backward, update."""
        cfg = self.cfg
        idx = idx.to(self.device)
        x = to_float(plan.train_x[idx])
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(cfg, self.step, plan.total_steps)
        if self.optimizer is None:
            return self._train_phases(plan, Batch(x, plan.train_y[idx]), lr, epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        with autocast(cfg.amp, self.device.type):
            loss, logs = plan.loss_fn(Batch(x, plan.train_y[idx]))
        if cfg.compile and not loss.requires_grad:
            raise UserError(
                "train.compile: the compiled loss came back without a gradient (a torch.compile "
                "fault with this model); train it without train.compile=true"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self._all_finite(loss):
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.optimizer.step()
            for k, v in {"loss": loss, **logs}.items():
                v = v.detach() if isinstance(v, torch.Tensor) else v
                epoch.sums[k] = epoch.sums.get(k, 0.0) + v
        elif cfg.on_nan == "stop":
            raise self._diverged()
        else:
            epoch.skipped += 1
        return loss

    def _diverged(self, what: str = "loss") -> TrainingDiverged:
        where = f" in {self.out_dir}" if self.out_dir else ""
        return TrainingDiverged(
            f"{what} became non-finite at step {self.step} (epoch {self.epoch + 1}); "
            f"the last good checkpoint{where} is kept; lower train.lr, "
            "set train.grad_clip, or set train.on_nan=skip"
        )

    def _train_phases(self, plan: _Plan, batch: Batch, lr: float, epoch: _Epoch) -> torch.Tensor:
        """One batch of a model with several optimizers: each phase in order computes its
        loss, clears and fills its own gradients, clips them and steps its own optimizer.

        A non-finite loss stops the run, or (``on_nan=skip``) ends this batch there: the
        phases before it have stepped, none after it does, the batch counts as skipped and
        logs nothing.
        """
        cfg = self.cfg
        logs_of_batch: dict[str, Any] = {}
        loss = torch.zeros(())
        for phase, loss_fn in zip(self.phases, plan.phase_losses, strict=True):
            opt = self.optimizers[phase.name]
            for g in opt.param_groups:
                g["lr"] = lr * phase.lr_scale
            with autocast(cfg.amp, self.device.type):
                loss, logs = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            if not self._all_finite(loss):
                if cfg.on_nan == "stop":
                    raise self._diverged(f"the {phase.name} loss")
                epoch.skipped += 1
                return loss
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(phase.params, cfg.grad_clip)
            opt.step()
            logs_of_batch.update({f"{phase.name}_loss": loss, **logs})
        for k, v in logs_of_batch.items():
            v = v.detach() if isinstance(v, torch.Tensor) else v
            epoch.sums[k] = epoch.sums.get(k, 0.0) + v
        return loss

    def _finish_epoch(self, plan: _Plan, data: Dataset, epoch: _Epoch) -> dict[str, float]:
        """Validate, add the epoch's row to the log, keep the best weights, checkpoint."""
        cfg = self.cfg
        done = self.step_in_epoch  # all steps_per_epoch, unless the time budget cut it short
        train_logs = self._reduce(epoch.sums, float(done - epoch.skipped))
        val = self.validate(data)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.step}
        if self.tag:
            row["phase"] = self.tag
        row["lr"] = lr_at(cfg, max(0, self.step - 1), plan.total_steps)
        row.update({f"train_{k}": v for k, v in train_logs.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        if epoch.skipped:
            row["skipped_batches"] = epoch.skipped
        row["seconds"] = epoch.seconds
        images = (done - epoch.first) * cfg.batch_size
        row["images_per_s"] = images / max(epoch.seconds, 1e-9)
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch = 0
        self._partial = {}
        improved = val.get("loss", math.inf) < self.best_val
        if improved:
            self.best_val = val["loss"]
        if self.rank == 0:
            self.log.epoch(row, self.history, cfg.epochs, self.step)
            if self.out_dir is not None and improved:
                save_model(self.out_dir / BEST, self.model, self.metadata)
        self.checkpoint()
        return val

    def _end(self) -> None:
        self.log.close()
        if self.out_dir is not None and not (self.out_dir / MODEL).exists():
            self.checkpoint()

    def validate(self, data: Dataset) -> dict[str, float]:
        """Validation loss and logs, each rank on its share, reduced across ranks."""
        if len(data.val) == 0:
            return {}
        return evaluate_loss(
            self.model,
            data.val,
            batch_size=max(self.cfg.batch_size, 256),
            amp=self.cfg.amp,
            channels_last=self.cfg.channels_last,
            loss_fn=self.loss_fn,
            device=self.device,
            rank=self.rank,
            world=self.world,
        )
