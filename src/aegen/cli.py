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

from .commands.argtypes import ArgParser, fraction, nonneg_int, positive_float, positive_int
from .distributed import ERROR_FILE_ENV, report_error
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


def build_parser() -> ArgParser:
    parser = ArgParser(
        prog="aegen",
        description="Autoencoders and image generation on 28×28 images: train, sample, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"aegen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"aegen.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}


def flush_denormals() -> None:
    """Flush denormal floats to zero in this process's torch threads when
    ``AEGEN_FLUSH_DENORMAL=1``. It must run before torch's first parallel work: worker
    threads inherit the setting when they start, and ``torch.set_flush_denormal`` later
    reaches only the calling thread.

    AdamW's moments for weights that never get a gradient (pixels that are always 0)
    decay into denormals, where x86 arithmetic is many times slower (what the flush
    saves: docs/performance.md, ``denormals/``). It is off by default: with it on, a run
    killed and resumed was in some trials not bit-identical to an uninterrupted one
    (docs/performance.md), and exact resumption is a promise of this library. The library
    itself never sets it, because it changes float arithmetic for the whole process.
    """
    if os.environ.get("AEGEN_FLUSH_DENORMAL") == "1":
        import torch

        torch.set_flush_denormal(True)


def entry() -> int:
    """The ``aegen`` command and ``python -m aegen``: the process is ours, so it may flush
    denormals (opt-in, see :func:`flush_denormals`)."""
    flush_denormals()
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for commands that relaunch themselves (train --nproc)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
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
