"""``python -m aegen`` (and ``torchrun -m aegen``) run the command line."""

import sys

from .cli import entry

sys.exit(entry())
