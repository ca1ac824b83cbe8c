"""Errors a user can cause.

Everything a user can get wrong (a path, a file, a config key, a number) raises
a subclass of :class:`UserError`. The CLI turns these into one line on stderr,
``error: ...``, and exit status 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for; the message says what to do."""


class ConfigError(UserError, ValueError):
    """An unknown config key, a value of the wrong type, or an impossible number."""


class DataError(UserError):
    """Missing, corrupt or inconsistent data files."""


class CheckpointError(UserError):
    """A run directory that is missing, corrupt, or of another model family."""
