"""Sample quality against CPU-minutes of training, the VAE and each VQ-VAE prior (JSON).

    .venv/bin/python bench/time_to_quality.py --out OUT --vqvae VQVAE_RUN
        [--models vae-mlp,prior:transformer,prior:pixelcnn,prior:pixelrnn,prior:maskgit]
        [--epochs 1,2,4,8] [--data fashion-mnist] [--eval-n 10000] [--seed 0]
        [--features DIR] [--set MODEL.SECTION.KEY=V ...] [--threads N] [--json FILE]

Rows go to OUT/rows.jsonl as each checkpoint is scored (a rerun skips them), the plot
to OUT/fid_vs_cpu_minutes.png. See aegen.bench.time_to_quality; docs/vqvae.md,
"Quality per CPU-minute". The process is prepared as the ``aegen`` command prepares
its own (threads chosen from the idle cores, OpenMP's passive wait, denormals
flushed), so the minutes are those ``aegen train`` would spend.
"""

import sys

from aegen import threads
from aegen.errors import UserError


def _threads_flag(argv: list[str]) -> int | None:
    """``--threads N`` (removed from ``argv``), read before torch is imported."""
    if "--threads" not in argv:
        return None
    i = argv.index("--threads")
    value = argv[i + 1] if i + 1 < len(argv) else ""
    del argv[i : i + 2]
    if not value.isdigit() or int(value) < 1:
        print(f"error: --threads takes a positive number, got {value!r}", file=sys.stderr)
        sys.exit(2)
    return int(value)


if __name__ == "__main__":
    argv = sys.argv[1:]
    try:
        choice = threads.prepare_process(_threads_flag(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    from aegen.cli import flush_denormals

    threads.record_flush(flush_denormals())
    threads.apply(choice)
    from aegen.bench.time_to_quality import main

    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
