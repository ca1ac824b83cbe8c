"""aegen: autoencoders, VAEs and VQ-VAEs with autoregressive priors, on 28×28 images.

The public API::

    import aegen
    data = aegen.load_data("fashion-mnist")
    model = aegen.build_model("ae-conv", code_dim=16)
    aegen.Trainer(model, aegen.TrainConfig(epochs=5), "runs/ae").fit(data)
    model = aegen.load("runs/ae")
"""

__version__ = "0.1.0"

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
