"""aegen: autoencoders, VAEs and VQ-VAEs with autoregressive priors, on 28×28 images.

The public API::

    import aegen
    data = aegen.load_data("fashion-mnist")
    model = aegen.build_model("ae-conv", code_dim=16)
    aegen.Trainer(model, aegen.TrainConfig(epochs=5), "runs/ae").fit(data)
    model = aegen.load("runs/ae")
"""

__version__ = "0.1.0"

import os  # noqa: E402

import torch  # noqa: E402

# Flush denormal floats to zero on the CPU, before torch starts its worker threads (they
# inherit the setting when created; torch.set_flush_denormal later reaches only the
# calling thread). AdamW's moments for weights that never get a gradient (pixels that
# are always 0) decay into denormals, where x86 arithmetic is many times slower: ae-mlp
# epochs went from 4.6 s to 6.7 s after the first without this. AEGEN_FLUSH_DENORMAL=0
# keeps them (docs/performance.md).
if os.environ.get("AEGEN_FLUSH_DENORMAL", "1") != "0":
    torch.set_flush_denormal(True)

from .checkpoint import load  # noqa: E402
from .config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from .data import Batch, load_data  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, UserError  # noqa: E402
from .registry import available, build  # noqa: E402
from .train import Trainer, seed_everything  # noqa: E402

build_model = build

__all__ = [
    "Batch",
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "UserError",
    "__version__",
    "available",
    "build",
    "build_model",
    "load",
    "load_data",
    "seed_everything",
]
