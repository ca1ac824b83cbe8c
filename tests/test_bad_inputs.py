"""A corpus of bad inputs: each exits 2 with one `error:` line and changes no existing file.

Add a case here whenever a new command takes a new kind of input.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_cli_subprocess

from aegen.data.idx import write_idx

TINY = ["--data", "synthetic", "--limit", "600", "--epochs", "1", "--batch-size", "100", "--quiet"]


def _idx_dir(d: Path, n_train=60, n_test=20, shape=(28, 28), n_labels=None) -> Path:
    d.mkdir(parents=True)
    write_idx(d / "train-images-idx3-ubyte", np.zeros((n_train, *shape), np.uint8))
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(n_labels or n_train, np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((n_test, *shape), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(n_test, np.uint8))
    return d


class _Evil:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (Path("/tmp/aegen-pwned").write_text, ("pwned",))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: data directories good and bad, a finished run and broken copies of it."""
    from aegen.cli import main

    w = tmp_path_factory.mktemp("ws")
    run = w / "run"
    assert main(["train", "ae-mlp", "--out", str(run), "--set", "model.hidden=32", *TINY]) == 0

    empty = _idx_dir(w / "empty_file")
    (empty / "train-images-idx3-ubyte").write_bytes(b"")
    trunc = _idx_dir(w / "truncated")
    data = (trunc / "train-images-idx3-ubyte").read_bytes()
    (trunc / "train-images-idx3-ubyte").write_bytes(data[: len(data) // 2])
    magic = _idx_dir(w / "magic")
    (magic / "t10k-labels-idx1-ubyte").write_bytes(
        b"\x12\x34" + (magic / "t10k-labels-idx1-ubyte").read_bytes()[2:]
    )
    # the VQ pipeline's files: a VQ-VAE run, its codes (and a copy with a code out of range), a prior
    vq_tiny = [
        "model.num_codes=32",
        "model.codebook_dim=8",
        "model.channels=8,16",
        "model.res_dim=8",
    ]
    sets = [a for s in vq_tiny for a in ("--set", s)]
    assert main(["train", "vqvae", "--out", str(w / "vq"), *TINY, *sets]) == 0
    assert main(["encode", str(w / "vq"), "--out", str(w / "codes"), *TINY[:4], "--quiet"]) == 0
    prior = ["--epochs", "1", "--batch-size", "50", "--quiet", "--set", "model.d_model=32"]
    assert (
        main(
            [
                "train-prior",
                str(w / "codes"),
                "--prior",
                "transformer",
                "--out",
                str(w / "prior"),
                *prior,
            ]
        )
        == 0
    )
    shutil.copytree(w / "codes", w / "codes_big")
    grids = np.load(w / "codes_big" / "test.npy")
    grids[0, 0, 0] = 32  # one past the codebook
    np.save(w / "codes_big" / "test.npy", grids)

    _idx_dir(w / "count", n_labels=59)
    _idx_dir(w / "dims", shape=(32, 32))
    (w / "a_file").write_text("not a directory")

    for name, mutate in {
        "bad_weights": lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 40),
        "unknown_model": lambda d: _edit_config(d, model="no-such-model"),
        "broken_json": lambda d: (d / "config.json").write_text("{not json"),
        "bad_shapes": lambda d: _edit_config(d, model_config={"hidden": [16], "code_dim": 32}),
        "evil_state": lambda d: (d / "train_state.pt").write_bytes(_evil_state()),
        "metrics_list": lambda d: (d / "metrics.json").write_text("[1, 2]"),
        "metrics_dir": lambda d: ((d / "metrics.json").unlink(), (d / "metrics.json").mkdir()),
        "model_config_list": lambda d: _edit_config(d, model_config=[1]),
        "data_string": lambda d: _edit_config(d, data="synthetic"),
        "data_limit_string": lambda d: _edit_config(d, data={"limit": "many"}),
        "no_data": lambda d: _edit_config(d, data=None),
    }.items():
        shutil.copytree(run, w / name)
        mutate(w / name)
    return w


def _edit_config(d: Path, **changes):
    cfg = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            del cfg[k]
        else:
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) else v
    (d / "config.json").write_text(json.dumps(cfg))


def _evil_state() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"x": _Evil()}, buf, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    return buf.getvalue()


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# (argv with {ws} for the workspace, fragments the error line must contain)
CASES = [
    ("train ae-mlp --data {ws}/missing --out {ws}/o", ["no such data directory"]),
    ("train ae-mlp --data {ws}/empty_file --out {ws}/o", ["not an IDX file"]),
    ("train ae-mlp --data {ws}/truncated --out {ws}/o", ["truncated or corrupt"]),
    ("train ae-mlp --data {ws}/magic --out {ws}/o", ["wrong magic"]),
    ("train ae-mlp --data {ws}/count --out {ws}/o", ["counts must agree"]),
    ("train ae-mlp --data {ws}/dims --out {ws}/o", ["28×28"]),
    ("train ae-mlp --data {ws}/a_file --out {ws}/o", ["no such data directory"]),
    ("train ae-mlp --data fashion-mnist --data-dir {ws}/a_file --out {ws}/o", ["not found"]),
    ("train ae-nope --data synthetic --out {ws}/o", ["unknown model", "ae-mlp"]),
    ("train ae-mlp --data synthetic --out {ws}/o --set model.colour=red", ["model.colour"]),
    ("train ae-mlp --data synthetic --out {ws}/o --set model.code_dim=abc", ["integer"]),
    ("train ae-mlp --data synthetic --out {ws}/o --set train.lr=-1", ["positive"]),
    ("train ae-mlp --data synthetic --out {ws}/o --set train.lr=nan", ["finite"]),
    ("train ae-mlp --data synthetic --out {ws}/o --batch-size 0", ["at least 1"]),
    ("train ae-mlp --data synthetic --out {ws}/o --limit -5", [">= 0"]),
    ("train ae-mlp --data synthetic --out {ws}/o --set model.noise=salt", ["choose one of"]),
    ("train ae-mlp --data synthetic --out {ws}/a_file/run", ["cannot create directory"]),
    ("train ae-mlp --data synthetic --out {ws}/a_file", ["not a directory"]),
    ("train ae-mlp --data synthetic --out {ws}/run", ["already holds a run"]),
    ("train ae-conv --out {ws}/run --resume", ["ae-mlp run"]),
    ("train ae-mlp --out {ws}/evil_state --resume", ["not a loadable training state"]),
    ("reconstruct {ws}/run --out {ws}/run", [".png"]),
    ("reconstruct {ws}/bad_weights --out {ws}/r.png", ["safetensors"]),
    ("reconstruct {ws}/unknown_model --out {ws}/r.png", ["no-such-model"]),
    ("reconstruct {ws}/broken_json --out {ws}/r.png", ["unreadable"]),
    ("reconstruct {ws}/bad_shapes --out {ws}/r.png", ["shape"]),
    ("reconstruct {ws}/empty_file --out {ws}/r.png", ["not a run directory"]),
    ("info {ws}/a_file", ["no such run directory"]),
    ("classify {ws}/run --labels 1.5 --out {ws}/o", ["(0, 1]"]),
    ("semisup --data synthetic --fractions 0,0.5 --out {ws}/o", ["(0, 1]"]),
    ("semisup --data synthetic --fractions 0.5,0.5 --out {ws}/o", ["repeated"]),
    ("semisup --data synthetic --columns , --out {ws}/o", ["expected names"]),
    ("semisup --data synthetic --models ae-mlp,ae-mlp --out {ws}/o", ["repeated"]),
    ("encode {ws}/run --out {ws}/o", ["needs a vqvae run"]),
    ("train-prior {ws}/codes_big --prior pixelcnn --out {ws}/o", ["outside the codebook"]),
    ("train-prior {ws}/vq --prior pixelcnn --out {ws}/o", ["not a codes directory"]),
    ("generate {ws}/prior --vqvae {ws}/prior --out {ws}/r.png", ["vqvae"]),
    (
        "train-prior {ws}/codes --prior pixelcnn --out {ws}/prior --resume",
        ["transformer", "pixelcnn"],
    ),
    ("generate {ws}/vq --vqvae {ws}/vq --out {ws}/r.png", ["not a prior run"]),
    ("eval {ws}/run --n 5", ["at least 10"]),
    ("report {ws}/run --out {ws}/r.txt", [".html"]),
    ("tour --out {ws}/run --budget tiny --data synthetic", ["not empty"]),
    ("bench --json {ws}/run", ["is a directory"]),
    ("train gan --data synthetic --out {ws}/o --set model.r1_gamma=-1", ["model.r1_gamma"]),
    ("train gan --data synthetic --out {ws}/o --set model.beta1=1", ["model.beta1", "[0, 1)"]),
    ("train gan --data synthetic --out {ws}/o --set model.channels=8", ["model.channels"]),
    ("train gan --data synthetic --out {ws}/o --set model.objective=wgan", ["choose one of"]),
    ("train gan --data synthetic --out {ws}/o --set model.d_lr_scale=0", ["model.d_lr_scale"]),
    ("sample {ws}/run --out {ws}/r.png", ["does not sample", "gan"]),
    # a metrics.json that cannot be merged into: refused before training, not after
    ("train ae-mlp --out {ws}/metrics_list --resume --epochs 2", ["expected a JSON object"]),
    ("train ae-mlp --out {ws}/metrics_dir --resume --epochs 2", ["not a file"]),
    ("eval {ws}/metrics_list --n 10", ["metrics.json", "expected a JSON object"]),
    # config.json sections of the wrong shape, or missing
    ("info {ws}/model_config_list", ["model", "expected a JSON object"]),
    ("reconstruct {ws}/data_string --out {ws}/r.png", ["data", "expected a JSON object"]),
    ("eval {ws}/data_limit_string --n 10", ["data.limit", "integer"]),
    ("train ae-mlp --out {ws}/no_data --resume --epochs 2", ["'data' section is missing"]),
    # integers torch cannot hold
    ("train ae-mlp --data synthetic --out {ws}/o --seed 99999999999999999999999", ["too large"]),
    (
        "train ae-mlp --data synthetic --out {ws}/o --set train.seed=99999999999999999999",
        ["train.seed", "too large"],
    ),
    (
        "generate {ws}/prior --vqvae {ws}/vq --out {ws}/r.png --label 99999999999999999999",
        ["too large"],
    ),
    ("tour --out {ws}/o --seed -1", [">= 0"]),
    # what a command cannot do with this run, or cannot write
    ("reconstruct {ws}/prior --out {ws}/r.png", ["does not reconstruct"]),
    ("reconstruct {ws}/run --out {ws}/r.png --noise dropout --noise-level 1.5", ["below 1"]),
    ("reconstruct {ws}/run --out /proc/aegen-nowhere.png", ["cannot write"]),
    ("demo --out {ws}/a_file --data synthetic --limit 300 --epochs 1", ["not a directory"]),
    # the smallest number a command takes, named as it is
    ("primer --samples 0 --out {ws}/o", ["at least 1000"]),
    ("pipeline vqvae --data synthetic --limit 600 --out {ws}/run", ["holds a training run"]),
    ("compare-generators --eval-n 0 --minutes 1 --data synthetic --out {ws}/o", ["at least 10,"]),
]


@pytest.mark.parametrize(
    ("argv", "fragments"), CASES, ids=[c[0].split(" --")[0] + f"#{i}" for i, c in enumerate(CASES)]
)
def test_bad_input_is_one_clean_error(cli, ws, argv, fragments):
    before = _snapshot(ws)
    result = cli(*argv.format(ws=ws).split())
    assert_user_error(result, *fragments)
    assert _snapshot(ws) == before, "an existing file changed"
    assert not (ws / "o").exists() and not (ws / "r.png").exists()
    assert not Path("/tmp/aegen-pwned").exists()


def test_in_a_real_process_too(ws):
    """The same in a fresh interpreter: no traceback reaches the terminal."""
    for argv, fragments in CASES[:3] + CASES[20:21]:
        assert_user_error(run_cli_subprocess(*argv.format(ws=ws).split()), *fragments)
    assert not Path("/tmp/aegen-pwned").exists()


def test_resume_refuses_options_it_would_ignore(cli, ws):
    for extra in (["--set", "train.lr=1"], ["--seed", "3"], ["--data", "synthetic"]):
        assert_user_error(
            cli("train", "ae-mlp", "--out", ws / "run", "--resume", *extra), "own config.json"
        )


def test_a_relative_plugin_module_is_one_clean_error(ws):
    result = run_cli_subprocess("info", ws / "run", env={"AEGEN_PLUGINS": ".relative"})
    assert_user_error(result, "AEGEN_PLUGINS", "relative")
