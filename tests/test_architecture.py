"""The layers of docs/architecture.md, checked on the source: imports point one way only.

Every module of ``src/aegen`` is parsed with ``ast`` (nothing is imported, so a
late import inside a function counts as much as one at the top) and each import
of an aegen module is checked against the layer table below: a module may import
its own layer and the layers under it, never one above. ``importlib.import_module``
calls with a literal "aegen.…" name count as imports too. Two more rules:

- no module imports another module's private (``_name``) helpers;
- no module imports the package itself (``aegen/__init__.py`` re-exports the
  public API; it sits on top so that nothing inside depends on it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module's layer is that of the longest prefix that names it.
LAYERS: list[tuple[str, ...]] = [
    (  # 0: foundations, the data sets and file formats
        "aegen.errors",
        "aegen.version",
        "aegen.files",
        "aegen.config",
        "aegen.registry",
        "aegen.distributed",
        "aegen.threads",
        "aegen.nn",
        "aegen.prob",
        "aegen.quantize",
        "aegen.latent",
        "aegen.data",
    ),
    ("aegen.models", "aegen.priors"),  # 1: the networks
    (  # 2: training loops, checkpoints and run directories of single models
        "aegen.train",
        "aegen.runlog",
        "aegen.checkpoint",
        "aegen.prior_runs",
        "aegen.phased",
    ),
    ("aegen.eval", "aegen.viz"),  # 3: scores, plots, the report
    (  # 4: jobs over directories: a run end to end, classifiers, pipelines, benchmarks
        "aegen.runs",
        "aegen.classify",
        "aegen.pipelines",
        "aegen.plane",
        "aegen.bench",
        "aegen.explore",
    ),
    ("aegen.commands",),  # 5: argument parsing
    ("aegen.cli", "aegen.__main__", "aegen"),  # 6: the entry points and the public API
]

# (importer, imported) pairs allowed against the layers; none today.
ALLOWED: set[tuple[str, str]] = set()


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    if rank is None:
        raise AssertionError(f"{module} is in no layer; add it to LAYERS and docs/architecture.md")
    return rank


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "aegen").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = modules()


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported aegen module or module.name, line) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "aegen"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(module, path).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "aegen":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((sub if sub in MODULES else f"{target}.{a.name}", node.lineno))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("aegen.")
        ):
            found.append((str(node.args[0].value), node.lineno))
    return found


def split_target(target: str) -> tuple[str, str | None]:
    """("aegen.x.y", None) for a module, ("aegen.x", "name") for a name imported from one."""
    if target in MODULES:
        return target, None
    mod, _, name = target.rpartition(".")
    return mod, name


def violations(module: str, path: Path) -> list[str]:
    rank = layer_of(module)
    bad = []
    for target, line in imports_of(module, path):
        mod, name = split_target(target)
        where = f"{path.relative_to(SRC) if path.is_relative_to(SRC) else path}:{line}"
        allowed = (module, mod) in ALLOWED or (module, target) in ALLOWED
        if allowed:
            continue
        if mod == "aegen" and module != "aegen":
            bad.append(f"{where}: imports the package aegen itself ({target})")
            continue
        if layer_of(mod) > rank:
            bad.append(f"{where}: {module} (layer {rank}) imports {mod} (layer {layer_of(mod)})")
        if name and name.startswith("_") and not name.startswith("__") and mod != module:
            bad.append(f"{where}: imports the private {name} from {mod}")
    return bad


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    assert violations(module, MODULES[module]) == []


def test_the_check_catches_an_upward_import(tmp_path):
    """A model importing the trainer, an eval module importing a pipeline, a private name
    across modules and a literal importlib name are each reported."""
    p = tmp_path / "m.py"
    p.write_text(
        "import importlib\n"
        "from ..train import Trainer\n"
        "from ..eval.report import _caption\n"
        "importlib.import_module('aegen.pipelines.vq_prior')\n"
    )
    found = violations("aegen.models.fake", p)
    assert len(found) == 4, found  # the private name from eval is against the direction too
    assert any("aegen.train" in f for f in found)
    assert any("private _caption" in f for f in found)
    assert any("aegen.pipelines.vq_prior" in f for f in found)
    p.write_text("from ...commands.demo import run\n")
    assert violations("aegen.eval.sub.fake", p), "eval → commands must be refused"


def test_architecture_doc_names_every_folder():
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    folders = {p.name for p in (SRC / "aegen").iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(f for f in folders if f"{f}/" not in doc)
    assert not missing, f"docs/architecture.md does not name {missing}"
