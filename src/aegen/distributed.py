"""Data-parallel training on PyTorch's own engine: DistributedDataParallel under torchrun.

``torchrun --nproc_per_node=N -m aegen train …`` starts N processes; each calls
:func:`setup`, which reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT) and joins the process group — ``gloo`` on CPU, ``nccl`` on
CUDA. The trainer then shards every global batch by rank, wraps the loss in DDP
(gradients are averaged across ranks in buckets while backward runs), reduces
metrics across ranks, and lets only rank 0 write files.

``aegen train … --nproc N`` is a shortcut that launches torchrun on this machine
(:func:`launch`). A user error on any rank ends every rank (torchrun stops the
others when one exits) and the launcher prints the first failing rank's one
``error:`` line, not torchrun's traceback report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import UserError

__all__ = [
    "Context",
    "barrier",
    "context",
    "end_worker",
    "launch",
    "report_error",
    "setup",
    "teardown",
]

ERROR_FILE_ENV = "AEGEN_ERROR_FILE"


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - an immutable value

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    if device != "cpu":
        raise UserError(f"unknown device {device!r}; choose auto, cpu or cuda")
    return torch.device("cpu")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent (torchrun's agent) dies.

    torchrun starts workers in sessions of their own, so killing the agent (or the
    launcher above it) would otherwise leave them training as orphans.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent is already gone
            os.kill(os.getpid(), signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def setup(device: str = "auto") -> Context:
    """Join torchrun's process group if launched by it; else a one-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "TORCHELASTIC_RUN_ID" in os.environ:
        _die_with_parent()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Context(rank=rank, world=world, local_rank=local_rank, device=dev)


def context() -> Context:
    """The current process's place: rank and world from the live process group, if any."""
    if dist.is_available() and dist.is_initialized():
        return Context(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )
    return Context()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def end_worker(code: int) -> None:
    """End a torchrun worker with ``code`` without finalizing the interpreter; elsewhere return.

    DDP keeps the process group alive after :func:`teardown` (torch 2.13: its gloo threads
    outlive ``destroy_process_group``), and one of them may still be dropping the last
    barrier's work, whose all-gathered tensors have Python objects, while the interpreter
    finalizes: taking the GIL then ends that thread inside a destructor and the process
    aborts ("terminate called without an active exception"; a core dump of one such abort,
    about one two-process run in a hundred under load, showed it). By now a worker's files are
    written and closed, so it flushes its output and leaves without finalizing.
    """
    if "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def report_error(message: str) -> None:
    """Leave a worker's one-line error where the launcher will find it."""
    target = os.environ.get(ERROR_FILE_ENV)
    if target:
        rank = os.environ.get("RANK", "0")
        Path(f"{target}.{rank}").write_text(message)


def launch(argv: list[str], nproc: int) -> int:
    """Run ``aegen <argv>`` in ``nproc`` processes through torchrun on this machine.

    Returns the exit status: 0, or 2 with the first failing rank's ``error:`` line
    printed; torchrun's own report is shown only when no rank left a message (a bug).
    """
    with tempfile.TemporaryDirectory(prefix="aegen-ddp-") as tmp:
        env = {**os.environ, ERROR_FILE_ENV: str(Path(tmp) / "error")}
        # one process per core: each worker gets a share of the threads
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "aegen",
            *argv,
        ]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        failed = lambda: any(Path(tmp).glob("error.*"))  # noqa: E731
        # Forward the workers' output live (rank 0's progress bar) until a rank has
        # failed; torchrun's report that follows a failure is a traceback dump.
        while chunk := os.read(proc.stderr.fileno(), 4096):
            if not failed():
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
        code = proc.wait()
        if code == 0:
            return 0
        errors = sorted(Path(tmp).glob("error.*"), key=lambda p: (p.stat().st_mtime, p.name))
        if errors:
            print(f"error: {errors[0].read_text().strip()}", file=sys.stderr)
            return 2
        return code or 1
