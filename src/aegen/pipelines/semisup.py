"""The semi-supervised grid: how much do unlabeled images help, and when?

For each autoencoder (MLP and convolutional by default) the grid trains the AE
once on every training image, without labels, then trains classifiers for every
label fraction × seed × column, where a column is a mode and head:

    probe       frozen encoder, linear head
    probe-mlp   frozen encoder, MLP head
    finetune    encoder and MLP head from the AE's weights
    scratch     the same architecture from a random start (the baseline)
    joint       finetune + the AE's own loss on all training images
    consistency finetune + FixMatch-style pseudo-labels on augmented unlabeled images
    m2          Kingma et al.'s semi-supervised VAE, which needs no AE: its cells
                are run once per fraction and seed, under the model name "m2"

(The trained columns use the MLP head: the code layer of both AEs is linear, so
a linear head on it would add no depth; the two heads compared: docs/semisup.md.)

Everything lands in one directory::

    grid.json               the settings every cell was run with (checked on resume)
    ae-mlp/, ae-conv/       the autoencoder run directories
    results.csv             one row per cell (test accuracy of the final weights, the
                            cell's wall-clock and CPU seconds)
    confusion.json          each cell's test confusion matrix
    results.md              mean ± std test accuracy per fraction and column
    accuracy_vs_labels.png  the same as curves
    confusion_best.png      the confusion matrix of the best cell

A killed grid resumes where it stopped: AE training resumes from its
checkpoint, and cells already in results.csv are skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CONFIG, MODEL, TRAIN_STATE, load, load_config, weights_hash
from ..classify import ClassifyConfig, FeatureSet, encode_features, train_classifier
from ..config import TrainConfig, from_dict, to_dict
from ..data.datasets import Dataset
from ..errors import UserError
from ..eval.metrics import read_metrics_json
from ..files import RunLock, atomic_write_csv, atomic_write_json, atomic_write_text, ensure_dir
from ..registry import entry
from ..runs import finish_run, make_run_config, train_run
from ..viz import save_confusion

__all__ = [
    "COLUMNS",
    "RECIPES",
    "Column",
    "Recipe",
    "markdown_table",
    "plot_accuracy",
    "read_results",
    "run_semisup",
    "summarize",
]


@dataclass(frozen=True)
class Column:
    """One way of training a classifier: a mode and a head."""

    name: str
    mode: str
    head: str


COLUMNS = (
    Column("probe", "probe", "linear"),
    Column("probe-mlp", "probe", "mlp"),
    Column("finetune", "finetune", "mlp"),
    Column("scratch", "scratch", "mlp"),
    Column("joint", "joint", "mlp"),
    Column("consistency", "consistency", "mlp"),
    Column("m2", "m2", "mlp"),  # the head is M2's own classifier; "mlp" names its shape
)
AE_COLUMNS = tuple(c.name for c in COLUMNS if c.mode != "scratch")
M2_MODEL = "m2"  # the model name of m2 cells: they use no autoencoder


@dataclass(frozen=True)
class Recipe:
    """How the grid trains one autoencoder, and the speed switches its classifiers use.

    bf16 autocast doubled the conv AE's and its encoder's throughput on this CPU
    (600 → 1500 images/s for the AE, 1900 → 3800 for the encoder); the MLP gains
    less but still some.
    """

    model: str
    overrides: tuple[str, ...] = ()
    epochs: int = 10
    amp: str = "auto"
    channels_last: bool = False


RECIPES = {
    "ae-mlp": Recipe("ae-mlp", ("model.code_dim=64", "train.amp=auto", "train.lr=2e-3"), 20),
    # twice the library default's width: with all labels the default width's encoder
    # reached 89.8 % and this one 91.0 % (8 epochs, weak augmentation, docs/semisup.md);
    # lr 2e-3 left this width's AE at the mean image, 1e-3 (the default) trains it
    "ae-conv": Recipe(
        "ae-conv",
        (
            "model.code_dim=64",
            "model.channels=64,128",
            "train.amp=auto",
            "train.channels_last=true",
        ),
        8,
        channels_last=True,
    ),
}

RESULT_FIELDS = [
    "model",
    "column",
    "mode",
    "head",
    "fraction",
    "seed",
    "n_labeled",
    "test_acc",
    "val_acc",
    "steps",
    "seconds",
    "cpu_seconds",
]


def _key(model: str, column: str, fraction: float, seed: int) -> tuple[str, str, str, int]:
    return (model, column, f"{float(fraction):g}", int(seed))


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results.csv with numbers parsed (an absent file has none)."""
    p = Path(path)
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        for r in rows:
            r["fraction"] = float(r["fraction"])
            r["seed"] = int(r["seed"])
            r["n_labeled"] = int(r["n_labeled"])
            r["steps"] = int(r["steps"])
            for k in ("test_acc", "val_acc", "seconds"):
                r[k] = float(r[k])
            # grids written before CPU time was recorded have no such column
            r["cpu_seconds"] = float(r.get("cpu_seconds") or "nan")
    except (KeyError, ValueError) as e:
        raise UserError(
            f"{p}: not a results file of this grid ({e}); choose another --out"
        ) from None
    return rows


def _write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_csv(path, rows, RESULT_FIELDS)


# --------------------------------------------------------------------------- summaries


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def summarize(rows: list[dict[str, Any]]) -> dict[tuple[str, str, float], tuple[float, float, int]]:
    """(model, column, fraction) → (mean, sample std, number of seeds) of test accuracy."""
    groups: dict[tuple[str, str, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["column"], r["fraction"]), []).append(r["test_acc"])
    return {k: (*_mean_std(v), len(v)) for k, v in groups.items()}


def _cell(s: tuple[float, float, int] | None) -> str:
    if s is None:
        return "–"
    if s[2] == 1:  # one seed has no spread to show
        return f"{100 * s[0]:.2f}"
    return f"{100 * s[0]:.2f} ± {100 * s[1]:.2f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One table per model: rows are label fractions, columns the modes, cells mean ± std (%)."""
    stats = summarize(rows)
    labeled = {(r["model"], r["fraction"]): r["n_labeled"] for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = [
        "Test accuracy (%), mean ± sample std over seeds (one seed: no ±); final weights, "
        "no early stopping.",
        "",
    ]
    for model in models:
        cols = [c.name for c in COLUMNS if any(k[:2] == (model, c.name) for k in stats)]
        fracs = sorted({k[2] for k in stats if k[0] == model})
        out.append(f"### {model}")
        out.append("")
        out.append("| labels | seeds | " + " | ".join(cols) + " | best AE-based − scratch |")
        out.append("|---" * (len(cols) + 3) + "|")
        for f in fracs:
            cells, best, seeds = [], None, set()
            for c in cols:
                s = stats.get((model, c, f))
                cells.append(_cell(s))
                if s:
                    seeds.add(s[2])
                if s and c in AE_COLUMNS and (best is None or s[0] > best):
                    best = s[0]
            scratch = stats.get((model, "scratch", f))
            gap = f"{100 * (best - scratch[0]):+.2f}" if best is not None and scratch else "–"
            n = labeled[(model, f)]
            name = f"{f:.0%} ({n})" if f >= 0.01 else f"{f:g} ({n})"
            count = "–".join(map(str, sorted(seeds)))
            out.append(f"| {name} | {count} | " + " | ".join(cells) + f" | {gap} |")
        out.append("")
        out.extend(_cpu_table(rows, model, cols, fracs))
    return "\n".join(out)


def _cpu_table(rows: list[dict[str, Any]], model: str, cols: list[str], fracs: list[float]):
    """Lines of a table of mean CPU minutes per cell (process CPU time, all threads)."""
    cpu: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        if r["model"] == model and not math.isnan(r.get("cpu_seconds", math.nan)):
            cpu.setdefault((r["column"], r["fraction"]), []).append(r["cpu_seconds"])
    if not cpu:
        return []
    out = [
        f"CPU minutes per cell of {model} (process CPU time over all threads, mean over seeds):",
        "",
        "| labels | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for f in fracs:
        cells = [f"{sum(v) / len(v) / 60:.1f}" if (v := cpu.get((c, f))) else "–" for c in cols]
        out.append(f"| {f:g} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def plot_accuracy(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Test accuracy against the labeled fraction (log scale), one panel per model."""
    from ..viz import figure, save_figure

    stats = summarize(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig = figure(5.5 * len(models), 4.5)
    axes = [fig.add_subplot(1, len(models), i + 1) for i in range(len(models))]
    for ax, model in zip(axes, models, strict=True):
        for c in COLUMNS:
            pts = sorted((k[2], v) for k, v in stats.items() if k[:2] == (model, c.name))
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ax.errorbar(
                xs,
                [100 * p[1][0] for p in pts],
                yerr=[100 * p[1][1] for p in pts],
                marker="o",
                ms=4,
                capsize=3,
                label=c.name,
                linestyle="--" if c.mode == "scratch" else "-",
            )
        ax.set_xscale("log")
        ax.set_xlabel("fraction of training labels")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- the grid


def _settings(data: Dataset, recipes: dict[str, Recipe], base: ClassifyConfig) -> dict[str, Any]:
    return {
        "data": data.name,
        "data_fingerprint": data.fingerprint(),
        "models": {name: dataclasses.asdict(r) for name, r in recipes.items()},
        "classify": to_dict(base),
    }


def _check_settings(path: Path, new: dict[str, Any]) -> None:
    """A grid directory may only be resumed with the settings its cells were run with."""
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e}); choose another --out") from None
    stored = json.loads(json.dumps(new))  # tuples → lists, as stored
    old = {**old, "classify": _as_config(old.get("classify"))}
    for key in ("data_fingerprint", "classify"):
        if old.get(key) != stored[key]:
            what = "data" if key == "data_fingerprint" else "classifier settings"
            raise UserError(
                f"{path.parent} holds a grid run with other {what}; choose another --out"
            )
    for name, recipe in stored["models"].items():
        if name in old.get("models", {}) and old["models"][name] != recipe:
            raise UserError(
                f"{path.parent} holds a grid whose {name} was trained differently; "
                "choose another --out"
            )


# classifier settings added after grids were stored, whose default is not what those
# grids ran with: a grid.json without the key ran with the value here
BEFORE_THE_SETTING = {"threshold_mode": "fixed"}  # the only bar until adaptive came


def _as_config(values: Any) -> Any:
    """Stored classifier settings through ClassifyConfig, so that a setting added to the
    library since (with its default, or with what older grids ran with where the default
    is not that: BEFORE_THE_SETTING) does not make an older grid look different."""
    if isinstance(values, dict):
        values = {**BEFORE_THE_SETTING, **values}
    try:
        return to_dict(from_dict(ClassifyConfig, values))
    except (TypeError, UserError):
        return values


def _same_training(stored: dict[str, Any], run) -> bool:
    """Whether a stored config.json trains as ``run`` would.

    Both sides go through their dataclasses, so a setting added to the library
    since (with its default) does not make an older run look different.
    """
    try:
        model_cfg = from_dict(entry(stored["model"], "model").config_cls, stored["model_config"])
        train_cfg = from_dict(TrainConfig, stored["train"])
    except (KeyError, TypeError, UserError):
        return False
    return to_dict(model_cfg) == to_dict(run.model_config) and to_dict(train_cfg) == to_dict(
        run.train
    )


def _train_encoder(out: Path, recipe: Recipe, data: Dataset, progress: bool):
    """Train (or resume, or reuse) the grid's autoencoder in ``out``; labels are never used."""
    run = make_run_config(
        recipe.model, data=data.name, overrides=list(recipe.overrides), epochs=recipe.epochs
    )
    if (out / TRAIN_STATE).is_file():
        if not _same_training(load_config(out), run):
            raise UserError(
                f"{out} holds an autoencoder trained with other settings; choose another --out"
            )
        if "reconstruction" in read_metrics_json(out):
            # finish_run wrote its test scores: training ran to its last epoch
            return load(out).eval()
        trained = train_run(None, out, resume=True, progress=progress, data=data)
    else:
        (out / CONFIG).unlink(missing_ok=True)  # a start that never reached a checkpoint
        trained = train_run(run, out, progress=progress, data=data)
    if "reconstruction" not in read_metrics_json(out):
        finish_run(trained)
    return trained.model.eval()


def run_semisup(
    out_dir: str | Path,
    data: Dataset,
    fractions: Sequence[float],
    seeds: int,
    models: Sequence[str] = ("ae-mlp", "ae-conv"),
    ae_epochs: int | None = None,
    base: ClassifyConfig | None = None,
    columns: Sequence[Column] = COLUMNS,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    pretrained: Mapping[str, str | Path] | None = None,
    first_seed: int = 0,
) -> list[dict[str, Any]]:
    """Run (or resume) the grid into ``out_dir``; return all result rows.

    ``base`` holds the classifier budget every cell shares (epochs, min_steps, …);
    each cell sets mode, head, labels and seed, and the model's speed switches.
    ``pretrained`` maps a model name to a finished AE run directory to use as that
    model's encoder instead of training one (the tour reuses its Part I conv AE);
    its weights' hash goes into grid.json in place of the recipe. The seeds are
    ``first_seed … first_seed + seeds - 1``.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    base = base or ClassifyConfig()
    for f in fractions:
        if not 0 < f <= 1:
            raise UserError(f"label fractions must be in (0, 1], got {f}")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    recipes = {}
    for name in models:
        entry(name, "model")  # unknown names fail here, before anything is written
        r = RECIPES.get(name, Recipe(name))
        recipes[name] = dataclasses.replace(r, epochs=ae_epochs) if ae_epochs else r
    for f in fractions:
        per_class = round(f * len(data.train) / data.num_classes)
        if f < 1 and per_class < 1:
            raise UserError(
                f"label fraction {f:g} leaves no image per class; use at least {data.num_classes / len(data.train):.2g}"
            )
    given = {m: Path(p) for m, p in (pretrained or {}).items()}
    out = ensure_dir(out_dir)
    settings = _settings(data, recipes, base)
    for m, p in given.items():
        settings["models"][m] = {"pretrained": weights_hash(p / MODEL)}
    results_path, confusion_path = out / "results.csv", out / "confusion.json"
    with RunLock(out):
        _check_settings(out / "grid.json", settings)
        old = json.loads((out / "grid.json").read_text()) if (out / "grid.json").is_file() else {}
        settings["models"] = {**old.get("models", {}), **settings["models"]}
        atomic_write_json(out / "grid.json", settings)
        rows = read_results(results_path)
        confusions = json.loads(confusion_path.read_text()) if confusion_path.is_file() else {}
        done = {_key(r["model"], r["column"], r["fraction"], r["seed"]) for r in rows}
        # seed-major order: a grid stopped part-way holds whole seeds, every fraction of them
        cells = [
            (m, c, f, s)
            for s in range(first_seed, first_seed + seeds)
            for m in models
            for f in sorted(fractions)
            for c in columns
            if c.mode != "m2"
        ]
        if any(c.mode == "m2" for c in columns):
            m2 = [c for c in columns if c.mode == "m2"]
            cells += [
                (M2_MODEL, c, f, s)
                for s in range(first_seed, first_seed + seeds)
                for f in sorted(fractions)
                for c in m2
            ]
        todo = [cell for cell in cells if _key(cell[0], cell[1].name, cell[2], cell[3]) not in done]
        log(f"semisup: {len(cells) - len(todo)} of {len(cells)} cells already done")
        encoders: dict[str, torch.nn.Module] = {}
        features: dict[str, FeatureSet] = {}
        for i, (m, col, f, s) in enumerate(todo, 1):
            recipe = recipes.get(m, Recipe(m, amp="off"))
            if col.mode != "m2" and m not in encoders:
                t0 = time.perf_counter()
                if m in given:
                    encoders[m] = load(given[m]).eval()
                else:
                    encoders[m] = _train_encoder(out / m, recipe, data, progress)
                log(f"semisup: {m} autoencoder ready ({time.perf_counter() - t0:.0f} s)")
            if col.mode == "probe" and m not in features:
                features[m] = encode_features(encoders[m], data, recipe.amp)
            cfg = dataclasses.replace(
                base,
                mode=col.mode,
                head=col.head,
                labels=f,
                seed=s,
                amp=recipe.amp,
                channels_last=recipe.channels_last,
            )
            res = train_classifier(encoders.get(m), data, cfg, features=features.get(m))
            rows.append(
                {
                    "model": m,
                    "column": col.name,
                    "mode": col.mode,
                    "head": col.head,
                    "fraction": float(f),
                    "seed": s,
                    "n_labeled": res.n_labeled,
                    "test_acc": res.test_acc,
                    "val_acc": res.val_acc,
                    "steps": res.steps,
                    "seconds": res.seconds,
                    "cpu_seconds": res.cpu_seconds,
                }
            )
            confusions["/".join(map(str, _key(m, col.name, f, s)))] = res.confusion.tolist()
            atomic_write_json(confusion_path, confusions)
            _write_results(results_path, rows)
            log(
                f"semisup: [{i}/{len(todo)}] {m} {col.name} labels {f:g} "
                f"({res.n_labeled}) seed {s}: test {res.test_acc:.2%} ({res.seconds:.0f} s, "
                f"{res.cpu_seconds:.0f} CPU s)"
            )
        write_report(out, rows, confusions, data.classes)
    return rows


def write_report(
    out: Path, rows: list[dict[str, Any]], confusions: dict[str, Any], classes: list[str]
) -> None:
    """results.md, accuracy_vs_labels.png and confusion_best.png from the result rows."""
    if not rows:
        return
    atomic_write_text(out / "results.md", markdown_table(rows) + "\n")
    plot_accuracy(out / "accuracy_vs_labels.png", rows)
    best = max(rows, key=lambda r: r["test_acc"])
    key = "/".join(map(str, _key(best["model"], best["column"], best["fraction"], best["seed"])))
    if key in confusions:
        title = (
            f"best cell: {best['model']} {best['column']}, labels {best['fraction']:g} "
            f"({best['n_labeled']}), seed {best['seed']}: {best['test_acc']:.2%}"
        )
        save_confusion(out / "confusion_best.png", torch.tensor(confusions[key]), classes, title)
