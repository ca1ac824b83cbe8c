"""``aegen explore``: the latent spaces, the codebook and a prior's sampling, live in the browser.

A local web app over trained runs: :func:`open_runs` makes one page per run
(autoencoder/VAE latent map, VQ-VAE code grid and codebook, prior sampling step
by step, an M2 run's "same style, every class"), :func:`make_server` serves them on 127.0.0.1 with the standard
library's HTTP server and one self-contained page (nothing is fetched from the
network), and :func:`export_static` writes the same page with precomputed
pictures into a folder that works from ``file://``. See docs/explore.md.

    pages = open_runs(["runs/vae", "runs/vq"])
    server = make_server(pages, port=8765)
    server.serve_forever()
"""

from .loading import DEFAULT_POINTS, open_runs, run_data, warm_up
from .pages import Page, RequestError
from .sampling import SamplingSession
from .server import ExploreServer, make_server, start_in_thread
from .static import export_static
from .styles import StylePage

__all__ = [
    "DEFAULT_POINTS",
    "ExploreServer",
    "Page",
    "RequestError",
    "SamplingSession",
    "StylePage",
    "export_static",
    "make_server",
    "open_runs",
    "run_data",
    "start_in_thread",
    "warm_up",
]
