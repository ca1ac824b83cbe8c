"""One self-contained HTML page about one or more runs: ``aegen report RUN_DIR... --out r.html``.

The page holds one table comparing the runs' scores side by side (the best
value of each row marked) and, per run, its configuration, loss curves and
every picture in its ``samples/`` folder (reconstructions beside originals,
sample grids, latent plots, interpolations — whatever the run wrote). Images
are embedded as ``data:`` URIs and a Content-Security-Policy forbids every
other source, so the file opens anywhere, offline, and asks no server for
anything.

Scores are compared only where they measure the same thing: sample scores
must come from the same feature network (its SHA-256), the same number of
samples and the same data; reconstruction and likelihood scores from the same
test images. A row whose runs differ so gets no "best" mark and a warning that
says why; ``strict=True`` refuses to build such a report instead.

A prior's samples are shown beside their *ceiling*: its VQ-VAE's own test
reconstructions scored as samples (``aegen pipeline vqvae`` writes it into the
VQ-VAE's metrics.json), so the page tells whether the prior or the decoder holds
the samples back. A VQ pipeline directory stands for its ``vqvae/`` and ``prior/``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..checkpoint import CONFIG, load_config
from ..errors import CheckpointError, UserError
from ..files import atomic_write_text
from ..runlog import read_metrics
from ..version import __version__
from ..viz import plot_curves
from .metrics import METRICS_JSON, check_metrics, read_metrics_json

__all__ = [
    "ROWS",
    "IncomparableScores",
    "MetricRow",
    "RunSummary",
    "build_report",
    "collect_run",
    "comparison_problems",
    "data_uri",
    "page_head",
    "render_report",
    "run_directories",
    "run_section",
    "scores_html",
    "vqvae_ceiling",
    "write_report",
]


class IncomparableScores(UserError):
    """Scores of different runs that do not measure the same thing were to be compared."""


@dataclass(frozen=True)
class MetricRow:
    section: str
    key: str
    label: str
    better: str  # "min" or "max"
    fmt: str  # format spec of the value
    spread: str | None = None  # key of a ± value shown beside it


ROWS: list[MetricRow] = [
    MetricRow("reconstruction", "mse", "MSE", "min", ".5f"),
    MetricRow("reconstruction", "psnr", "PSNR (dB)", "max", ".2f"),
    MetricRow("reconstruction", "ssim", "SSIM", "max", ".4f"),
    MetricRow("samples", "fid", "FID", "min", ".3f"),
    MetricRow("samples", "kid_mean", "KID", "min", ".4g", spread="kid_std"),
    MetricRow("samples", "precision", "precision", "max", ".3f"),
    MetricRow("samples", "recall", "recall", "max", ".3f"),
    MetricRow("ceiling", "fid", "FID", "min", ".3f"),
    MetricRow("ceiling", "kid_mean", "KID", "min", ".4g", spread="kid_std"),
    MetricRow("ceiling", "precision", "precision", "max", ".3f"),
    MetricRow("ceiling", "recall", "recall", "max", ".3f"),
    MetricRow("class_accuracy", "mean", "classified as their label", "max", ".3f"),
    MetricRow("class_accuracy", "test_accuracy", "test images classified right", "max", ".3f"),
    MetricRow("likelihood", "nll_nats", "NLL (nats/image)", "min", ".2f"),
    MetricRow("likelihood", "bits_per_dim", "bits/dim", "min", ".4f"),
    MetricRow("likelihood", "bits_per_code", "bits/code", "min", ".4f"),
]

SECTION_TITLES = {
    "reconstruction": "Reconstruction of the test images",
    "samples": "Samples, on domain features",
    "ceiling": "Ceiling: the VQ-VAE's own test reconstructions scored as samples "
    "(what a perfect prior would reach)",
    "class_accuracy": "Class accuracy: samples drawn for a label (the test images for scale)",
    "likelihood": "Likelihood of the test images",
}

# What must agree for two runs' scores of a section to be compared.
_SAME = {
    "reconstruction": (("split",), ("n",), ("data", "fingerprint")),
    "samples": (
        ("features", "sha256"),
        ("n_samples",),
        ("n_real",),
        ("data", "fingerprint"),
    ),
    "likelihood": (("n",), ("importance_samples",), ("data", "fingerprint")),
    "class_accuracy": (("features", "sha256"), ("n_per_class",), ("data", "fingerprint")),
}
_SAME["ceiling"] = _SAME["samples"]
_WHAT = {
    ("features", "sha256"): "feature networks",
    ("n_samples",): "sample counts",
    ("n_real",): "numbers of test images",
    ("data", "fingerprint"): "data",
    ("split",): "splits",
    ("n",): "numbers of test images",
    ("importance_samples",): "numbers of importance samples",
    ("n_per_class",): "samples per class",
}

# pictures first in this order, then the rest by name
_PICTURE_ORDER = ["reconstructions", "samples", "scored_samples", "interpolation", "latent"]


@dataclass
class RunSummary:
    """What the report shows of one run directory."""

    directory: Path
    label: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, str]]
    pictures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable pictures, named on the page


def _read_metrics(d: Path) -> dict[str, Any]:
    p = d / METRICS_JSON
    if not p.is_file():
        return {}
    try:
        metrics = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: unreadable ({type(e).__name__})") from None
    return check_metrics(metrics, str(p))


def _picture_rank(p: Path) -> tuple[int, str]:
    for i, prefix in enumerate(_PICTURE_ORDER):
        if p.stem.startswith(prefix):
            return i, p.name
    return len(_PICTURE_ORDER), p.name


def _readable_png(p: Path) -> bool:
    try:
        with Image.open(p) as img:
            img.verify()
            return img.format == "PNG"
    except Exception:  # noqa: BLE001 - any failure to decode means "do not embed it"
        return False


def vqvae_ceiling(prior_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The ``ceiling`` section of the VQ-VAE a prior run was trained with
    (:func:`aegen.prior_runs.find_vqvae`: the first of them that holds one), or None."""
    from ..prior_runs import find_vqvae

    for d in find_vqvae(prior_dir, config):
        ceiling = read_metrics_json(d).get("ceiling")
        if isinstance(ceiling, dict):
            return {**ceiling, "vqvae_run": str(d)}
    return None


def collect_run(run_dir: str | os.PathLike, label: str | None = None) -> RunSummary:
    """Read a run directory for the report; a missing or corrupt one is a CheckpointError.

    A prior run without a ``ceiling`` of its own shows its VQ-VAE's (:func:`vqvae_ceiling`).
    """
    d = Path(run_dir)
    config = load_config(d)
    metrics = _read_metrics(d)
    if config.get("family") == "prior" and "ceiling" not in metrics:
        if (ceiling := vqvae_ceiling(d, config)) is not None:
            metrics = {**metrics, "ceiling": ceiling}
    history = read_metrics(d / "metrics.csv")
    pictures, skipped = [], []
    samples = d / "samples"
    if samples.is_dir():
        for p in sorted(samples.glob("*.png"), key=_picture_rank):
            if _readable_png(p):
                pictures.append(p)
            else:
                skipped.append(p.name)
    return RunSummary(d, label or d.name, config, metrics, history, pictures, skipped)


def _get(section: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = section
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def comparison_problems(runs: list[RunSummary], section: str) -> list[str]:
    """Why the runs' ``section`` scores may not be compared (empty when they may)."""
    present = [r for r in runs if section in r.metrics]
    problems = []
    for path in _SAME.get(section, ()):
        groups: dict[str, list[str]] = {}
        for r in present:
            value = _get(r.metrics[section], path)
            shown = str(value)[:12] if value is not None else "unrecorded"
            groups.setdefault(shown, []).append(r.label)
        if len(groups) > 1:
            detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items())
            problems.append(
                f"{SECTION_TITLES[section].split(',')[0]}: different {_WHAT[path]} ({detail})"
            )
    return problems


def _value(run: RunSummary, row: MetricRow) -> float | None:
    v = run.metrics.get(row.section, {}).get(row.key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _best(values: list[float | None], better: str) -> set[int]:
    finite = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return set()
    target = (min if better == "min" else max)(v for _, v in finite)
    best = {i for i, v in finite if v == target}
    return best if len(best) < len(finite) else set()  # a tie of all is no winner


@dataclass
class TableRow:
    row: MetricRow
    cells: list[str]
    best: set[int]
    comparable: bool


def comparison_table(runs: list[RunSummary]) -> tuple[list[TableRow], list[str]]:
    """The rows of the metrics table (only those some run has) and the warnings under it.

    Comparability is judged per row, among the runs that have a value in it: a
    VAE's nats and a prior's bits/code sit in different rows and never clash.
    """
    rows, warnings = [], []
    for row in ROWS:
        values = [_value(r, row) for r in runs]
        if all(v is None for v in values):
            continue
        cells = []
        for r, v in zip(runs, values, strict=True):
            if v is None:
                cells.append("—")
                continue
            text = format(v, row.fmt)
            spread = r.metrics[row.section].get(row.spread) if row.spread else None
            if isinstance(spread, (int, float)):
                text += f" ± {format(spread, '.2g')}"
            cells.append(text)
        having = [r for r, v in zip(runs, values, strict=True) if v is not None]
        problems = comparison_problems(having, row.section)
        warnings += [p for p in problems if p not in warnings]
        rows.append(
            TableRow(row, cells, set() if problems else _best(values, row.better), not problems)
        )
    for r in runs:
        for w in _ceiling_problems(r):
            if w not in warnings:
                warnings.append(w)
    return rows, warnings


def _ceiling_problems(run: RunSummary) -> list[str]:
    """Why a run's samples may not be read against its ceiling (empty when they may)."""
    samples, ceiling = run.metrics.get("samples"), run.metrics.get("ceiling")
    if not (isinstance(samples, dict) and isinstance(ceiling, dict)):
        return []
    return [
        f"{run.label}: its samples and its ceiling were scored with different {_WHAT[path]}"
        for path in _SAME["samples"]
        if _get(samples, path) != _get(ceiling, path)
    ]


def _info_rows(runs: list[RunSummary]) -> list[tuple[str, list[str]]]:
    """Rows saying how the scores were made: model, sample counts, seeds, feature network."""

    def cell(r: RunSummary, *path: str, fmt=str) -> str:
        v = _get(r.metrics, path)
        return fmt(v) if v is not None else "—"

    def fnet(r: RunSummary) -> str:
        f = _get(r.metrics, ("samples", "features"))
        if not isinstance(f, dict):
            return "—"
        acc = f.get("test_accuracy")
        acc_text = f", {100 * acc:.1f}% test accuracy" if isinstance(acc, (int, float)) else ""
        return f"{str(f.get('sha256', ''))[:12]}{acc_text}"

    rows = [
        ("model", [f"{r.config.get('model', '?')} ({r.config.get('family', '?')})" for r in runs]),
        ("epochs trained", [str(len(r.history)) if r.history else "—" for r in runs]),
        ("test images (reconstruction)", [cell(r, "reconstruction", "n") for r in runs]),
        ("samples scored / test images", [
            f"{cell(r, 'samples', 'n_samples')} / {cell(r, 'samples', 'n_real')}"
            if "samples" in r.metrics else "—" for r in runs
        ]),
        ("feature network", [fnet(r) for r in runs]),
        ("ceiling of the VQ-VAE run", [
            Path(str(_get(r.metrics, ("ceiling", "vqvae_run")))).name
            if _get(r.metrics, ("ceiling", "vqvae_run")) else "—" for r in runs
        ]),
        ("evaluation seed", [cell(r, "eval", "seed") for r in runs]),
    ]  # fmt: skip
    return [(name, cells) for name, cells in rows if any(c != "—" for c in cells)]


# --------------------------------------------------------------------------- HTML


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the page embeds its pictures and fetches nothing."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _loss_pictures(run: RunSummary, tmp: Path, index: int) -> list[tuple[str, bytes]]:
    """Loss curves drawn from metrics.csv: the total loss, and the other logged terms."""
    rows = run.history
    if not rows:
        return []
    x = "index" if any(r.get("phase") for r in rows) else "epoch"
    out = []
    loss_keys = [k for k in ("train_loss", "val_loss") if any(r.get(k) for r in rows)]
    if loss_keys:
        path = plot_curves(tmp / f"loss{index}.png", rows, loss_keys, x=x, title="loss")
        out.append(("loss per epoch (training and validation)", path.read_bytes()))
    terms = sorted(
        k
        for k in rows[0]
        if k.startswith("val_") and k != "val_loss" and any(r.get(k) for r in rows)
    )
    if terms:
        positive = all(float(r[k]) > 0 for r in rows for k in terms if r.get(k))
        path = plot_curves(
            tmp / f"terms{index}.png", rows, terms, x=x, title="validation terms", logy=positive
        )
        out.append(("validation loss terms per epoch", path.read_bytes()))
    return out


def _caption(p: Path) -> str:
    names = {
        "reconstructions": "test images (odd rows) and their reconstructions (even rows)",
        "samples": "samples from the model",
        "scored_samples": "the first samples scored by aegen eval",
    }
    return names.get(p.stem, p.stem.replace("_", " "))


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1280px; padding: 0 1em;
       color: #1d1d1f; }
h1 { margin-bottom: .2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccd; padding: .3em .7em; text-align: right; }
th:first-child { text-align: left; } thead th { background: #eef; }
tr.group th { background: #f6f6fa; text-align: left; font-weight: 600; }
td.best { background: #d9f2d9; font-weight: 700; }
td.best::after { content: " \\2605"; color: #1a7f1a; }
tr.incomparable td { background: #fff4e0; }
tr.info td, tr.info th { color: #555; font-size: 90%; }
.better { color: #777; font-size: 85%; }
.warnings { background: #fff4e0; border-left: 4px solid #e69500; padding: .6em 1.2em; }
section.run { border-top: 2px solid #dde; margin-top: 2em; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
figure { margin: 0; max-width: 610px; } figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #eee; }
figcaption { color: #555; font-size: 90%; max-width: 560px; }
p.config { font-family: ui-monospace, monospace; font-size: 85%; color: #333; }
pre { background: #f6f6fa; padding: .8em; overflow-x: auto; font-size: 85%; }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def page_head(title: str, meta: str) -> list[str]:
    """The page's head (the CSP, the style) and its title; ``meta`` is HTML."""
    e = html.escape
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{meta}</p>',
    ]


def scores_html(
    runs: list[RunSummary], strict: bool = False, table_id: str = "metrics"
) -> list[str]:
    """The table of the runs' scores side by side, the best of each comparable row marked,
    followed by the box that says which rows were not compared and why."""
    rows, warnings = comparison_table(runs)
    if strict and warnings:
        raise IncomparableScores("scores not comparable: " + "; ".join(warnings))
    e = html.escape
    out = [f'<table id="{table_id}"><thead><tr><th>score</th><th class="better">better</th>']
    out += [f'<th scope="col">{e(r.label)}</th>' for r in runs]
    out.append("</tr></thead><tbody>")
    section = None
    for tr in rows:
        if tr.row.section != section:
            section = tr.row.section
            out.append(
                f'<tr class="group"><th colspan="{len(runs) + 2}">{e(SECTION_TITLES[section])}</th></tr>'
            )
        cls = "" if tr.comparable else ' class="incomparable"'
        arrow = "↓ lower" if tr.row.better == "min" else "↑ higher"
        out.append(
            f'<tr{cls} data-metric="{tr.row.section}.{tr.row.key}"><th>{e(tr.row.label)}</th>'
            f'<td class="better">{arrow}</td>'
        )
        for i, text in enumerate(tr.cells):
            out.append(f"<td{' class=best' if i in tr.best else ''}>{e(text)}</td>")
        out.append("</tr>")
    if not rows:
        out.append(
            f'<tr><td colspan="{len(runs) + 2}">no scores yet: run <code>aegen eval RUN_DIR</code></td></tr>'
        )
    info = _info_rows(runs)
    if info:
        out.append(
            f'<tr class="group"><th colspan="{len(runs) + 2}">How they were measured</th></tr>'
        )
        for name, cells in info:
            out.append(f'<tr class="info"><th>{e(name)}</th><td></td>')
            out += [f"<td>{e(c)}</td>" for c in cells]
            out.append("</tr>")
    out.append("</tbody></table>")
    if warnings:
        box_id = "incomparable" if table_id == "metrics" else f"{table_id}-incomparable"
        out.append(f'<div class="warnings" id="{box_id}"><strong>Not compared:</strong><ul>')
        out += [f"<li>{e(w)}</li>" for w in warnings]
        out.append("</ul>Those rows carry no ★. To compare them, run <code>aegen eval</code> on "
                   "every run with the same data, <code>--features</code> and <code>--n</code>.</div>")  # fmt: skip
    return out


def render_report(runs: list[RunSummary], title: str = "aegen report", strict: bool = False) -> str:
    """The whole page as one string."""
    if not runs:
        raise UserError("give at least one run directory")
    e = html.escape
    meta = (
        f"{len(runs)} run{'s' if len(runs) != 1 else ''} · aegen {e(__version__)} · "
        "★ marks the best value of a row among scores that measure the same thing"
    )
    out = page_head(title, meta)
    out.append('<section id="comparison"><h2>Scores</h2>')
    out += scores_html(runs, strict)
    out.append("</section>")

    with tempfile.TemporaryDirectory(prefix="aegen-report-") as tmp:
        for i, run in enumerate(runs):
            out += run_section(run, i, Path(tmp))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def run_section(run: RunSummary, index: int, tmp: Path, level: int = 2) -> list[str]:
    """One run: its settings, loss curves and every picture in its ``samples/``."""
    e = html.escape
    cfg = run.config
    out = [
        f'<section class="run" id="run-{index + 1}"><h{level}>{e(run.label)}</h{level}>',
        f'<p class="meta">{e(str(run.directory))} · {e(str(cfg.get("model", "?")))} '
        f"({e(str(cfg.get('family', '?')))})</p>",
        f'<p class="config">{e(_config_line(cfg))}</p>',
        "<details><summary>full configuration</summary><pre>"
        + e(json.dumps(cfg, indent=2))
        + "</pre></details>",
        '<div class="figures">',
    ]
    pictures = _loss_pictures(run, tmp, index)
    pictures += [(_caption(p), p.read_bytes()) for p in run.pictures]
    for caption, png in pictures:
        out.append(
            f'<figure><img src="{data_uri(png)}" alt="{e(caption)}">'
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    if not pictures:
        out.append("<p>no pictures in this run directory</p>")
    out.append("</div>")
    if run.skipped:
        out.append(
            f'<p class="warnings">unreadable pictures left out: {e(", ".join(run.skipped))}</p>'
        )
    out.append("</section>")
    return out


def _config_line(cfg: dict[str, Any]) -> str:
    """The settings that tell runs apart, on one line."""

    def flat(d: Any) -> str:
        if not isinstance(d, dict):
            return ""
        return ", ".join(f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in d.items())

    train = cfg.get("train", {}) if isinstance(cfg.get("train"), dict) else {}
    keys = ("epochs", "batch_size", "lr", "seed")
    data = cfg.get("data", {}) if isinstance(cfg.get("data"), dict) else {}
    parts = [
        f"model: {flat(cfg.get('model_config'))}",
        "train: " + ", ".join(f"{k}={train[k]}" for k in keys if k in train),
        f"data: {data.get('name', '?')}"
        + (f" (first {data['limit']})" if data.get("limit") else ""),
    ]
    return " · ".join(p for p in parts if not p.endswith(": "))


def _labels(dirs: list[Path]) -> list[str]:
    """Short distinct names: the directory names, or more of the path where they clash."""
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d) for d in dirs]


def build_report(
    run_dirs: list[str | os.PathLike], title: str = "aegen report", strict: bool = False
) -> str:
    """Read the run directories and render the page (nothing is written)."""
    dirs = run_directories(run_dirs)
    runs = [collect_run(d, label) for d, label in zip(dirs, _labels(dirs), strict=True)]
    return render_report(runs, title, strict)


def run_directories(paths: list[str | os.PathLike]) -> list[Path]:
    """The run directories ``paths`` name: a VQ pipeline directory (``aegen pipeline
    vqvae``: no config.json of its own, a ``vqvae/`` run inside) is its VQ-VAE and its prior."""
    out = []
    for p in map(Path, paths):
        if not (p / CONFIG).is_file() and (p / "vqvae" / CONFIG).is_file():
            out += [p / "vqvae"] + ([p / "prior"] if (p / "prior" / CONFIG).is_file() else [])
        else:
            out.append(p)
    return out


def write_report(
    run_dirs: list[str | os.PathLike],
    out: str | os.PathLike,
    title: str = "aegen report",
    strict: bool = False,
) -> Path:
    """Build the report and write it to ``out`` atomically."""
    page = build_report(run_dirs, title, strict)
    atomic_write_text(out, page)
    return Path(out)
