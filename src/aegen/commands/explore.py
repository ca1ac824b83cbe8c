"""``aegen explore RUN [RUN ...]``: the runs' latent spaces, codebooks and priors in the browser.

Starts a local web app (127.0.0.1 unless ``--host`` says otherwise), prints its
address, opens the browser when there is one and stops on Ctrl-C; or, with
``--static DIR``, writes the same page with precomputed pictures into a folder
and exits. See docs/explore.md.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path

import torch

from ..errors import UserError
from ._common import add_data_args, data_for_run


def _port(text: str) -> int:
    from .argtypes import nonneg_int

    v = nonneg_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {v}")
    return v


def _has_display() -> bool:
    """Whether a graphical browser can open: on a bare terminal, webbrowser would start a
    text browser in it (or nothing), so the address printed is the way in there."""
    import os

    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def add_parser(sub) -> None:
    from ..explore import DEFAULT_POINTS
    from .argtypes import positive_int

    p = sub.add_parser(
        "explore",
        help="explore runs in the browser: latent maps, VQ code grids, prior sampling",
        description="A local web app over trained runs: an autoencoder's or VAE's latent map "
        "(hover to decode), a VQ-VAE's code grid and codebook (edit codes, see the decode), "
        "a prior drawing codes step by step, an M2 run's styles in every class. RUN is a run "
        "directory or a VQ pipeline "
        "directory. Nothing is fetched from the network.",
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="run directories (ae, vae, vqvae, prior, m2)"
    )
    p.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0: any free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--static",
        metavar="DIR",
        default=None,
        help="write a self-contained folder (HTML, JS, precomputed pictures) instead of serving",
    )
    p.add_argument(
        "--points",
        type=positive_int,
        default=DEFAULT_POINTS,
        metavar="N",
        help=f"test images per page (default {DEFAULT_POINTS})",
    )
    add_data_args(p, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..explore import export_static, make_server, open_runs, warm_up

    if args.static:
        out = Path(args.static)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UserError(f"--static {out}: exists and is not an empty directory")
    if not args.static:
        # one image per request: a second thread cannot speed that up, and when another
        # process keeps a core busy, torch's threads wait on each other (measured:
        # docs/explore.md). Set before torch's pool first runs: shrinking a pool that has
        # run could abort the process at exit (docs/explore.md).
        torch.set_num_threads(1)
    pages = open_runs(args.runs, lambda d: data_for_run(d, args), points=args.points)
    if args.static:
        index = export_static(pages, args.static)
        print(f"wrote {index} ({len(pages)} pages); open it in a browser, no server needed")
        return 0
    warm_up(pages)
    try:
        server = make_server(pages, args.host, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {args.port} is in use; choose another with --port") from None
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    if server.allowed_hosts is None:
        print(
            f"warning: listening on {args.host}; other machines can reach these runs",
            file=sys.stderr,
        )
    names = ", ".join(p.name for p in pages)
    print(f"aegen explore: {server.url} ({names}); Ctrl-C stops", flush=True)
    if not args.no_browser and _has_display():
        import webbrowser

        webbrowser.open(server.url)
    # Ctrl-C (SIGINT) stops it even where the shell that started it ignores SIGINT, as a
    # script's background jobs do: Python then installs no KeyboardInterrupt handler of
    # its own, and the server would run on until killed
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    # the server writes no file; leave without interpreter finalisation, which with daemon
    # request threads and torch's pool alive could hang or abort (docs/explore.md)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
