"""The ``aegen`` command line: one entry point, thin subcommands.

Each subcommand lives in ``aegen.commands.<name>`` and exposes
``add_parser(subparsers)``; the parser it adds sets ``func`` to the function
that runs it. Every user error — bad arguments included — ends as one line
``error: …`` on stderr and exit status 2; bugs keep their traceback.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

from . import threads
from .commands.argtypes import ArgParser, fraction, nonneg_int, positive_float, positive_int
from .errors import UserError
from .version import __version__

__all__ = ["ArgParser", "fraction", "main", "nonneg_int", "positive_float", "positive_int"]

# The subcommand modules, in the order `aegen --help` lists them.
COMMANDS = [
    "train",
    "reconstruct",
    "info",
    "demo",
    "classify",
    "semisup",
    "primer",
    "encode",
    "train-prior",
    "generate",
    "pipeline",
    "compare-generators",
    "features",
    "eval",
    "report",
    "bench",
    "tour",
    "sample",
    "interpolate",
    "sweep-beta",
    "explore",
]


def build_parser(only: str | None = None) -> ArgParser:
    """The whole command line, or with ``only`` one subcommand's parser (what a run of
    that command needs: the other commands' modules and their imports stay unloaded)."""
    parser = ArgParser(
        prog="aegen",
        description="Autoencoders and image generation on 28×28 images: train, sample, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"aegen {__version__}")
    add_process_args(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgParser)
    sub.required = True
    for name in [only] if only in COMMANDS else COMMANDS:
        importlib.import_module(f"aegen.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}


def add_process_args(parser: ArgParser) -> None:
    """The options :func:`entry` reads before torch loads (they precede the command)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch threads (default: the idle cores this process may use; also AEGEN_THREADS)",
    )
    parser.add_argument(
        "--no-flush-denormal",
        action="store_true",
        help="keep denormal floats (default: flushed to zero; also AEGEN_FLUSH_DENORMAL=0)",
    )


def _global_head(argv: list[str]) -> list[str]:
    """The options before the command (``--threads N`` takes a value)."""
    head: list[str] = []
    for a in argv:
        if not a.startswith("-") and (not head or head[-1] != "--threads"):
            break
        head.append(a)
    return head


def command_name(argv: list[str]) -> str | None:
    """The subcommand ``argv`` runs, or None (``--help``, ``--version``, a typo)."""
    rest = argv[len(_global_head(argv)) :]
    return rest[0] if rest else None


def process_options(argv: list[str]) -> tuple[int | None, bool]:
    """``(--threads, flush)`` from the options before the command, parsed the way the
    full parser will (which reports a bad value the same way)."""
    head = _global_head(argv)
    p = ArgParser(prog="aegen", add_help=False)
    add_process_args(p)
    known, _ = p.parse_known_args(head)
    flush = not known.no_flush_denormal and os.environ.get(threads.FLUSH_ENV, "1") != "0"
    return known.threads, flush


def flush_denormals(on: bool = True) -> bool:
    """Flush denormal floats to zero in this thread, and so in every torch worker thread
    started after it (a new thread inherits the floating-point control word of the one
    that starts it; ``torch.set_flush_denormal`` reaches only the calling thread).

    :func:`entry` calls it before torch's first parallel work. AdamW's moments for
    weights that never get a gradient (pixels that are always 0) decay into denormals,
    where x86 arithmetic is many times slower (what the flush saves: docs/performance.md).
    The library never sets it, because it changes float arithmetic for the whole process.
    """
    import torch

    return bool(torch.set_flush_denormal(on)) and on


# glibc's mallopt parameters, and what the command sets them to
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc takes on 64-bit (half its 64 MiB arena heap)
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory(libc: object | None = None) -> bool:
    """Let glibc's malloc keep freed memory for the next step instead of giving it back.

    By default glibc hands blocks above a moving threshold straight back to the kernel
    when they are freed, so a training step that allocates the same large tensors each
    time takes page faults on all of them again: M2's step (every unlabeled image
    decoded once per class) spent 0.44 of its 0.64 s in the kernel on the Zen 4 EPYC,
    and took 0.46 s in all (mean of two runs) once blocks up to 32 MiB came from the
    heap and up to 1 GiB of freed heap was kept (docs/performance.md). Off with
    ``AEGEN_MALLOC=system``; nothing happens where the C library is not glibc.
    Returns whether it is on.
    """
    if os.environ.get(threads.MALLOC_ENV, "").strip().lower() == "system":
        return False
    try:
        if libc is None:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def entry() -> int:
    """The ``aegen`` command and ``python -m aegen``. The process is ours, so before torch
    loads it chooses the threads and OpenMP's passive wait (:mod:`aegen.threads`), it
    flushes denormals (off: ``--no-flush-denormal`` or ``AEGEN_FLUSH_DENORMAL=0``) and
    lets malloc keep freed memory (:func:`keep_freed_memory`; off: ``AEGEN_MALLOC=system``)."""
    argv = sys.argv[1:]
    try:
        flag, flush = process_options(argv)
        choice = threads.prepare_process(flag)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    threads.record_malloc(keep_freed_memory())
    threads.record_flush(flush_denormals() if flush else False)
    threads.apply(choice)
    code = main(argv)
    from .distributed import end_worker  # loaded by the commands already, after the threads

    end_worker(code)  # a torchrun worker ends here, without finalizing the interpreter
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_name(argv))
    args = parser.parse_args(argv)
    args.argv = argv  # for commands that relaunch themselves (train --nproc)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        from .distributed import ERROR_FILE_ENV, report_error

        if os.environ.get(ERROR_FILE_ENV):  # a torchrun worker: the launcher prints it once
            report_error(str(e))
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # a full disk or a read-only place is the user's to fix, not a bug
        if e.errno in _ENVIRONMENT_ERRNOS:
            print(f"error: {e.strerror}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted; resume with --resume where the command supports it", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
