"""Creating, training and resuming run directories: what ``aegen train`` does, as an API.

The order matters for the promise "no partial files left as if complete": the
config is validated, the data loaded and the model built *before* the output
directory is touched, so a user error leaves nothing behind; the directory is
then locked against a second writer for as long as training runs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CONFIG, TRAIN_STATE, load_config, read_train_state, write_config
from .config import DataConfig, RunConfig, TrainConfig, apply_overrides, from_dict, to_dict
from .data.datasets import Dataset, load_data
from .data.loader import to_float
from .distributed import barrier
from .distributed import context as dist_context
from .errors import CheckpointError, ConfigError, UserError
from .eval.evaluate import EvalOptions, evaluate_run
from .eval.metrics import read_metrics_json, reconstruction_metrics, update_metrics_json
from .eval.vae import write_vae_report
from .files import RunLock, ensure_dir
from .models.abilities import Reconstructs, Samples, ScoresLikelihood
from .models.vae import VAE
from .phased import check_phased, fit_phased
from .registry import entry
from .threads import current as thread_choice
from .threads import process_record
from .threads import recheck as recheck_threads
from .train import FitResult, Trainer, check_batch_size, seed_everything
from .version import __version__
from .viz import save_grid, save_recon_grid

__all__ = [
    "TrainedRun",
    "data_from_config",
    "discard_unfinished",
    "extend_run_config",
    "finish_run",
    "make_run_config",
    "run_config_from_json",
    "run_settings",
    "settings_differ",
    "stage_state",
    "train_run",
]


def make_run_config(
    model: str,
    data: str | None = None,
    overrides: list[str] | None = None,
    **train_args: Any,
) -> RunConfig:
    """The run config for ``model``: its defaults, then ``train_args`` (epochs=…, batch_size=…,
    seed=…, or data keys limit=…, data_dir=…), then dotted ``overrides``."""
    e = entry(model, "model")
    train_defaults = dict(getattr(e.cls, "train_defaults", {}))
    data_keys = {f for f in DataConfig.__dataclass_fields__}
    train_values = {
        **train_defaults,
        **{k: v for k, v in train_args.items() if v is not None and k not in data_keys},
    }
    data_values = {k: v for k, v in train_args.items() if v is not None and k in data_keys}
    if data is not None:
        data_values["name"] = data
    run = RunConfig(
        model=model,
        model_config=from_dict(e.config_cls, {}, "model"),
        train=from_dict(TrainConfig, train_values, "train"),
        data=from_dict(DataConfig, data_values, "data"),
    )
    return apply_overrides(run, overrides or [])


def run_config_from_json(cfg: dict[str, Any], where: str = "config.json") -> RunConfig:
    """Parse a run directory's config dict back into a RunConfig (validated).

    A model run has a data section; a prior's has none: it trains on the codes its
    config.json names. A section that is missing is refused, not taken from the
    defaults: resuming on other data or another schedule would not be the same run.
    """
    try:
        e = entry(str(cfg["model"]))
        if e.kind not in ("model", "prior"):
            raise CheckpointError(f"{where}: a {e.kind} run is not trained by train_run")
        has_data = e.kind == "model" or "data" in cfg
        for section in ("model_config", "train", *(("data",) if has_data else ())):
            if section not in cfg:
                raise CheckpointError(f"the run's {section!r} section is missing")
        return RunConfig(
            model=e.name,
            model_config=from_dict(e.config_cls, cfg.get("model_config", {}), "model"),
            train=from_dict(TrainConfig, cfg.get("train", {}), "train"),
            data=from_dict(DataConfig, cfg.get("data", {}), "data") if has_data else None,
        )
    except UserError as err:
        raise CheckpointError(f"{where}: {err}") from None


def data_from_config(d: DataConfig) -> Dataset:
    return load_data(d.name, d.data_dir, val_size=d.val_size, limit=d.limit)


@dataclass
class TrainedRun:
    model: torch.nn.Module
    data: Dataset
    result: FitResult
    out_dir: Path
    config: RunConfig


def _check_fresh(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    if (out / CONFIG).exists():
        raise UserError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )


_RUN_KEYS = ("aegen_version", "model", "model_config", "train", "data", "family")


def extend_run_config(
    stored: dict[str, Any], run: RunConfig, epochs: int, step: int, where: str
) -> tuple[RunConfig, dict[str, Any] | None]:
    """A resumed run taken on to ``epochs`` epochs: its RunConfig and the config.json that
    records the extension (None when ``epochs`` is its own: nothing changes).

    The learning-rate schedule's horizon becomes the new total (docs/reliability.md):
    from its next step on, the run follows the schedule of a fresh ``epochs``-epoch run.
    ``step`` is the optimiser step the extension starts at; each extension is appended
    to ``extended`` in config.json.
    """
    have = run.train.epochs
    if epochs < have:
        raise UserError(
            f"{where} already has train.epochs={have}; --epochs with --resume can only "
            f"extend it (give {have} or more)"
        )
    if stored.get("phased") is not None:
        raise UserError(f"{where} was trained --phased; it cannot be extended with --epochs")
    if epochs == have:
        return run, None
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, epochs=epochs))
    record = {
        "from_epochs": have,
        "to_epochs": epochs,
        "at_step": step,
        "aegen_version": __version__,
    }
    cfg = {**stored, **run.to_json(), "extended": [*stored.get("extended", []), record]}
    return run, cfg


def train_run(
    run: RunConfig | None,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    data: Dataset | None = None,
    phased: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
    finish: Callable[[torch.nn.Module], None] | None = None,
    epochs: int | None = None,
) -> TrainedRun:
    """Train a model or a prior into ``out_dir``, or resume the run there from its own config.

    ``data`` replaces the run's data config (a prior's codes: its RunConfig has
    ``data=None``); ``record`` adds keys to config.json (a prior's ``codes``);
    ``finish(model)`` runs in the main process after training, while the
    directory is still locked (a prior's metrics.json). ``phased={"finetune_epochs":
    N}`` trains an ``ae-mlp`` greedily layer by layer (see :mod:`aegen.phased`); it
    is stored in config.json so ``--resume`` knows. ``epochs`` with ``resume`` takes the
    run on to that many epochs, finished or not (:func:`extend_run_config`).
    """
    out = Path(out_dir)
    extended = None
    if resume:
        stored = load_config(out)
        stored_run = run_config_from_json(stored, str(out / CONFIG))
        if run is not None and run.model != stored_run.model:
            raise UserError(f"{out} holds a {stored_run.model} run, not {run.model}")
        run, phased = stored_run, stored.get("phased")
        if epochs is not None:
            step = int(read_train_state(out).get("step", 0)) if (out / TRAIN_STATE).is_file() else 0
            run, extended = extend_run_config(stored, run, epochs, step, str(out))
        keep_arithmetic(stored.get("environment"))
        read_metrics_json(out)  # one that cannot be merged into is refused now, not after training
    else:
        if run is None:
            raise ValueError("train_run needs a run config unless resuming")
        _check_fresh(out)
    if data is None:
        if run.data is None:
            raise ValueError(f"{run.model}: a run without a data config needs data=")
        data = data_from_config(run.data)
    ctx = dist_context()
    check_batch_size(run.train.batch_size, len(data.train), ctx.world)
    seed_everything(run.train.seed)
    model = entry(run.model).cls(run.model_config)
    if phased is not None:
        check_phased(model)
    barrier()  # every rank has checked the directory before rank 0 writes into it
    lock = RunLock(out)
    made = not out.exists()  # removed again if it fails before its first checkpoint
    if ctx.is_main:
        ensure_dir(out)
        lock.acquire()
    try:
        if not resume and ctx.is_main:
            extra = {"phased": phased} if phased is not None else {}
            if ctx.world == 1:  # cores found busy when the command started may be free now
                recheck_threads()
            if (env := process_record()) is not None:  # the command's threads and flush
                extra["environment"] = env
            write_config(out, {**run.to_json(), "family": model.family, **extra, **(record or {})})
        if extended is not None and ctx.is_main:  # before training: a kill keeps the new horizon
            write_config(out, extended)
        if phased is not None:
            result = fit_phased(model, data, run.train, out, resume, progress, **phased)
        else:
            trainer = Trainer(
                model, run.train, out, progress=progress, metadata={"model": run.model}
            )
            result = trainer.fit(data, resume=resume)
        if finish is not None and ctx.is_main:
            finish(model)
    except Exception:
        if not resume and ctx.is_main and not (out / TRAIN_STATE).exists():
            _forget_fresh(out, made)  # or the next try is refused: "already holds a run"
        raise
    finally:
        lock.release()
    return TrainedRun(model.eval(), data, result, out, run)


def _forget_fresh(out: Path, made: bool) -> None:
    """A fresh run that failed before its first checkpoint leaves nothing of value: its
    directory goes if this run made it, else the config.json that marks it as a run."""
    if made:
        shutil.rmtree(out, ignore_errors=True)
    else:
        (out / CONFIG).unlink(missing_ok=True)


def keep_arithmetic(stored: dict[str, Any] | None) -> None:
    """Resume with the thread count the run started with, unless the user chose one:
    reductions split by thread, so another count gives other bits, and resuming must
    give exactly the uninterrupted run's result. A different denormal flush is
    reported (it cannot change once torch's threads run)."""
    choice = thread_choice()
    if not stored or choice is None:
        return
    want = stored.get("torch_threads")
    if choice.source == "machine" and isinstance(want, int) and want >= 1:
        if want != torch.get_num_threads():
            torch.set_num_threads(want)
    elif want != torch.get_num_threads():
        print(
            f"note: resuming with {torch.get_num_threads()} threads ({choice.source}); the run "
            f"started with {want}, so its numbers may differ in the last bits",
            file=sys.stderr,
        )
    flush = process_record()["flush_denormal"]
    if "flush_denormal" in stored and stored["flush_denormal"] != flush:
        print(
            f"note: the run started with denormals {'flushed' if stored['flush_denormal'] else 'kept'}"
            f" and resumes with them {'flushed' if flush else 'kept'}; its numbers may differ",
            file=sys.stderr,
        )


# What ``finish_run`` writes after training (``aegen train --report``, docs/performance.md).
REPORTS = ("fast", "full", "none")
# fast: the VAE's IWAE test NLL with fewer draws on fewer images, where the estimate has
# stopped moving: measured on vae-mlp, Fashion-MNIST (docs/performance.md, "The end of a run")
FAST_NLL_K = 20
FAST_NLL_IMAGES = 2000


def finish_run(trained: TrainedRun, n_pictures: int = 50, report: str = "full") -> dict[str, float]:
    """After training: test reconstruction metrics into metrics.json, pictures into samples/.

    ``report="full"`` scores everything on the whole test set; ``"fast"`` estimates a
    VAE's IWAE NLL with ``FAST_NLL_K`` draws on ``FAST_NLL_IMAGES`` images (metrics.json
    records both); ``"none"`` writes nothing (the Trainer's metrics.csv stays the record).
    Returns the test metrics (``test_mse``, ``test_psnr``, …) for printing.
    """
    if report not in REPORTS:
        raise ValueError(f"report must be one of {REPORTS}, not {report!r}")
    model, data, out = trained.model, trained.data, trained.out_dir
    if report == "none":
        return {}
    if data.test.x.dtype != torch.uint8:  # not images (the plane demo)
        return {}
    summary: dict[str, float] = {}
    samples = ensure_dir(out / "samples")
    if isinstance(model, Reconstructs):  # a flow or a GAN does not reconstruct
        rec = reconstruction_metrics(model, data.test)
        summary = {"test_mse": rec["mse"], "test_psnr": rec["psnr"]}
        update_metrics_json(out, {"reconstruction": {**rec, "split": "test", "n": len(data.test)}})
        x = to_float(data.test.x[:n_pictures])
        save_recon_grid(samples / "reconstructions.png", x, model.reconstruct(x))
    if isinstance(model, Samples):
        g = torch.Generator().manual_seed(trained.config.train.seed)
        save_grid(samples / "samples.png", model.sample(100, generator=g))
    if isinstance(model, VAE):  # the VAE's own diagnostics: likelihood, collapse, blur
        fast = {"k": FAST_NLL_K, "nll_images": FAST_NLL_IMAGES} if report == "fast" else {}
        summary.update(write_vae_report(model, data, out, **fast))
    elif isinstance(model, ScoresLikelihood):  # an exact likelihood (the flow): one draw each
        opts = EvalOptions(nll_images=1000, iwae_k=1)
        lik = evaluate_run(out, data, options=opts, model=model, only=["likelihood"])
        update_metrics_json(out, {"likelihood": lik.sections["likelihood"]})
        summary["test_bits_per_dim"] = lik.sections["likelihood"]["bits_per_dim"]
    return summary


def settings_differ(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str | None:
    """The first dotted key where two JSON-like dicts differ, or None."""
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = settings_differ(va, vb, f"{prefix}{k}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{k}"
    return None


def _model_settings(name: Any, values: dict[str, Any]) -> dict[str, Any]:
    """A ``model_config`` with the defaults of keys added since it was written, so that a run
    from before a new setting compares equal to the same run configured now (at the
    default); as it is when it does not build (the refusal is then elsewhere)."""
    try:
        return to_dict(from_dict(entry(str(name)).config_cls, values, "model"))
    except ConfigError:
        return values


def run_settings(
    cfg: dict[str, Any], keys: tuple[str, ...], free_train: tuple[str, ...] = ()
) -> dict[str, Any]:
    """What of a config.json must match for a run directory to be reused: ``keys`` of it,
    the codes without where they are, the model config with the defaults of keys added
    since (:func:`_model_settings`), and the train config without ``free_train`` (the
    keys a caller may change, such as ``epochs`` for a run that is extended)."""
    picked = {k: cfg.get(k) for k in keys}
    if isinstance(picked.get("codes"), dict):  # which codes, not where they are
        picked["codes"] = {k: v for k, v in picked["codes"].items() if k != "dir"}
    if isinstance(picked.get("model_config"), dict):
        picked["model_config"] = _model_settings(cfg.get("model"), picked["model_config"])
    if free_train and isinstance(picked.get("train"), dict):
        picked["train"] = {k: v for k, v in picked["train"].items() if k not in free_train}
    return picked


def stage_state(out: Path, want: dict[str, Any], keys: tuple[str, ...], what: str) -> str:
    """'fresh', 'resume' or 'done' for a training stage's directory; refuses other settings."""
    if not (out / CONFIG).is_file():
        return "fresh"
    stored = load_config(out)
    diff = settings_differ(run_settings(stored, keys), run_settings(want, keys))
    if diff:
        raise UserError(
            f"{out} holds a {what} trained with other settings ({diff}); "
            "choose another --out or remove that directory"
        )
    if not (out / TRAIN_STATE).is_file():
        discard_unfinished(out)  # killed before its first checkpoint: start it again
        return "fresh"
    return "done" if read_train_state(out).get("finished") else "resume"


def discard_unfinished(out: Path) -> None:
    """Remove a directory that a killed run left with nothing of value in it, unless a
    live process is still at work there (its lock refuses with a UserError then)."""
    with RunLock(out):
        pass
    shutil.rmtree(out)
