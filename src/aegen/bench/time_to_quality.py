"""Sample quality against CPU-minutes of training: the VAE and each VQ-VAE prior (issue 22).

Every later change to a generator is judged by quality per minute, so this measures
it: each model is trained by *extending one run* through a schedule of epochs
(1, 2, 4, 8, …; ``aegen train --resume --epochs N``), and at each checkpoint it
records the training's cumulative CPU time and the samples' FID, KID and
precision/recall on the domain feature network (:func:`aegen.eval.evaluate.evaluate_run`,
``n`` samples against ``n`` test images). One row per (model, epochs)::

    {"model": "prior:transformer", "epochs": 4, "cpu_minutes": 3.1, "wall_minutes": 1.7,
     "fid": 41.2, "kid_mean": 0.031, "precision": 0.62, "recall": 0.41,
     "bits_per_code": 4.01, "steps": 1720, "interrupted": false, "torch_threads": 2}

Models: ``vae-mlp`` (any registered model that samples is taken) and
``prior:NAME`` for each registered prior (transformer, pixelcnn, pixelrnn, maskgit),
trained on the codes of one finished VQ-VAE run, encoded once into ``OUT/codes``.
A prior's images are its grids decoded by that VQ-VAE; ``bits_per_code`` is its
test NLL where it has one (a masked prior has none). The VQ-VAE's own test
reconstructions, scored like samples, are the priors' **ceiling** (computed once):
what a prior drawing the test set's own codes would reach.

What is counted
    ``cpu_minutes`` is the process's CPU time (``time.process_time``: every thread of
    this process) spent inside the training calls only, summed over the extensions;
    ``wall_minutes`` the same calls' wall-clock time. Everything else is not training
    and is not counted: loading the data, encoding the codes, drawing and scoring the
    samples, the prior's test NLL, writing rows and the plot. A prior's minutes leave
    out the VQ-VAE it needs (the ceiling section says how long that one trained, in
    wall minutes, from its checkpoint). Training includes what ``aegen train`` does
    in its loop: the validation pass each epoch and the checkpoints.

The learning-rate schedule across extensions
    Each extension takes the run's horizon to the new total (:func:`aegen.runs.
    extend_run_config`): from its next step on the run follows the schedule of a
    fresh N-epoch run. With the default cosine schedule, the checkpoint at N epochs
    has therefore just decayed to a learning rate of zero (every row is an annealed
    model, not one caught mid-schedule), and the next extension jumps back up (1 → 2
    epochs restarts at half the peak: ``lr · ½(1 + cos(π·M/N))`` after M of N epochs).
    So a row at N epochs is *not* a fresh N-epoch run: its first epochs used the
    shorter horizons' rates. That is the price of measuring every checkpoint in one
    chain of training; the CPU minutes of a row are those of that whole chain.

Resuming
    Rows go to ``OUT/rows.jsonl`` (rewritten atomically), the training time of each
    finished training call to ``OUT/training.json`` before its scoring starts, and the
    runs to ``OUT/runs/<model>``. Run again, a row already there is skipped, a model
    trained but not yet scored is only scored, and a training killed midway resumes
    from its last checkpoint; the CPU time between the last counted call and that
    checkpoint is lost then, so its rows say ``"interrupted": true`` (their minutes are
    a slight undercount). Other settings (data, seed, ``n``, feature network, a model's
    config) in the same ``OUT`` are refused in one line; more models or later epochs
    may be added.

The report (``OUT/report.json``, also returned) is ``{"benchmark", "machine",
"settings", "rows", "ceiling"}`` with the machine described as in every other
benchmark (:func:`aegen.bench.core.machine_info`); ``OUT/fid_vs_cpu_minutes.png``
plots FID against CPU-minutes, one line per model, log x, the ceiling dashed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import (
    CONFIG,
    MODEL,
    TRAIN_STATE,
    load,
    load_config,
    read_train_state,
    weights_hash,
)
from ..config import DataConfig, RunConfig
from ..data.codes import CodeSet, codes_match
from ..data.datasets import Dataset
from ..data.loader import to_float
from ..errors import CheckpointError, UserError
from ..eval.evaluate import (
    MIN_SAMPLES,
    EvalOptions,
    ReconstructionSampler,
    data_record,
    evaluate_run,
)
from ..eval.features import DomainFeatures, default_features_dir, find_features
from ..files import (
    RunLock,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    json_text,
    read_json,
)
from ..models.abilities import ScoresCodeLikelihood
from ..pipelines.vq_prior import codes_record, encode_run, load_codes, prior_run_config
from ..registry import available, entry
from ..runs import (
    data_from_config,
    discard_unfinished,
    make_run_config,
    run_config_from_json,
    run_settings,
    settings_differ,
    train_run,
)
from ..viz import line_chart
from .core import machine_info

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MODELS",
    "check_models",
    "main",
    "plot_rows",
    "read_rows",
    "time_to_quality",
]

PRIOR = "prior:"
DEFAULT_MODELS = (
    "vae-mlp",
    *(f"{PRIOR}{p}" for p in ("transformer", "pixelcnn", "pixelrnn", "maskgit")),
)
DEFAULT_EPOCHS = (1, 2, 4, 8)
ROWS, TRAINING, SETTINGS, CEILING, REPORT = (
    "rows.jsonl",
    "training.json",
    "settings.json",
    "ceiling.json",
    "report.json",
)
PLOT = "fid_vs_cpu_minutes.png"
# what a run's stored config must still match on a rerun (its train.epochs may grow)
RUN_KEYS = ("model", "model_config", "train", "data", "codes")


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def check_models(models: Sequence[str]) -> None:
    """Refuse, in one line, a name that is neither a model that samples nor ``prior:NAME``."""
    if not models:
        raise UserError("no models given; name at least one, e.g. vae-mlp or prior:transformer")
    priors = available("prior")
    samplers = [m for m in available("model") if hasattr(entry(m, "model").cls, "sample")]
    for m in models:
        ok = m[len(PRIOR) :] in priors if m.startswith(PRIOR) else m in samplers
        if not ok:
            raise UserError(
                f"unknown model {m!r}; choose from {', '.join(samplers)} or "
                f"{', '.join(PRIOR + p for p in priors)}"
            )
    if len(set(models)) != len(models):
        raise UserError(f"a model is named twice in {', '.join(models)}")


def _check_epochs(epochs: Sequence[int]) -> tuple[int, ...]:
    if not epochs or any(int(e) < 1 for e in epochs):
        raise UserError(
            f"the epoch schedule must be positive numbers of epochs, got {list(epochs)}"
        )
    return tuple(sorted({int(e) for e in epochs}))


def _slug(model: str) -> str:
    return model.replace(":", "-")


# --------------------------------------------------------------------------- files in OUT


def read_rows(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows in ``OUT/rows.jsonl`` (none when it is missing)."""
    path = Path(out) / ROWS
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(
            f"{path}: unreadable ({type(e).__name__}); remove it to score again"
        ) from None


def _write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(out / ROWS, "".join(json_text(r) + "\n" for r in rows))


def _read(path: Path) -> dict[str, Any]:
    return read_json(path, UserError) if path.is_file() else {}


def _check_settings(out: Path, want: dict[str, Any]) -> None:
    """The first run in ``out`` writes its settings; a later one must bring the same."""
    have = _read(out / SETTINGS)
    if have:
        diff = settings_differ(have, want)
        if diff:
            raise UserError(
                f"{out} holds a benchmark with other settings ({diff}); "
                "choose another output directory or remove that one"
            )
    else:
        atomic_write_json(out / SETTINGS, want)


# --------------------------------------------------------------------------- one model's run


@dataclasses.dataclass
class _Model:
    """How to train one model of the benchmark and how to score its checkpoints."""

    name: str
    run_dir: Path
    config: Callable[[int], RunConfig]  # the run config of a fresh run to that many epochs
    record: dict[str, Any]  # extra config.json keys (a prior's codes)
    data: Dataset  # what it trains on: the images, or a prior's codes
    codes: CodeSet | None = None


def _check_run(m: _Model, pending: list[int]) -> None:
    """A run left in ``m.run_dir`` by an earlier call must have this model's settings and
    not be past the first epoch count still to score."""
    if not (m.run_dir / CONFIG).is_file():
        return
    stored = load_config(m.run_dir)
    want = {**m.config(1).to_json(), **m.record}
    diff = settings_differ(
        run_settings(stored, RUN_KEYS, ("epochs",)), run_settings(want, RUN_KEYS, ("epochs",))
    )
    if diff:
        raise UserError(
            f"{m.run_dir} holds a {m.name} run with other settings ({diff}); "
            "choose another output directory or remove that run"
        )
    done = _epochs_done(m.run_dir)
    early = [e for e in pending if e < done]
    if early:
        raise UserError(
            f"{m.run_dir} is trained to {done} epochs already; a checkpoint at {early[0]} "
            "epochs needs another output directory"
        )


def _epochs_done(run_dir: Path) -> int:
    if not (run_dir / TRAIN_STATE).is_file():
        return 0
    return int(read_train_state(run_dir).get("epoch", 0))


def _train_to(m: _Model, epochs: int, progress: bool) -> tuple[float, float]:
    """Train ``m``'s run to ``epochs`` epochs (fresh, extended or resumed): CPU and wall
    seconds of the training call alone."""
    if (m.run_dir / CONFIG).is_file() and not (m.run_dir / TRAIN_STATE).is_file():
        discard_unfinished(m.run_dir)  # killed before its first checkpoint: start it again
    fresh = not (m.run_dir / CONFIG).is_file()
    cpu, wall = time.process_time(), time.perf_counter()
    train_run(
        m.config(epochs) if fresh else None,
        m.run_dir,
        resume=not fresh,
        progress=progress,
        data=m.data,
        record=m.record if fresh else None,
        epochs=None if fresh else epochs,
    )
    return time.process_time() - cpu, time.perf_counter() - wall


def _uncounted(run_dir: Path, counted_epochs: int) -> bool:
    """Whether the run holds training the ledger did not time: a checkpoint past the last
    counted call, or a call that was killed after a checkpoint (its state unfinished)."""
    if not (run_dir / TRAIN_STATE).is_file():
        return False  # nothing kept: whatever ran is trained again, and timed
    state = read_train_state(run_dir)
    return int(state.get("epoch", 0)) != counted_epochs or not state.get("finished")


def _score(
    m: _Model,
    dataset: Dataset,
    features: DomainFeatures,
    options: EvalOptions,
    vqvae_dir: Path | None,
) -> dict[str, Any]:
    """FID, KID and precision/recall of ``m``'s samples now (and a prior's test NLL)."""
    if m.codes is None:
        ev = evaluate_run(m.run_dir, dataset, features, options, only=("samples",))
    else:
        opts = dataclasses.replace(options, vqvae_dir=str(vqvae_dir))
        ev = evaluate_run(m.run_dir, dataset, features, opts, only=("samples",))
    s = ev.sections["samples"]
    row = {k: s[k] for k in ("fid", "kid_mean", "precision", "recall")}
    if m.codes is not None:
        prior = load(m.run_dir, family="prior")
        if isinstance(prior, ScoresCodeLikelihood):
            test = m.codes.data.test
            labels = test.y if prior.config.num_classes else None
            row["bits_per_code"] = prior.nll_bits(test.x, labels)
    return row


# --------------------------------------------------------------------------- the ceiling


def _ceiling(
    out: Path, vqvae_dir: Path, dataset: Dataset, features: DomainFeatures, options: EvalOptions
) -> dict[str, Any]:
    """The VQ-VAE's test reconstructions scored as samples, kept in ``OUT/ceiling.json``."""
    want = {
        "vqvae_weights_sha256": weights_hash(vqvae_dir / MODEL),
        "n": options.n,
        "seed": options.seed,
        "features_sha256": features.sha256,
        "data_fingerprint": dataset.fingerprint(),
    }
    stored = _read(out / CEILING)
    if stored.get("scored_from") == want:
        return stored
    vqvae = load(vqvae_dir, family="vqvae").eval()
    ev = evaluate_run(
        vqvae_dir,
        dataset,
        features,
        options,
        sampler=ReconstructionSampler(vqvae, dataset.test),
        model=vqvae,
        only=("samples",),
    )
    s = ev.sections["samples"]
    try:
        trained_s = float(read_train_state(vqvae_dir).get("elapsed_s", 0.0))
    except CheckpointError:  # a VQ-VAE without its train state still has a ceiling
        trained_s = None
    ceiling = {
        **{k: s[k] for k in ("fid", "kid_mean", "kid_std", "precision", "recall")},
        "n_samples": s["n_samples"],
        "vqvae_dir": str(vqvae_dir.resolve()),
        "vqvae_train_wall_minutes": None if trained_s is None else trained_s / 60,
        "scored_from": want,
    }
    atomic_write_json(out / CEILING, ceiling)
    return ceiling


def plot_rows(
    path: str | os.PathLike, rows: list[dict[str, Any]], ceiling: dict[str, Any] | None
) -> Path:
    """FID against CPU-minutes of training, one line per model (log x), the ceiling dashed."""
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["fid"] is None or not math.isfinite(r["fid"]):
            continue  # no FID to draw (stored as null: a diverged model's)
        # a row of a run too short for the clock is drawn at its resolution, not at 0
        series.setdefault(r["model"], []).append((max(r["cpu_minutes"], 1e-4), r["fid"]))
    fid = None if not ceiling else ceiling["fid"]
    return line_chart(
        path,
        series,
        title="FID of samples against CPU-minutes of training",
        xlabel="CPU-minutes of training (all threads; log scale)",
        ylabel="FID (lower is better)",
        log_x=True,
        hline=fid,
        hline_label="" if fid is None else f"ceiling: VQ-VAE test reconstructions, FID {fid:.1f}",
    )


# --------------------------------------------------------------------------- the benchmark


def _check_vqvae(vq: Path, dataset: Dataset) -> tuple[int, tuple[int, int], int]:
    """Refuse a VQ-VAE run that is missing, unfinished or of other data; return what its
    codes will be: (K, (H, W), number of classes), for checking the priors' configs."""
    model = load(vq, family="vqvae")  # a missing or wrong directory is refused here
    if not read_train_state(vq).get("finished"):
        raise UserError(f"{vq}: the VQ-VAE has not finished training; finish it first")
    vq_data = run_config_from_json(load_config(vq), str(vq / CONFIG)).data
    if vq_data is not None and vq_data.name != dataset.name:
        raise UserError(f"the VQ-VAE in {vq} was trained on {vq_data.name}, not {dataset.name}")
    with torch.no_grad():
        h, w = model.eval().encode_indices(to_float(dataset.test.x[:1])).shape[1:]  # (1, H, W)
    return model.config.num_codes, (int(h), int(w)), dataset.num_classes


def _split_overrides(models: Sequence[str], overrides: Sequence[str]) -> dict[str, list[str]]:
    """``MODEL.section.key=value`` → {MODEL: ["section.key=value", …]}. An override of a
    model not benchmarked this time is allowed (one command line for several subsets)
    and unused; one of an unknown model is refused."""
    out: dict[str, list[str]] = {m: [] for m in models}
    for text in overrides:
        name, _, rest = text.partition(".")
        if not rest:
            raise UserError(f"--set takes MODEL.SECTION.KEY=V, got {text!r}")
        check_models([name])
        out.setdefault(name, []).append(rest)
    return out


def time_to_quality(
    out_dir: str | os.PathLike,
    models: Sequence[str] = DEFAULT_MODELS,
    epochs: Sequence[int] = DEFAULT_EPOCHS,
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    limit: int | None = None,
    val_size: int | None = None,
    vqvae_dir: str | os.PathLike | None = None,
    eval_n: int = EvalOptions.n,
    seed: int = 0,
    features: DomainFeatures | str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    progress: bool = False,
    quiet: bool = True,
) -> dict[str, Any]:
    """Train each of ``models`` through the ``epochs`` schedule in ``out_dir`` and score
    every checkpoint; returns the report (see the module docstring).

    ``vqvae_dir`` is a finished VQ-VAE run, needed when a ``prior:NAME`` is benchmarked
    (its ceiling is scored whenever it is given). ``features`` is a feature network or
    its directory (default: the data set's, ``aegen features train``). ``overrides`` are
    ``MODEL.section.key=value`` (``vae-mlp.train.lr=1e-3``,
    ``prior:transformer.model.n_layers=2``). Every check that can refuse runs before
    anything is trained.
    """
    models = list(models)
    check_models(models)
    schedule = _check_epochs(epochs)
    per_model = _split_overrides(models, overrides)
    priors = [m for m in models if m.startswith(PRIOR)]
    if priors and vqvae_dir is None:
        raise UserError(
            f"{priors[0]} trains on a VQ-VAE's codes; pass the VQ-VAE run (--vqvae DIR)"
        )
    if eval_n < MIN_SAMPLES:
        raise UserError(f"--eval-n must be at least {MIN_SAMPLES}, got {eval_n}")
    options = EvalOptions(n=eval_n, seed=seed)
    data_cfg = make_run_config(
        "vae-mlp", data=data, limit=limit, data_dir=data_dir, val_size=val_size
    ).data
    dataset = data_from_config(data_cfg)
    if not isinstance(features, DomainFeatures):
        found = find_features(dataset.name, features)
        if found is None:
            raise UserError(
                f"no feature network for {dataset.name} in {default_features_dir(dataset.name)}; "
                f"train one with 'aegen features train --data {dataset.name}' or pass --features DIR"
            )
        features = found
    features.check_data(dataset.name)
    vq = Path(vqvae_dir) if vqvae_dir is not None else None
    grid = _check_vqvae(vq, dataset) if vq is not None else None
    for name in models:  # every model's config and overrides, before anything is written
        if name.startswith(PRIOR):
            assert grid is not None
            prior_run_config(name[len(PRIOR) :], grid, per_model[name], epochs=1, seed=seed)
        elif any(o.startswith("data.") for o in per_model[name]):
            raise UserError(f"{name}: the data is the benchmark's own (--data, --limit), not --set")
        else:
            make_run_config(name, overrides=per_model[name], epochs=1, seed=seed)

    out = ensure_dir(out_dir)
    with RunLock(out):
        _check_settings(
            out,
            {
                "data": data_record(dataset),
                "seed": seed,
                "eval_n": eval_n,
                "features_sha256": features.sha256,
            },
        )
        ceiling = _ceiling(out, vq, dataset, features, options) if vq is not None else None
        codes = None
        if priors:
            assert vq is not None
            codes_dir = out / "codes"
            if not codes_match(codes_dir, weights_hash(vq / MODEL), dataset):
                _log(f"encoding {dataset.name} with the VQ-VAE in {vq} into {codes_dir}", quiet)
                encode_run(vq, codes_dir, data=dataset, overwrite=True, quiet=quiet)
            codes = load_codes(codes_dir)
        specs = [
            _spec(name, out, data_cfg, dataset, codes, per_model[name], seed) for name in models
        ]
        rows = read_rows(out)
        done = {(r["model"], r["epochs"]) for r in rows}
        todo = {s.name: [e for e in schedule if (s.name, e) not in done] for s in specs}
        for s in specs:  # refuse other settings before any model trains
            _check_run(s, todo[s.name])
        ledger = _read(out / TRAINING)
        _warm_up()
        for s in specs:
            for e in todo[s.name]:
                rows.append(
                    _checkpoint(s, e, out, ledger, dataset, features, options, vq, progress, quiet)
                )
                _write_rows(out, rows)
                plot_rows(out / PLOT, rows, ceiling)
        order = {m: i for i, m in enumerate(models)}  # this call's models first, as named
        rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["model"], r["epochs"]))
        if rows:
            plot_rows(out / PLOT, rows, ceiling)
        report = {
            "benchmark": "aegen time-to-quality",
            "machine": machine_info(),
            "settings": {**_read(out / SETTINGS), "models": models, "epochs": list(schedule)},
            "rows": rows,
            "ceiling": ceiling,
            "plot": str(out / PLOT),
        }
        atomic_write_json(out / REPORT, report)
    return report


def _warm_up() -> None:
    """Pay the process's one-time costs before the first timed call, so that the first
    model is not charged for them: torch imports its compiler (about 2 s of CPU, measured)
    when the process builds its first optimiser."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def _spec(
    name: str,
    out: Path,
    data_cfg: DataConfig,
    dataset: Dataset,
    codes: CodeSet | None,
    overrides: list[str],
    seed: int,
) -> _Model:
    """How to train ``name`` in ``OUT/runs/<name>`` (its overrides are checked already)."""
    run_dir = out / "runs" / _slug(name)
    if name.startswith(PRIOR):
        assert codes is not None
        prior = name[len(PRIOR) :]

        def prior_config(e: int) -> RunConfig:
            return prior_run_config(prior, codes, overrides, epochs=e, seed=seed)

        return _Model(name, run_dir, prior_config, codes_record(codes), codes.data, codes)

    def model_config(e: int) -> RunConfig:
        run = make_run_config(name, overrides=overrides, epochs=e, seed=seed)
        return dataclasses.replace(run, data=data_cfg)

    return _Model(name, run_dir, model_config, {}, dataset)


def _checkpoint(
    m: _Model,
    epochs: int,
    out: Path,
    ledger: dict[str, Any],
    dataset: Dataset,
    features: DomainFeatures,
    options: EvalOptions,
    vqvae_dir: Path | None,
    progress: bool,
    quiet: bool,
) -> dict[str, Any]:
    """Train ``m`` on to ``epochs`` unless the ledger says it is there, then score it: one row.

    The ledger (``OUT/training.json``) holds, per model, the cumulative training time at
    the end of its last finished training call; it is written before the scoring, so a
    kill while scoring costs no training time."""
    counted = ledger.get(m.name, {"epochs": 0, "cpu_s": 0.0, "wall_s": 0.0, "interrupted": False})
    if counted["epochs"] < epochs:
        interrupted = _uncounted(m.run_dir, counted["epochs"])
        _log(f"{m.name}: training to {epochs} epochs in {m.run_dir}", quiet)
        cpu_s, wall_s = _train_to(m, epochs, progress)
        counted = {
            "epochs": epochs,
            "cpu_s": counted["cpu_s"] + cpu_s,
            "wall_s": counted["wall_s"] + wall_s,
            "interrupted": bool(counted["interrupted"] or interrupted),
            "torch_threads": torch.get_num_threads(),
        }
        ledger[m.name] = counted
        atomic_write_json(out / TRAINING, ledger)
    _log(f"{m.name}: scoring {options.n} samples at {epochs} epochs", quiet)
    t0 = time.perf_counter()
    scores = _score(m, dataset, features, options, vqvae_dir)
    return {
        "model": m.name,
        "epochs": epochs,
        "cpu_minutes": counted["cpu_s"] / 60,
        "wall_minutes": counted["wall_s"] / 60,
        **scores,
        "steps": int(read_train_state(m.run_dir).get("step", 0)),
        "interrupted": counted["interrupted"],
        "torch_threads": counted.get("torch_threads", torch.get_num_threads()),
        "score_wall_s": time.perf_counter() - t0,
    }


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``bench/time_to_quality.py``'s arguments → the report (printed as JSON)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="where the runs, rows and plot go")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    p.add_argument("--epochs", type=_int_list, default=list(DEFAULT_EPOCHS), help="e.g. 1,2,4,8")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N train and test images")
    p.add_argument("--vqvae", default=None, metavar="DIR", help="the VQ-VAE run the priors use")
    p.add_argument("--features", default=None, metavar="DIR", help="the domain feature network")
    p.add_argument("--eval-n", type=int, default=EvalOptions.n, help="samples scored per row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL.SECTION.KEY=V",
        help="a model's config, e.g. prior:transformer.train.lr=2e-3 (repeatable)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report here")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    a = p.parse_args(argv)
    report = time_to_quality(
        a.out,
        [m.strip() for m in a.models.split(",") if m.strip()],
        a.epochs,
        data=a.data,
        data_dir=a.data_dir,
        limit=a.limit,
        vqvae_dir=a.vqvae,
        eval_n=a.eval_n,
        seed=a.seed,
        features=a.features,
        overrides=a.set,
        progress=not a.quiet,
        quiet=a.quiet,
    )
    text = json_text(report, indent=2)
    print(text)
    if a.json:
        atomic_write_text(a.json, text + "\n")
    return report
