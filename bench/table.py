"""A benchmark report (JSON from ``aegen bench --json OUT``) as a Markdown table.

.venv/bin/python bench/table.py OUT.json
"""

import json
import sys


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return ""
    return f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def main(path: str) -> None:
    report = json.load(open(path))
    m = report["machine"]
    print(f"{m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
          f"bf16 {'yes' if m['bf16'] else 'no'}, ISA {' '.join(m.get('isa', [])) or 'unknown'}; load average at the end {m['load_average']}\n")  # fmt: skip
    print("| case | value | unit | baseline | ratio |")
    print("|---|---:|---|---:|---:|")
    for c in report["cases"]:
        ratio = f"**{c['ratio']:.3f}**" if c["ratio"] is not None else ""
        print(
            f"| `{c['name']}` | {_num(c['value'])} | {c['unit']} | {_num(c['baseline'])} | {ratio} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
