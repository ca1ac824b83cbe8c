"""``python -m aegen`` (and ``torchrun -m aegen``) run the command line."""

from .cli import entry

code = entry()
# imported after entry(): it loads torch, which must start after the threads are chosen
from .distributed import exit_process  # noqa: E402

exit_process(code)
