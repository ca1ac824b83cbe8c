"""The whole benchmark suite: .venv/bin/python bench/run.py [--quick] [--json OUT]

Same as ``aegen bench``; see ``aegen.bench.suite`` for the cases and docs/performance.md
for a full run's table.
"""

import sys

from aegen.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
