"""The VAE commands: train writes the diagnostics; sample, interpolate and sweep-beta work;
every user error is one line and exit 2, with no output file written."""

import json
import math

import pytest
from conftest import assert_user_error

TINY = ["--data", "synthetic", "--limit", "600", "--batch-size", "100", "--quiet"]
SMALL = ["--set", "model.hidden=64"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    from aegen.cli import main

    out = tmp_path_factory.mktemp("runs") / "vae2d"
    argv = ["train", "vae-mlp", "--out", str(out), "--epochs", "2", *TINY, *SMALL]
    assert main([*argv, "--set", "model.latent_dim=2"]) == 0
    return out


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    from aegen.cli import main

    out = tmp_path_factory.mktemp("runs") / "ae"
    assert main(["train", "ae-mlp", "--out", str(out), "--epochs", "1", *TINY, *SMALL]) == 0
    return out


def test_train_writes_the_vae_diagnostics(vae_run):
    vae = json.loads((vae_run / "metrics.json").read_text())["vae"]
    assert vae["latent_dim"] == 2 and 0 <= vae["active_units"] <= 2
    assert len(vae["kl_per_dim"]) == 2 and vae["kl"] >= 0
    assert vae["nll"] > 0 and vae["nll"] <= -vae["elbo"] + 1.0  # IWAE is not looser than the ELBO
    assert vae["sharpness"]["samples"] >= 0 and vae["sharpness"]["data"] > 0
    # the "likelihood" section aegen eval writes and aegen report compares, with the same numbers
    lik = json.loads((vae_run / "metrics.json").read_text())["likelihood"]
    assert lik["nll_nats"] == vae["nll"] and lik["n"] == vae["nll_images"] > 0
    assert lik["bits_per_dim"] == pytest.approx(lik["nll_nats"] / (784 * math.log(2)))
    assert lik["importance_samples"] == vae["nll_k"] and lik["split"] == "test"
    assert len(lik["data"]["fingerprint"]) > 8 and lik["data"]["test_images"] >= lik["n"]
    for name in ("kl_per_dim.png", "manifold.png", "latent_scatter.png", "samples.png"):
        assert (vae_run / "samples" / name).stat().st_size > 100, name
    header = (vae_run / "metrics.csv").read_text().splitlines()[0]
    for col in ("train_recon", "train_kl", "val_nelbo", "train_beta", "train_active_units"):
        assert col in header, col


def test_report_shows_the_vae_likelihood(cli, vae_run, tmp_path):
    """aegen report (issue 7) reads the likelihood section a VAE run writes, schema and all."""
    from aegen.eval.metrics import check_metrics

    metrics = check_metrics(json.loads((vae_run / "metrics.json").read_text()))
    out = tmp_path / "report.html"
    assert cli("report", vae_run, "--out", out).code == 0
    html = out.read_text()
    assert "NLL (nats/image)" in html and f"{metrics['likelihood']['nll_nats']:.2f}" in html


def test_sample_is_reproducible(cli, vae_run, tmp_path):
    a, b, c = (tmp_path / f"{n}.png" for n in "abc")
    assert cli("sample", vae_run, "--n", "12", "--out", a, "--seed", "3").code == 0
    assert cli("sample", vae_run, "--n", "12", "--out", b, "--seed", "3").code == 0
    r = cli("sample", vae_run, "--n", "12", "--out", c, "--seed", "3", "--temperature", "0.5")
    assert r.code == 0 and "12 samples" in r.out
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_interpolate(cli, vae_run, tmp_path):
    from PIL import Image

    out = tmp_path / "i.png"
    r = cli("interpolate", vae_run, "--out", out, "--pairs", "2", "--steps", "6")
    assert r.code == 0, r.err
    w, h = Image.open(out).size
    # 4 rows (2 pairs × linear, spherical) of 8 tiles (real, 6 decoded, real); 28 px + 2 pad, ×2
    assert (w, h) == (2 * (8 * 30 + 2), 2 * (4 * 30 + 2))


def test_vae_commands_refuse_other_runs_and_bad_input(cli, vae_run, ae_run, tmp_path):
    out = tmp_path / "x.png"
    assert_user_error(cli("sample", ae_run, "--out", out), "vae", "ae")
    assert_user_error(cli("interpolate", ae_run, "--out", out), "vae")
    assert_user_error(cli("sample", tmp_path / "nope", "--out", out), "no such run directory")
    assert_user_error(cli("sample", vae_run, "--out", tmp_path / "x.jpg"), ".png")
    assert_user_error(cli("sample", vae_run, "--out", out, "--n", "0"), "at least 1")
    assert_user_error(cli("sample", vae_run, "--out", out, "--temperature", "-1"), "positive")
    assert_user_error(cli("interpolate", vae_run, "--out", out, "--steps", "1"), "at least 2")
    assert not out.exists()
    bad_sweep = tmp_path / "sweep"
    assert_user_error(cli("sweep-beta", "--out", bad_sweep, "--model", "ae-mlp", *TINY), "VAE")
    assert_user_error(cli("sweep-beta", "--out", bad_sweep, "--betas", "1,x"), "not a number")
    assert_user_error(cli("sweep-beta", "--out", bad_sweep, "--betas", "1,-2"), "positive")
    assert_user_error(cli("sweep-beta", "--out", bad_sweep, "--betas", "1,1"), "repeated")
    assert_user_error(
        cli("sweep-beta", "--out", bad_sweep, "--set", "model.nope=1", *TINY), "model.nope"
    )
    assert not bad_sweep.exists()


def test_sweep_beta_draws_the_trade_off_and_resumes(cli, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep-beta", "--out", out, "--betas", "0.5,4", "--epochs", "2", *TINY, *SMALL]
    r = cli(*args)
    assert r.code == 0, r.err
    pts = {p["beta"]: p for p in json.loads((out / "sweep.json").read_text())["points"]}
    # more weight on the KL buys a cheaper code and a worse reconstruction
    assert pts[4.0]["rate"] < pts[0.5]["rate"]
    assert pts[4.0]["distortion"] > pts[0.5]["distortion"]
    for name in ("rate_distortion.png", "samples_by_beta.png"):
        assert (out / name).stat().st_size > 100
    weights = (out / "beta-4" / "model.safetensors").stat().st_mtime_ns
    r = cli(*args)  # a second run reads the finished runs back, trains nothing
    assert r.code == 0 and (out / "beta-4" / "model.safetensors").stat().st_mtime_ns == weights
    # with other settings it would not be this sweep: refused before anything is written
    sweep = (out / "sweep.json").read_bytes()
    for changed in (["--epochs", "3"], ["--limit", "700"], ["--set", "train.lr=1e-2"]):
        r = cli(*args, *changed)
        assert r.code == 2 and "other settings" in r.err, r.err
    assert (out / "sweep.json").read_bytes() == sweep
    assert (out / "beta-4" / "model.safetensors").stat().st_mtime_ns == weights
