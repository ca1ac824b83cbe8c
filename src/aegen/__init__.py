"""aegen: autoencoders, VAEs and VQ-VAEs with autoregressive priors, on 28×28 images.

The public API::

    import aegen
    data = aegen.load_data("fashion-mnist")
    model = aegen.build_model("ae-conv", code_dim=16)
    aegen.Trainer(model, aegen.TrainConfig(epochs=5), "runs/ae").fit(data)
    model = aegen.load("runs/ae")
"""

from .checkpoint import load
from .config import DataConfig, RunConfig, TrainConfig
from .data import Batch, load_data
from .errors import CheckpointError, ConfigError, DataError, UserError
from .registry import available, build_model
from .train import Trainer, seed_everything
from .version import __version__

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
    "build_model",
    "load",
    "load_data",
    "seed_everything",
]
