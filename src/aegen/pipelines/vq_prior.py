"""The lecture's four-stage VQ-VAE generator, one directory per stage.

1. **Train a VQ-VAE** (``aegen train vqvae``): a run directory.
2. **Build the discrete data set** (:func:`encode_run`, ``aegen encode``): every
   image becomes an H×W grid of code indices. A codes directory holds::

       train.npy, val.npy, test.npy                uint16 (N, H, W)
       train_labels.npy, val_labels.npy, test_labels.npy   int64 (N,)
       meta.json   K, D, H, W, the VQ-VAE weights' SHA-256, the data's fingerprint,
                   the arrays' SHA-256, code usage and unigram entropies

3. **Train a prior** over the grids (:func:`train_prior`, ``aegen train-prior``):
   a run directory whose config.json records which codes (and so which VQ-VAE)
   it was trained on.
4. **Generate** (:func:`sample_images`, :func:`generate`, ``aegen generate``):
   sample grids from the prior, look the codes up in the VQ-VAE's codebook,
   decode.

:func:`run_pipeline` (``aegen pipeline vqvae``) runs all four into
``DIR/vqvae``, ``DIR/codes``, ``DIR/prior``, ``DIR/samples``. A stage whose
output exists and matches its inputs is skipped, an interrupted training stage is
resumed, and a stale derived output (codes, samples) is rebuilt — so a killed
pipeline, run again, continues where it stopped. Every check that can refuse
(codes ≥ K, a grid of the wrong shape, a prior trained on another VQ-VAE's codes)
happens before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import (
    CONFIG,
    MODEL,
    load,
    load_config,
    read_train_state,
    weights_hash,
    write_config,
)
from ..config import RunConfig, TrainConfig, apply_overrides, from_dict, to_dict
from ..data.datasets import Dataset, Split
from ..data.loader import to_float
from ..distributed import barrier
from ..distributed import context as dist_context
from ..errors import CheckpointError, ConfigError, DataError, UserError
from ..eval.metrics import read_metrics_json, update_metrics_json
from ..files import RunLock, atomic_write_bytes, atomic_write_json, ensure_dir
from ..models.vqvae import GRID as VQ_GRID
from ..models.vqvae import check_indices
from ..prior_runs import load_prior, prior_matches_vqvae, sample_images
from ..priors.sampling import sample_codes
from ..quantize import code_usage, entropy_bits
from ..registry import entry
from ..runs import stage_state
from ..train import Trainer, seed_everything

__all__ = [
    "CodeSet",
    "encode_run",
    "encode_split",
    "generate",
    "load_codes",
    "load_prior",
    "prior_matches_vqvae",
    "run_pipeline",
    "sample_codes",
    "sample_images",
    "train_prior",
]

CODES_FORMAT = "aegen-codes/1"
META = "meta.json"
SPLITS = ("train", "val", "test")


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def _sha256(path: Path) -> str:
    return weights_hash(path)  # SHA-256 of a file's bytes


# =========================================================================== stage 2: codes


@torch.no_grad()
def encode_split(model: torch.nn.Module, split: Split, batch_size: int = 1000) -> np.ndarray:
    """Code grids (N, H, W) uint16 of a split's images, in float32 and eval mode."""
    model.eval()
    parts = [
        model.encode_indices(to_float(split.x[s : s + batch_size])).to(torch.int32)
        for s in range(0, len(split), batch_size)
    ]
    return torch.cat(parts).numpy().astype(np.uint16)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move a finished temporary directory into place, replacing ``out`` if it exists."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def encode_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    data: Dataset | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Stage 2: encode every image of ``data`` (default: the run's own) with the VQ-VAE in
    ``run_dir`` into the codes directory ``out_dir``; returns its meta.json.

    The directory is written under a temporary name and renamed into place, so it
    is either complete or absent.
    """
    from ..runs import data_from_config, run_config_from_json

    run_dir, out = Path(run_dir), Path(out_dir)
    model = load(run_dir, family="vqvae")
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists; choose another --out")
    if data is None:
        data = data_from_config(run_config_from_json(load_config(run_dir)).data)
    ensure_dir(out.parent if str(out.parent) else Path("."))
    h, w = model.grid
    k = model.num_codes
    arrays: dict[str, np.ndarray] = {}
    for name in SPLITS:
        split = getattr(data, name)
        arrays[name] = encode_split(model, split)
        arrays[f"{name}_labels"] = split.y.numpy().astype(np.int64)
    stats: dict[str, Any] = {}
    for name in ("train", "test"):
        idx = torch.from_numpy(arrays[name].astype(np.int64))
        perplexity, used = code_usage(idx, k)
        stats[f"{name}_codes_used"] = used
        stats[f"{name}_perplexity"] = perplexity
        stats[f"{name}_unigram_entropy_bits"] = math.log2(perplexity)
    meta = {
        "format": CODES_FORMAT,
        "K": k,
        "D": int(model.codebook.shape[1]),
        "H": h,
        "W": w,
        "vqvae_run": str(run_dir.resolve()),
        "vqvae_weights_sha256": _sha256(run_dir / MODEL),
        "data": data.name,
        "data_fingerprint": data.fingerprint(),
        "classes": list(data.classes),
        "counts": {s: int(arrays[s].shape[0]) for s in SPLITS},
        **stats,
        "files": {},
    }
    tmp = Path(tempfile.mkdtemp(dir=out.parent if str(out.parent) else ".", prefix=f".{out.name}."))
    try:
        for name, a in arrays.items():
            payload = _npy_bytes(a)
            atomic_write_bytes(tmp / f"{name}.npy", payload)
            meta["files"][f"{name}.npy"] = hashlib.sha256(payload).hexdigest()
        atomic_write_json(tmp / META, meta)
        os.chmod(tmp, 0o777 & ~_umask())
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log(
        f"encoded {sum(meta['counts'].values())} images into {out}: {k} codes, "
        f"{stats['test_codes_used']} used on test (perplexity {stats['test_perplexity']:.1f})",
        quiet,
    )
    return meta


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass
class CodeSet:
    """A loaded codes directory: int64 code grids and labels per split, and its meta.json."""

    path: Path
    meta: dict[str, Any]
    meta_sha256: str
    data: Dataset  # x: (N, H, W) int64 codes, y: (N,) int64 labels

    @property
    def num_codes(self) -> int:
        return int(self.meta["K"])

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.meta["H"]), int(self.meta["W"])


def _read_meta(d: Path) -> dict[str, Any]:
    if not d.is_dir():
        raise DataError(f"{d}: no such codes directory")
    p = d / META
    if not p.is_file():
        raise DataError(f"{d}: not a codes directory (no {META}); make one with 'aegen encode'")
    try:
        meta = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != CODES_FORMAT:
        raise DataError(f"{p}: not an aegen codes directory ({CODES_FORMAT})")
    for key in ("K", "H", "W", "vqvae_weights_sha256"):
        if key not in meta:
            raise DataError(f"{p}: no {key}")
    return meta


def _read_array(path: Path, dtype: type) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from None
    if a.dtype != dtype:
        raise DataError(f"{path}: expected {np.dtype(dtype).name}, got {a.dtype}")
    return a


def load_codes(codes_dir: str | os.PathLike) -> CodeSet:
    """Read and check a codes directory: every grid (N, H, W) with codes < K, labels to match."""
    d = Path(codes_dir)
    meta = _read_meta(d)
    k, grid = int(meta["K"]), (int(meta["H"]), int(meta["W"]))
    splits = {}
    for name in SPLITS:
        codes = _read_array(d / f"{name}.npy", np.uint16)
        labels = _read_array(d / f"{name}_labels.npy", np.int64)
        x = torch.from_numpy(codes.astype(np.int64))
        check_indices(x, k, grid, str(d / f"{name}.npy"))
        if labels.shape != (codes.shape[0],):
            raise DataError(
                f"{d / f'{name}_labels.npy'}: {labels.shape[0] if labels.ndim else 0} labels "
                f"for {codes.shape[0]} code grids"
            )
        splits[name] = Split(x, torch.from_numpy(labels))
    classes = list(meta.get("classes") or [])
    n_classes = int(max(int(s.y.max()) if len(s) else -1 for s in splits.values())) + 1
    if len(classes) < n_classes:
        classes = [str(i) for i in range(n_classes)]
    data = Dataset("codes", splits["train"], splits["val"], splits["test"], classes, str(d))
    return CodeSet(d, meta, _sha256(d / META), data)


def _codes_match(codes_dir: Path, vqvae_dir: Path, data: Dataset) -> bool:
    """Whether ``codes_dir`` holds complete codes of ``data`` by the VQ-VAE in ``vqvae_dir``."""
    try:
        meta = _read_meta(codes_dir)
    except DataError:
        return False
    if meta.get("vqvae_weights_sha256") != _sha256(vqvae_dir / MODEL):
        return False
    if meta.get("data_fingerprint") != data.fingerprint():
        return False
    files = meta.get("files") or {}
    return all(
        (codes_dir / f"{s}{suffix}.npy").is_file()
        and files.get(f"{s}{suffix}.npy") == _sha256(codes_dir / f"{s}{suffix}.npy")
        for s in SPLITS
        for suffix in ("", "_labels")
    )


# =========================================================================== stage 3: prior


def prior_run_config(
    prior: str,
    codes: CodeSet | tuple[int, tuple[int, int], int],
    overrides: list[str] | None = None,
    conditional: bool = True,
    **train_args: Any,
) -> RunConfig:
    """The prior's model and train config: the grid from the codes (a CodeSet, or
    (K, (H, W), number of classes)), then its train_defaults, ``train_args``
    (epochs=…, batch_size=…, seed=…) and ``model.x``/``train.x`` overrides."""
    e = entry(prior, "prior")
    if isinstance(codes, CodeSet):
        codes = (codes.num_codes, codes.grid, codes.data.num_classes)
    k, (h, w), n_classes = codes
    fixed = {
        "num_codes": k,
        "height": h,
        "width": w,
        "num_classes": n_classes if conditional else 0,
    }
    for text in overrides or []:
        key = text.split("=", 1)[0].strip()
        if not key.startswith(("model.", "train.")):
            raise ConfigError(f"unknown config key {key}; a prior takes model.NAME or train.NAME")
        if key.removeprefix("model.") in fixed:
            raise ConfigError(f"{key} is set by the codes directory; it cannot be overridden")
    train_values = {
        **getattr(e.cls, "train_defaults", {}),
        **{k: v for k, v in train_args.items() if v is not None},
    }
    run = RunConfig(
        model=prior,
        model_config=from_dict(e.config_cls, fixed, "model"),
        train=from_dict(TrainConfig, train_values, "train"),
    )
    return apply_overrides(run, overrides or [])


def _prior_json(run: RunConfig, codes: CodeSet) -> dict[str, Any]:
    return {
        "model": run.model,
        "model_config": to_dict(run.model_config),
        "train": to_dict(run.train),
        "family": "prior",
        "codes": {
            "dir": str(codes.path.resolve()),
            "meta_sha256": codes.meta_sha256,
            "vqvae_weights_sha256": codes.meta["vqvae_weights_sha256"],
            "K": codes.num_codes,
            "H": codes.grid[0],
            "W": codes.grid[1],
        },
    }


@dataclass
class TrainedPrior:
    model: torch.nn.Module
    out_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def _prior_finished(out: Path) -> bool:
    try:
        state = read_train_state(out)
    except CheckpointError:
        return False
    return bool(state.get("finished")) and "prior" in read_metrics_json(out)


def train_prior(
    codes_dir: str | os.PathLike,
    prior: str,
    out_dir: str | os.PathLike,
    overrides: list[str] | None = None,
    conditional: bool = True,
    resume: bool = False,
    progress: bool = True,
    codes: CodeSet | None = None,
    **train_args: Any,
) -> TrainedPrior:
    """Stage 3: train prior ``prior`` on the codes in ``codes_dir`` into the run dir ``out_dir``.

    With ``resume=True`` the run in ``out_dir`` continues from its own config
    (and must have been trained on these very codes). Writes metrics.json with
    the held-out NLL in bits per code next to the codes' unigram entropies.
    """
    out = Path(out_dir)
    codes = codes if codes is not None else load_codes(codes_dir)
    if resume:
        stored = load_config(out)
        if stored.get("family") != "prior":
            raise CheckpointError(f"{out}: not a prior run")
        if stored.get("codes", {}).get("meta_sha256") != codes.meta_sha256:
            raise UserError(f"{out} was trained on other codes than {codes.path}; cannot resume")
        e = entry(stored["model"], "prior")
        run = RunConfig(
            model=e.name,
            model_config=from_dict(e.config_cls, stored["model_config"], "model"),
            train=from_dict(TrainConfig, stored["train"], "train"),
        )
    else:
        run = prior_run_config(prior, codes, overrides, conditional, **train_args)
        if out.exists() and not out.is_dir():
            raise UserError(f"{out} exists and is not a directory")
        if (out / CONFIG).exists():
            raise UserError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
    if len(codes.data.train) < run.train.batch_size:
        raise UserError(
            f"train.batch_size={run.train.batch_size} is larger than the "
            f"{len(codes.data.train)} training grids"
        )
    ctx = dist_context()  # under torchrun: every rank trains, rank 0 alone writes
    if run.train.batch_size % ctx.world:
        raise UserError(
            f"train.batch_size={run.train.batch_size} must be divisible by the {ctx.world} processes"
        )
    seed_everything(run.train.seed)
    model = entry(run.model, "prior").cls(run.model_config)
    barrier()  # every rank has checked the directory before rank 0 writes into it
    lock = RunLock(out)
    if ctx.is_main:
        ensure_dir(out)
        lock.acquire()
    metrics: dict[str, Any] = {}
    try:
        if not resume and ctx.is_main:
            write_config(out, _prior_json(run, codes))
        trainer = Trainer(model, run.train, out, progress=progress, metadata={"model": run.model})
        trainer.fit(codes.data, resume=resume)
        if ctx.is_main:
            metrics = _prior_metrics(model, codes)
            # the same number as a likelihood section, so `aegen report` lists it among the scores
            likelihood = {
                "bits_per_code": metrics["test_nll_bits"],
                "n": metrics["n_test"],
                "split": "test",
            }
            update_metrics_json(out, {"prior": metrics, "likelihood": likelihood})
    finally:
        lock.release()
    return TrainedPrior(model.eval(), out, metrics)


def _prior_metrics(model: torch.nn.Module, codes: CodeSet) -> dict[str, Any]:
    c = model.config
    test = codes.data.test
    labels = test.y if c.num_classes else None
    nll = model.nll_bits(test.x, labels)
    entropy = entropy_bits(test.x, codes.num_codes)
    return {
        "test_nll_bits": nll,
        "test_unigram_entropy_bits": entropy,
        "train_unigram_entropy_bits": entropy_bits(codes.data.train.x, codes.num_codes),
        "reduction_vs_unigram": 1.0 - nll / entropy if entropy > 0 else 0.0,
        "n_test": len(test),
    }


# =========================================================================== stage 4: samples


def generate(
    prior_dir: str | os.PathLike,
    vqvae_dir: str | os.PathLike,
    n: int,
    out_png: str | os.PathLike,
    seed: int = 0,
    label: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Stage 4: sample ``n`` images into a PNG grid, the codes beside it (same name, .npy)."""
    from ..viz import save_grid

    out_png = Path(out_png)
    g = torch.Generator().manual_seed(seed)
    images, codes = sample_images(
        prior_dir,
        vqvae_dir,
        n,
        generator=g,
        return_codes=True,
        label=label,
        temperature=temperature,
        top_k=top_k,
        use_cache=use_cache,
    )
    save_grid(out_png, images, nrow=min(10, n))
    atomic_write_bytes(out_png.with_suffix(".npy"), _npy_bytes(codes.numpy().astype(np.uint16)))
    return {
        "prior_weights_sha256": _sha256(Path(prior_dir) / MODEL),
        "vqvae_weights_sha256": _sha256(Path(vqvae_dir) / MODEL),
        "n": n,
        "seed": seed,
        "label": label,
        "temperature": temperature,
        "top_k": top_k,
    }


# =========================================================================== all four


def _split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    vq, pr = [], []
    for text in overrides:
        stage, _, rest = text.partition(".")
        if stage == "vqvae" and rest:
            vq.append(rest)
        elif stage == "prior" and rest:
            pr.append(rest)
        else:
            raise ConfigError(
                f"pipeline --set takes vqvae.SECTION.KEY=V or prior.SECTION.KEY=V, got {text!r}"
            )
    return vq, pr


def run_pipeline(
    out_dir: str | os.PathLike,
    prior: str = "transformer",
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    limit: int | None = None,
    overrides: list[str] | None = None,
    vqvae_epochs: int | None = None,
    prior_epochs: int | None = None,
    seed: int = 0,
    n: int = 100,
    temperature: float = 1.0,
    top_k: int | None = None,
    conditional: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """All four stages into ``out_dir``/{vqvae,codes,prior,samples}; returns a summary.

    ``overrides`` are ``vqvae.model.K=V``, ``vqvae.train.K=V``, ``prior.model.K=V``,
    ``prior.train.K=V``. Run it again after an interruption: finished stages whose
    inputs are unchanged are skipped, an interrupted training resumes.
    """
    from ..runs import finish_run, make_run_config, train_run

    quiet = False  # the one line per stage is always shown; progress bars follow `progress`
    out = Path(out_dir)
    vq_over, prior_over = _split_overrides(overrides or [])
    entry(prior, "prior")  # an unknown prior name fails before any work
    vq_run = make_run_config(
        "vqvae",
        data=data,
        overrides=vq_over,
        epochs=vqvae_epochs,
        seed=seed,
        limit=limit,
        data_dir=data_dir,
    )
    from ..runs import data_from_config

    dataset = data_from_config(vq_run.data)
    # the prior's settings are checked now, not after an hour of stage 1
    grid = (vq_run.model_config.num_codes, VQ_GRID, dataset.num_classes)
    prior_run_config(prior, grid, prior_over, conditional, epochs=prior_epochs, seed=seed)
    ensure_dir(out)
    dirs = {s: out / s for s in ("vqvae", "codes", "prior", "samples")}
    summary: dict[str, Any] = {"dir": str(out)}

    # ---- stage 1: the VQ-VAE
    state = stage_state(
        dirs["vqvae"], vq_run.to_json(), ("model", "model_config", "train", "data"), "VQ-VAE"
    )
    if state == "done" and "reconstruction" in read_metrics_json(dirs["vqvae"]):
        _log(f"stage 1/4: {dirs['vqvae']} is done; skipped", quiet)
    else:
        _log(f"stage 1/4: training the VQ-VAE into {dirs['vqvae']} ({state})", quiet)
        if state == "done":
            trained = train_run(None, dirs["vqvae"], resume=True, progress=progress, data=dataset)
        else:
            trained = train_run(
                None if state == "resume" else vq_run,
                dirs["vqvae"],
                resume=state == "resume",
                progress=progress,
                data=dataset,
            )
        finish_run(trained)
    summary["vqvae"] = read_metrics_json(dirs["vqvae"]).get("reconstruction", {})

    # ---- stage 2: codes
    if _codes_match(dirs["codes"], dirs["vqvae"], dataset):
        _log(f"stage 2/4: {dirs['codes']} matches the VQ-VAE; skipped", quiet)
    else:
        _log(f"stage 2/4: encoding into {dirs['codes']}", quiet)
        encode_run(dirs["vqvae"], dirs["codes"], data=dataset, overwrite=True, quiet=quiet)
    codes = load_codes(dirs["codes"])
    summary["codes"] = {k: v for k, v in codes.meta.items() if k not in ("files", "classes")}

    # ---- stage 3: the prior
    prior_run = prior_run_config(
        prior, codes, prior_over, conditional, epochs=prior_epochs, seed=seed
    )
    want = _prior_json(prior_run, codes)
    state = stage_state(dirs["prior"], want, ("model", "model_config", "train", "codes"), "prior")
    if state == "done" and _prior_finished(dirs["prior"]):
        _log(f"stage 3/4: {dirs['prior']} matches the codes; skipped", quiet)
    else:
        _log(f"stage 3/4: training the {prior} prior into {dirs['prior']} ({state})", quiet)
        if state == "fresh":
            train_prior(
                dirs["codes"],
                prior,
                dirs["prior"],
                prior_over,
                conditional,
                progress=progress,
                codes=codes,
                epochs=prior_epochs,
                seed=seed,
            )
        else:
            train_prior(
                dirs["codes"], prior, dirs["prior"], resume=True, progress=progress, codes=codes
            )
    summary["prior"] = read_metrics_json(dirs["prior"]).get("prior", {})

    # ---- stage 4: samples
    png, record = dirs["samples"] / "samples.png", dirs["samples"] / "samples.json"
    wanted = {
        "prior_weights_sha256": _sha256(dirs["prior"] / MODEL),
        "vqvae_weights_sha256": _sha256(dirs["vqvae"] / MODEL),
        "n": n,
        "seed": seed,
        "label": None,
        "temperature": temperature,
        "top_k": top_k,
    }
    done = False
    if record.is_file() and png.is_file() and png.with_suffix(".npy").is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            done = json.loads(record.read_text()) == wanted
    if done:
        _log(f"stage 4/4: {png} matches the prior; skipped", quiet)
    else:
        _log(f"stage 4/4: sampling {n} images into {png}", quiet)
        ensure_dir(dirs["samples"])
        info = generate(
            dirs["prior"], dirs["vqvae"], n, png, seed=seed, temperature=temperature, top_k=top_k
        )
        atomic_write_json(record, info)
    summary["samples"] = str(png)
    atomic_write_json(out / "summary.json", summary)
    return summary
