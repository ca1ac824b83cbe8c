"""The command line: the main paths work, and every user error is one line and exit 2."""

import json
import math
import os

import pytest
from conftest import assert_user_error, run_cli_subprocess

from aegen.data.idx import write_idx

TINY = ["--data", "synthetic", "--limit", "600", "--epochs", "1", "--batch-size", "100", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from aegen.cli import main

    out = tmp_path_factory.mktemp("runs") / "ae"
    assert main(["train", "ae-mlp", "--out", str(out), "--set", "model.hidden=64", *TINY]) == 0
    return out


def test_train_writes_a_complete_run(trained_run):
    for name in (
        "config.json",
        "model.safetensors",
        "best.safetensors",
        "train_state.pt",
        "metrics.csv",
        "metrics.json",
        "samples/reconstructions.png",
    ):
        assert (trained_run / name).is_file(), name
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["model"] == "ae-mlp" and cfg["model_config"]["hidden"] == [64]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    mse, psnr = metrics["reconstruction"]["mse"], metrics["reconstruction"]["psnr"]
    # mean per-image PSNR is at least the PSNR of the mean MSE (Jensen: -log is convex)
    assert 0 < mse < 1 and psnr >= 10 * math.log10(1 / mse) - 1e-9
    assert not (trained_run / ".lock").exists()


def test_reconstruct_and_info(cli, trained_run, tmp_path):
    r = cli("reconstruct", trained_run, "--n", "10", "--out", tmp_path / "r.png")
    assert r.code == 0 and (tmp_path / "r.png").stat().st_size > 100
    r = cli("info", trained_run, "--json")
    info = json.loads(r.out)
    assert (
        info["model"] == "ae-mlp"
        and info["parameters"] > 0
        and "model.safetensors" in info["files"]
    )


def test_resume_continues_a_finished_run(cli, trained_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    # raise the epoch count through the stored config, then resume
    cfg = json.loads((copy / "config.json").read_text())
    cfg["train"]["epochs"] = 2
    (copy / "config.json").write_text(json.dumps(cfg))
    r = cli("train", "ae-mlp", "--out", copy, "--resume", "--quiet")
    assert r.code == 0, r.err
    assert len((copy / "metrics.csv").read_text().strip().splitlines()) == 3


def test_phased_cli(cli, tmp_path):
    r = cli(
        "train",
        "ae-mlp",
        "--out",
        tmp_path / "p",
        "--phased",
        "--finetune-epochs",
        "1",
        "--set",
        "model.hidden=32",
        *TINY,
    )
    assert r.code == 0, r.err
    text = (tmp_path / "p" / "metrics.csv").read_text()
    assert "phase1" in text and "phase2" in text and "finetune" in text


@pytest.fixture
def bad_data(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    import numpy as np

    write_idx(d / "train-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(9, np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(10, np.uint8))
    return d


def test_user_errors(cli, tmp_path, bad_data, trained_run):
    out = tmp_path / "o"
    cases = [
        (
            ("train", "ae-mlp", "--data", tmp_path / "missing", "--out", out),
            ["no such data directory"],
        ),
        (("train", "ae-mlp", "--data", bad_data, "--out", out), ["counts must agree"]),
        (("train", "ae-nope", "--data", "synthetic", "--out", out), ["ae-conv", "ae-mlp"]),
        (
            ("train", "ae-mlp", "--data", "synthetic", "--out", out, "--set", "model.codedim=2"),
            ["model.codedim", "model.code_dim"],
        ),
        (
            ("train", "ae-mlp", "--data", "synthetic", "--out", out, "--set", "train.lr=nan"),
            ["finite"],
        ),
        (
            ("train", "ae-mlp", "--data", "synthetic", "--out", out, "--set", "model.code_dim=-3"),
            ["at least 1"],
        ),
        (("train", "ae-mlp", "--data", "synthetic", "--out", out, "--epochs", "0"), ["at least 1"]),
        (
            ("train", "ae-mlp", "--data", "synthetic", "--out", out, "--batch-size", "x"),
            ["integer"],
        ),
        (("train", "ae-mlp", "--data", "synthetic", "--out", trained_run), ["already holds a run"]),
        (
            ("train", "ae-conv", "--out", trained_run, "--resume"),
            ["ae-mlp run"],
        ),
        (
            ("train", "ae-mlp", "--out", out, "--resume"),
            ["no such run directory"],
        ),
        (("train", "ae-conv", "--data", "synthetic", "--out", out, "--phased"), ["ae-mlp"]),
        (
            ("train", "ae-mlp", "--data", "synthetic", "--out", out, "--batch-size", "99999"),
            ["larger than"],
        ),
        (("train", "ae-mlp"), ["--out"]),
        (("reconstruct", tmp_path, "--out", tmp_path / "r.png"), ["not a run directory"]),
        (("reconstruct", trained_run, "--out", tmp_path / "r.txt"), [".png"]),
        (("reconstruct", trained_run, "--out", tmp_path), [".png"]),
        (("reconstruct", trained_run, "--n", "-1", "--out", tmp_path / "r.png"), ["at least 1"]),
        (("info", tmp_path / "nowhere"), ["no such run directory"]),
        (("frobnicate",), ["invalid choice"]),
    ]
    for argv, fragments in cases:
        assert_user_error(cli(*argv), *fragments)
    assert not out.exists()  # no error left a directory behind


def test_unwritable_out(cli, tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions; a path *through a file* is unwritable for everyone
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "run"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = ro / "run"
    r = cli("train", "ae-mlp", "--out", target, *TINY)
    assert_user_error(r)


def test_corrupt_weights_are_refused(cli, trained_run, tmp_path):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(trained_run, copy)
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    assert_user_error(cli("info", copy), "safetensors")
    cfg = json.loads((copy / "config.json").read_text())
    cfg["model"] = "no-such-model"
    (copy / "config.json").write_text(json.dumps(cfg))
    assert_user_error(cli("info", copy), "no-such-model")


def test_real_process_prints_no_traceback(tmp_path):
    r = run_cli_subprocess("train", "ae-mlp", "--data", tmp_path / "nope", "--out", tmp_path / "o")
    assert_user_error(r, "no such data directory")


def test_help_for_every_command(cli):
    from aegen.cli import COMMANDS

    for name in COMMANDS:
        r = cli(name, "--help")
        assert r.code == 0 and "usage" in r.out.lower(), name
