"""The aegen version, in a module of its own so that any layer may read it without
importing the package (whose ``__init__`` imports most of the others)."""

__version__ = "0.1.0"
