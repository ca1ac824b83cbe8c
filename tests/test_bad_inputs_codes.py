"""Bad inputs of the VQ pipeline's stages 2-4 and of commands over tiny data.

A corrupt codes directory (its meta.json, an array file, its labels) is refused
with one ``error:`` line and exit status 2 before a prior's run directory is made;
a ``--limit`` too small to leave validation images is handled (the split is
empty, as ``aegen train`` has it); an output path taken by a directory is refused
before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_user_error

from aegen.cli import main
from aegen.data.codes import CODES_FORMAT, META, SPLITS, codes_match, encode_split, load_codes
from aegen.data.datasets import Split
from aegen.errors import DataError

QUIET_TINY = ["--data", "synthetic", "--limit", "60", "--epochs", "1", "--batch-size", "20"]
VQ_TINY = ["model.num_codes=8", "model.codebook_dim=4", "model.channels=4,8", "model.res_dim=4"]
PRIOR_TINY = ["--epochs", "1", "--batch-size", "10", "--quiet", "--set", "model.d_model=16"]
K, GRID, CLASSES = 8, (7, 7), ["a", "b", "c"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """An ae-mlp run, a VQ-VAE run, its codes and a prior, each trained for one tiny epoch."""
    w = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    ae = ["train", "ae-mlp", "--out", str(w / "ae"), *QUIET_TINY, "--quiet"]
    assert main([*ae, *_sets(["model.hidden=16", "model.code_dim=8"])]) == 0
    vq = ["train", "vqvae", "--out", str(w / "vq"), *QUIET_TINY, "--quiet", *_sets(VQ_TINY)]
    assert main(vq) == 0
    assert main(["encode", str(w / "vq"), "--out", str(w / "codes"), "--quiet"]) == 0
    prior = ["train-prior", str(w / "codes"), "--prior", "pixelcnn", "--out", str(w / "prior")]
    assert main([*prior, *PRIOR_TINY]) == 0
    return w


def _codes_dir(d: Path, labels: dict[str, np.ndarray] | None = None, **meta_changes) -> Path:
    """A hand-made codes directory as `aegen encode` writes one: K codes on a 7×7 grid,
    3 classes, 30/6/12 grids; ``labels`` replace a split's labels, ``meta_changes`` keys
    of meta.json (the value ``...`` removes one)."""
    rng = np.random.default_rng(0)
    d.mkdir(parents=True)
    meta = {
        "format": CODES_FORMAT, "K": K, "D": 4, "H": GRID[0], "W": GRID[1],
        "vqvae_run": "none", "vqvae_weights_sha256": "0" * 64, "data": "hand-made",
        "data_fingerprint": "1" * 64, "classes": CLASSES,
        "counts": {"train": 30, "val": 6, "test": 12}, "files": {},
    }  # fmt: skip
    for name in SPLITS:
        n = meta["counts"][name]
        arrays = {
            f"{name}.npy": rng.integers(0, K, (n, *GRID)).astype(np.uint16),
            f"{name}_labels.npy": (labels or {}).get(name, np.arange(n) % len(CLASSES)),
        }
        for file, a in arrays.items():
            np.save(d / file, a)
            meta["files"][file] = hashlib.sha256((d / file).read_bytes()).hexdigest()
    for key, value in meta_changes.items():
        if value is ...:
            del meta[key]
        else:
            meta[key] = value
    (d / META).write_text(json.dumps(meta))
    return d


def _train_prior(cli, codes: Path, out: Path):
    return cli("train-prior", codes, "--prior", "pixelcnn", "--out", out, *PRIOR_TINY)


# --------------------------------------------------------------------------- codes: meta.json


def test_a_hand_made_codes_dir_loads(tmp_path):
    """The control for the refusals below: undamaged, the directory loads."""
    codes = load_codes(_codes_dir(tmp_path / "c"))
    assert (codes.num_codes, codes.grid, codes.data.num_classes) == (K, GRID, 3)
    assert [len(s) for s in (codes.data.train, codes.data.val, codes.data.test)] == [30, 6, 12]


@pytest.mark.parametrize(
    "key, value",
    [
        ("K", "abc"), ("K", None), ("K", [K]), ("K", "8"), ("K", True), ("K", 0), ("K", 1),
        ("K", -2), ("K", 10**12), ("K", 2**16 + 1), ("K", 8.0),
        ("H", None), ("W", "7"), ("H", 0),
    ],
)  # fmt: skip
def test_a_meta_number_of_the_wrong_kind_is_refused(tmp_path, key, value):
    d = _codes_dir(tmp_path / "c", **{key: value})
    with pytest.raises(DataError, match=f"meta.json: {key} must be an integer"):
        load_codes(d)


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("files", list(SPLITS), "files must map"),
        ("files", {"train.npy": 1}, "files must map"),
        ("classes", "abc", "classes must be"),
        ("classes", [], "classes must be"),
        ("classes", [0, 1, 2], "classes must be"),
        ("vqvae_weights_sha256", 5, "vqvae_weights_sha256 must be"),
    ],
)
def test_a_meta_section_of_the_wrong_shape_is_refused(tmp_path, key, value, fragment):
    d = _codes_dir(tmp_path / "c", **{key: value})
    with pytest.raises(DataError, match=f"meta.json: {fragment}"):
        load_codes(d)


def test_codes_with_a_broken_meta_do_not_match_instead_of_crashing(tmp_path):
    """The pipeline asks whether its codes are up to date; a broken meta.json says no."""
    data = types.SimpleNamespace(fingerprint=lambda: "1" * 64)
    good = _codes_dir(tmp_path / "good")
    assert codes_match(good, "0" * 64, data)
    bad = _codes_dir(tmp_path / "bad", files=list(SPLITS))
    assert not codes_match(bad, "0" * 64, data)


@pytest.mark.parametrize("k", [10**12, "abc", 0])
def test_train_prior_refuses_a_bad_K_before_writing(tmp_path, cli, k):
    d = _codes_dir(tmp_path / "c", K=k)
    assert_user_error(_train_prior(cli, d, tmp_path / "p"), "meta.json", "K must be")
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- codes: arrays


def test_an_empty_array_file_is_refused(tmp_path, cli):
    d = _codes_dir(tmp_path / "c")
    (d / "train.npy").write_bytes(b"")
    with pytest.raises(DataError, match="train.npy: not a readable .npy file"):
        load_codes(d)
    assert_user_error(_train_prior(cli, d, tmp_path / "p"), "train.npy")
    assert not (tmp_path / "p").exists()


def test_a_directory_under_an_array_name_is_not_a_file(tmp_path):
    d = _codes_dir(tmp_path / "c")
    (d / "test.npy").unlink()
    (d / "test.npy").mkdir()
    with pytest.raises(DataError, match="test.npy: not a file"):
        load_codes(d)


def test_an_npz_archive_under_an_npy_name_is_refused(tmp_path):
    d = _codes_dir(tmp_path / "c")
    with open(d / "val.npy", "wb") as f:
        np.savez(f, x=np.zeros((6, *GRID), np.uint16))
    with pytest.raises(DataError, match="val.npy: not a .npy file"):
        load_codes(d)


@pytest.mark.parametrize(
    "labels, fragment",
    [
        (np.array([0, 1, -3, 2, 0, 1], np.int64), "label -3 is negative"),
        (np.array([0, 1, 57, 2, 0, 1], np.int64), "label 57 is outside the 3 classes"),
        (np.array([0, 1, 3, 2, 0, 1], np.int64), "valid labels are 0..2"),
    ],
)
def test_labels_outside_the_classes_are_refused_before_a_run_dir_is_made(
    tmp_path, cli, labels, fragment
):
    """A negative label once crashed the prior's embedding after config.json was written,
    leaving a directory that neither a fresh run nor --resume would take; one past the
    classes was trained on silently."""
    d = _codes_dir(tmp_path / "c", labels={"val": labels})
    with pytest.raises(DataError, match="val_labels.npy"):
        load_codes(d)
    assert_user_error(_train_prior(cli, d, tmp_path / "p"), "val_labels.npy", fragment)
    assert not (tmp_path / "p").exists()


def test_without_a_list_of_classes_only_negative_labels_are_refused(tmp_path):
    """An older meta.json without classes: as many classes as the largest label needs."""
    big = np.array([0, 1, 5, 2, 0, 1], np.int64)
    assert load_codes(_codes_dir(tmp_path / "a", {"val": big}, classes=...)).data.num_classes == 6
    neg = np.array([0, -1, 0, 0, 0, 0], np.int64)
    with pytest.raises(DataError, match="label -1 is negative"):
        load_codes(_codes_dir(tmp_path / "b", {"val": neg}, classes=...))


def test_resume_refuses_a_prior_whose_record_of_its_codes_is_broken(runs, tmp_path, cli):
    out = tmp_path / "prior"
    shutil.copytree(runs / "prior", out)
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "codes": [1]}))
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    r = cli("train-prior", runs / "codes", "--prior", "pixelcnn", "--out", out, "--resume")
    assert_user_error(r, "cannot resume")
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before


# --------------------------------------------------------------------------- a small --limit


def test_encode_split_of_an_empty_split_is_an_empty_grid_array(runs):
    from aegen.checkpoint import load

    vq = load(runs / "vq", family="vqvae")
    empty = Split(torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    codes = encode_split(vq, empty)
    assert codes.shape == (0, *vq.grid) and codes.dtype == np.uint16


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_encode_with_a_limit_too_small_for_validation_images(runs, tmp_path, cli, limit):
    """--limit N < 6 leaves no validation images: the codes hold an empty val split, and
    the test codes are the first N of the full encoding's."""
    out = tmp_path / "codes"
    r = cli("encode", runs / "vq", "--out", out, "--limit", limit, "--quiet")
    assert r.code == 0, r.err
    codes, full = load_codes(out), load_codes(runs / "codes")
    assert len(codes.data.val) == 0 and codes.data.val.x.shape[1:] == GRID
    assert len(codes.data.train) == len(codes.data.test) == limit
    assert torch.equal(codes.data.test.x, full.data.test.x[:limit])


@pytest.mark.parametrize("mode", ["probe", "finetune"])
def test_classify_with_a_limit_too_small_for_validation_images(runs, tmp_path, cli, mode):
    out = tmp_path / "cls"
    args = ["classify", runs / "ae", "--limit", "5", "--mode", mode, "--out", out]
    r = cli(*args, "--epochs", "1", "--min-steps", "1", "--quiet")
    assert r.code == 0, r.err
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=_not_json)["classification"]  # no NaN in the file
    assert np.array(metrics["confusion"]).sum() == 5  # the 5 test images, each once
    assert metrics["n_labeled"] == 5
    assert metrics["val_acc"] is None and "no validation images" in r.out


def _not_json(name: str):
    raise AssertionError(f"{name} is not JSON: another tool could not read the file")


def test_explore_static_with_one_test_image(runs, tmp_path, cli):
    """The latent map of an 8-D code needs two axes even when a single image spans none."""
    r = cli("explore", runs / "ae", "--static", tmp_path / "st", "--limit", "1")
    assert r.code == 0, r.err
    assert (tmp_path / "st" / "index.html").is_file()


# --------------------------------------------------------------------------- outputs


def test_generate_refuses_a_directory_where_the_codes_go_before_writing(runs, tmp_path, cli):
    (tmp_path / "o.npy").mkdir()
    args = ["generate", runs / "prior", "--vqvae", runs / "vq", "--n", "2"]
    assert_user_error(cli(*args, "--out", tmp_path / "o.png"), "o.npy", "is a directory")
    assert not (tmp_path / "o.png").exists()
    assert (tmp_path / "o.npy").is_dir() and not any((tmp_path / "o.npy").iterdir())
    r = cli(*args, "--out", tmp_path / "p.png")  # the control: another name is written
    assert r.code == 0, r.err
    assert (tmp_path / "p.png").is_file() and np.load(tmp_path / "p.npy").shape == (2, *GRID)


def test_generate_refused_for_its_runs_makes_no_output_folder(runs, tmp_path, cli):
    out = tmp_path / "new" / "o.png"
    r = cli("generate", runs / "ae", "--vqvae", runs / "vq", "--n", "2", "--out", out)
    assert_user_error(r, "not a prior run")
    assert not (tmp_path / "new").exists()
