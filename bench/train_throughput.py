"""images/s of aegen's Trainer vs a bare PyTorch loop over the same model and batch (JSON).

.venv/bin/python bench/train_throughput.py [--models ae-mlp,ae-conv] [--json out.json]
"""

from aegen.bench.trainer_overhead import main

if __name__ == "__main__":
    main()
