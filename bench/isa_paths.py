"""Which speed switches pay on this CPU: each model's training with one switch flipped (JSON).

    .venv/bin/python bench/isa_paths.py [--models vqvae,ae-conv] [--steps 30] [--repeats 3] [--compile]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/isa_paths.py ...  # the AVX2 kind

See aegen.bench.isa_paths; docs/performance.md has the numbers and the decisions.
"""

from aegen.bench.isa_paths import main

if __name__ == "__main__":
    main()
