"""Atomic file writes and the run-directory lock.

Every file aegen writes goes to a temporary file in the same directory, is
flushed and fsynced, then renamed over the target: a process killed mid-write
leaves the previous good file (or none), never a half-written one.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

__all__ = [
    "RunLock",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_save",
    "atomic_write_text",
    "ensure_dir",
    "ensure_writable_file",
    "json_text",
    "npy_bytes",
    "read_dir_json",
    "read_json",
    "replace_dir",
    "sha256_file",
    "staging_dir",
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
    folder = ensure_dir(p.parent if str(p.parent) else Path("."))
    # a file made and removed now: some places refuse new files whatever their modes say
    # (/proc, a read-only mount seen by root), and the work before the write would be lost
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{p.name}.", suffix=".probe")
    except OSError as e:
        raise UserError(f"cannot write {p}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    return p


@contextlib.contextmanager
def _replacing(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """A temporary file beside ``path`` (its open descriptor and name): renamed over
    ``path`` when the block succeeds, removed when it raises."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.fchmod(fd, _MODE)
    try:
        yield fd, tmp
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``."""
    with _replacing(path) as (fd, _), os.fdopen(fd, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any, **dumps: Any) -> str:
    """``obj`` as standard JSON: a float that is not finite (NaN, ±inf) becomes null.

    Python's ``json`` would write ``NaN`` and ``Infinity``, which are not JSON: a
    browser's ``JSON.parse``, ``jq`` and most other readers refuse the whole file.
    Readers that need a number where null stands treat it as "not a number"
    (the tour reads them back as NaN); the report shows "—".
    ``dumps`` go to :func:`json.dumps` (indent, separators).
    """
    return json.dumps(_finite(obj), allow_nan=False, **dumps)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as standard JSON (:func:`json_text`, indented), written atomically."""
    atomic_write_text(path, json_text(obj, indent=2) + "\n")


def atomic_write_csv(
    path: str | os.PathLike, rows: Iterable[dict[str, Any]], columns: Sequence[str]
) -> None:
    """Write ``rows`` as CSV with a header of ``columns``: floats with 6 significant digits,
    a missing value as an empty cell, keys outside ``columns`` left out."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def atomic_save(path: str | os.PathLike, save: Callable[[str], None]) -> None:
    """Atomically write a file produced by a library ``save(filename)`` call."""
    with _replacing(path) as (fd, tmp):
        os.close(fd)
        save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp uses 0600


def read_json(path: str | os.PathLike, error: type[Exception]) -> Any:
    """The JSON in ``path``; an unreadable or broken file raises ``error`` naming the path."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: unreadable ({e})") from None


def read_dir_json(
    directory: str | os.PathLike, name: str, error: type[Exception], kind: str, hint: str = ""
) -> Any:
    """The JSON file ``name`` that makes ``directory`` a ``kind`` directory ("run", "codes");
    a missing directory or file, or a broken one, raises ``error`` with one line."""
    d = Path(directory)
    if not d.is_dir():
        raise error(f"{d}: no such {kind} directory")
    if not (d / name).is_file():
        raise error(f"{d}: not a {kind} directory (no {name}){hint}")
    return read_json(d / name, error)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def npy_bytes(a: np.ndarray) -> bytes:
    """``a`` as the bytes of a ``.npy`` file (no pickles), for :func:`atomic_write_bytes`."""
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def staging_dir(out: str | os.PathLike) -> Path:
    """A new empty directory beside ``out``, with the mode a plain mkdir would give, to be
    filled and then moved into place by :func:`replace_dir` (mkdtemp alone makes it 0700)."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}."))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move a finished directory ``tmp`` into place as ``out``, replacing ``out`` if it exists."""
    tmp, out = Path(tmp), Path(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running: a zombie (dead, not yet reaped) is not.

    A killed worker whose parent died too waits as a zombie until something reaps
    it, which in a container may be never.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    try:  # Linux: the state follows the ")" that ends the command name
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone since, or no /proc here (then signal 0 is all there is)
        return not Path("/proc/self/stat").exists()
    return stat[stat.rfind(")") + 2 :][:1] != "Z"


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
                if pid_alive(owner):
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
