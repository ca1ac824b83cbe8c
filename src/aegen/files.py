"""Atomic file writes and the run-directory lock.

Every file aegen writes goes to a temporary file in the same directory, is
flushed and fsynced, then renamed over the target: a process killed mid-write
leaves the previous good file (or none), never a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = [
    "RunLock",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_save",
    "atomic_write_text",
    "ensure_dir",
    "ensure_writable_file",
]


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or raise a UserError saying why it cannot be."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{p} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create directory {p}: {e.strerror or e}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"directory {p} is not writable")
    return p


def ensure_writable_file(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be written (its folder exists or can be made; not a directory)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a directory; give a file name")
    ensure_dir(p.parent if str(p.parent) else Path("."))
    return p


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.fchmod(fd, _MODE)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(path: str | os.PathLike, save: Callable[[str], None]) -> None:
    """Atomically write a file produced by a library ``save(filename)`` call."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.fchmod(fd, _MODE)
    os.close(fd)
    try:
        save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp uses 0600


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


class RunLock:
    """An exclusive lock on an output directory, held as ``DIR/.lock`` with the owner's pid.

    A second writer is refused with a UserError. A lock left by a dead process is
    taken over, with a message on stderr.
    """

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / ".lock"
        self.held = False

    def acquire(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = int(self.path.read_text().strip() or "0")
                except (OSError, ValueError):
                    owner = 0
                if owner == os.getpid():
                    raise UserError(
                        f"{self.path.parent} is already in use by this process"
                    ) from None
                if _pid_alive(owner):
                    raise UserError(
                        f"{self.path.parent} is in use by running process {owner}; "
                        "wait for it or choose another --out"
                    ) from None
                print(
                    f"note: taking over a stale lock in {self.path.parent} (process {owner} is gone)",
                    file=sys.stderr,
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.held = True
            return self
        raise UserError(f"could not lock {self.path.parent}")

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
