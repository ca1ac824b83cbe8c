"""Training alone and beside a busy process, aegen's threads vs the old behaviour (JSON).

    .venv/bin/python bench/contention.py [--data fashion-mnist] [--limit 12000] [--epochs 3] [--json OUT]

The ``contention/…`` cases of ``aegen bench`` on their own (about a minute on 2 cores).
"""

import argparse

from aegen.bench.contention import contention_cases
from aegen.bench.core import write_report

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--limit", type=int, default=12000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--model", default="ae-mlp")
    ap.add_argument("--json")
    a = ap.parse_args()
    cases = contention_cases(a.data, a.limit, a.epochs, a.model)
    write_report(cases, a.json, "aegen contention")
