"""Data: the IDX reader, the data sets in memory, and index batching."""

from .datasets import DATASETS, Dataset, Split, download_mnist, load_data, make_synthetic
from .idx import parse_idx, read_idx, write_idx
from .loader import Batch, epoch_batches, epoch_permutation, to_float

__all__ = [
    "DATASETS",
    "Batch",
    "Dataset",
    "Split",
    "download_mnist",
    "epoch_batches",
    "epoch_permutation",
    "load_data",
    "make_synthetic",
    "parse_idx",
    "read_idx",
    "to_float",
    "write_idx",
]
