"""aegen eval: what each kind of run is scored on, the record it leaves, and its refusals."""

import json
import math
import shutil

import fakes
import pytest
import torch
from conftest import assert_user_error

from aegen.data.loader import to_float
from aegen.errors import UserError
from aegen.eval import evaluate
from aegen.eval.evaluate import EvalOptions, draw_samples, evaluate_run, sampler_for_run
from aegen.eval.metrics import check_metrics, read_metrics_json

TINY = ["--data", "synthetic", "--limit", "1200", "--epochs", "1", "--batch-size", "100", "--quiet"]


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    from aegen.cli import main

    out = tmp_path_factory.mktemp("eval") / "ae"
    assert main(["train", "ae-mlp", "--out", str(out), "--set", "model.hidden=64", *TINY]) == 0
    return out


@pytest.fixture
def fake_runs(tmp_path):
    with fakes.registered():
        yield {
            mode: fakes.make_run(tmp_path / mode, mode) for mode in ("data", "noise", "shuffled")
        }


@pytest.fixture(autouse=True)
def no_default_features(tmp_path, monkeypatch):
    """Keep the user's cache out of the tests: no feature network unless one is given."""
    monkeypatch.setenv("AEGEN_CACHE", str(tmp_path / "cache"))


def test_a_reconstructing_run_gets_mse_psnr_ssim(cli, ae_run):
    before = read_metrics_json(ae_run)["reconstruction"]  # written by training
    r = cli("eval", ae_run, "--quiet")
    assert r.code == 0, r.err
    metrics = check_metrics(json.loads((ae_run / "metrics.json").read_text()))
    rec = metrics["reconstruction"]
    assert rec["mse"] == pytest.approx(before["mse"], rel=1e-6)  # the same test images
    assert rec["n"] == 1000 and rec["split"] == "test" and 0 < rec["ssim"] < 1
    assert rec["psnr"] >= 10 * math.log10(1 / rec["mse"]) - 1e-9  # Jensen
    assert (
        "samples" not in metrics and "likelihood" not in metrics
    )  # an AE neither samples nor has p(x)
    assert metrics["eval"]["seed"] == 0 and metrics["eval"]["data"]["name"] == "synthetic"
    assert "SSIM" in r.out


def test_a_sampling_run_is_scored_on_domain_features(cli, fake_runs, tiny_features):
    runs = fake_runs
    for mode in ("data", "noise"):
        args = ["--n", "300", "--seed", "4", "--kid-subsets", "10", "--nll-images", "100"]
        r = cli("eval", runs[mode], "--features", tiny_features.directory, *args, "--quiet")
        assert r.code == 0, r.err
    good, bad = (check_metrics(read_metrics_json(runs[m])) for m in ("data", "noise"))
    for m in (good, bad):
        s = m["samples"]
        assert s["n_samples"] == 300 and s["n_real"] == 300 and s["seed"] == 4 and s["k"] == 3
        assert s["features"]["sha256"] == tiny_features.sha256
        assert s["features"]["test_accuracy"] == tiny_features.info["test_accuracy"]
        assert m["eval"]["options"]["n"] == 300 and s["kid_subsets"] == 10
        assert m["likelihood"]["n"] == 100 and m["reconstruction"]["ssim"] == pytest.approx(1.0)
    g, b = good["samples"], bad["samples"]
    # real images drawn from the data distribution against uniform noise
    assert g["fid"] * 10 < b["fid"]
    assert g["kid_mean"] < b["kid_mean"]
    # (the noise's precision is not asserted: with 300 real points one outlier's wide k-NN
    # ball can swallow the whole noise cluster, the known weakness of k-NN precision)
    assert g["precision"] > 0.5 and g["recall"] > 0.5 > b["recall"]
    assert (runs["data"] / "samples" / "scored_samples.png").is_file()


def test_likelihood_closed_form_in_nats_and_bits_per_dim(fake_runs, small_synthetic):
    """The fake's log p(x) is exactly Gaussian, so the reported NLL has a closed form."""
    x = to_float(small_synthetic.test.x[:50]).double()
    nll = (0.5 * (x - 0.5).pow(2).flatten(1).sum(1) + 0.5 * 784 * math.log(2 * math.pi)).mean()
    with fakes.registered():
        result = evaluate_run(
            fake_runs["data"],
            small_synthetic,
            options=EvalOptions(nll_images=50, iwae_k=4, seed=9),
            only=["likelihood"],
        )
    lik = check_metrics(result.sections)["likelihood"]
    assert lik["nll_nats"] == pytest.approx(nll.item(), rel=1e-6)
    assert lik["bits_per_dim"] == pytest.approx(nll.item() / (784 * math.log(2)), rel=1e-6)
    assert lik["n"] == 50 and lik["importance_samples"] == 4 and lik["seed"] == 9
    assert set(result.sections) == {"likelihood", "eval"} and result.samples is None


def test_same_seed_same_scores_other_seed_other_samples(fake_runs, small_synthetic, tiny_features):
    def scores(seed):
        with fakes.registered():
            r = evaluate_run(
                fake_runs["shuffled"],
                small_synthetic,
                tiny_features,
                EvalOptions(n=200, seed=seed, kid_subset_size=100, kid_subsets=10),
                only=["samples"],
            )
        return r.sections["samples"], r.samples

    (a, xa), (b, xb), (c, xc) = scores(1), scores(1), scores(2)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    keys = ("fid", "kid_mean", "kid_std", "precision", "recall")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["fid"] != c["fid"]


def test_draw_samples_batches_from_one_generator():
    sampler = lambda n, g: torch.rand(n, 1, 28, 28, generator=g)  # noqa: E731
    x = draw_samples(sampler, 25, seed=3, batch_size=10)
    assert x.shape == (25, 1, 28, 28)
    g = torch.Generator().manual_seed(3)
    ref = torch.cat([sampler(10, g), sampler(10, g), sampler(5, g)])
    assert torch.equal(x, ref)
    with pytest.raises(RuntimeError, match="shape"):
        draw_samples(lambda n, g: torch.rand(n, 3, 28, 28), 4, seed=0)


def test_eval_keeps_other_sections_and_replaces_its_own(cli, fake_runs, tiny_features):
    from aegen.eval.metrics import update_metrics_json

    run = fake_runs["data"]
    update_metrics_json(run, {"someone_else": {"x": 1}, "samples": {"stale": True}})
    r = cli(
        "eval",
        run,
        "--features",
        tiny_features.directory,
        "--n",
        "100",
        "--only",
        "samples",
        "--quiet",
    )
    assert r.code == 0, r.err
    metrics = check_metrics(read_metrics_json(run))
    assert metrics["someone_else"] == {"x": 1}
    assert "stale" not in metrics["samples"] and metrics["samples"]["n_samples"] == 100


def test_the_default_feature_network_is_found(cli, fake_runs, tiny_features, tmp_path):
    from aegen.eval.features import default_features_dir

    shutil.copytree(tiny_features.directory, default_features_dir("synthetic"))
    r = cli(
        "eval",
        fake_runs["noise"],
        "--n",
        "50",
        "--only",
        "samples",
        "--kid-subsets",
        "5",
        "--quiet",
    )
    assert r.code == 0, r.err
    assert (
        read_metrics_json(fake_runs["noise"])["samples"]["features"]["sha256"]
        == tiny_features.sha256
    )


def test_sampler_lookup(fake_runs, tmp_path, monkeypatch):
    with fakes.registered():
        model = fakes.FakeSampler(fakes.FakeSamplerConfig(mode="noise"))
        sampler = sampler_for_run(fake_runs["noise"], model, EvalOptions())
        assert sampler(3, torch.Generator().manual_seed(0)).shape == (3, 1, 28, 28)
        # a sampler registered for the family wins over the model's own method
        monkeypatch.setitem(evaluate._SAMPLER_FACTORIES, "vae", lambda d, m, o: "registered")
        assert sampler_for_run(fake_runs["noise"], model, EvalOptions()) == "registered"


def _write_prior_run(d, classes=0):
    d.mkdir()
    cfg = {"model": "pixelcnn", "family": "prior", "data": {"name": "synthetic"}}
    (d / "config.json").write_text(json.dumps({**cfg, "model_config": {"num_classes": classes}}))
    return d


def test_a_prior_run_is_sampled_through_its_vqvae(tmp_path, monkeypatch, fake_runs):
    """Images come from prior_runs.sample_images(prior_dir, vqvae_dir, n, generator); a
    conditional prior's are drawn for its classes in turn, across the sampler's calls."""
    from aegen import prior_runs

    calls = []

    def sample_images(prior_dir, vqvae_dir, n, generator=None, label=None):
        calls.append((prior_dir, vqvae_dir, n, None if label is None else label.tolist()))
        return torch.rand(n, 1, 28, 28, generator=generator)

    monkeypatch.setattr(prior_runs, "sample_images", sample_images)
    prior = _write_prior_run(tmp_path / "prior")
    with pytest.raises(UserError, match="--vqvae"):
        sampler_for_run(prior, None, EvalOptions())
    with pytest.raises(UserError, match="is a vae run"):  # not a VQ-VAE run directory
        with fakes.registered():
            sampler_for_run(prior, None, EvalOptions(vqvae_dir=str(fake_runs["data"])))
    monkeypatch.setattr(evaluate, "load", lambda d, family=None: None)  # accept any VQ-VAE dir
    sampler = sampler_for_run(prior, None, EvalOptions(vqvae_dir="vq"))
    assert draw_samples(sampler, 7, seed=0, batch_size=4).shape == (7, 1, 28, 28)
    assert calls == [(prior, "vq", 4, None), (prior, "vq", 3, None)]
    calls.clear()
    conditional = _write_prior_run(tmp_path / "conditional", classes=3)
    sampler = sampler_for_run(conditional, None, EvalOptions(vqvae_dir="vq"))
    draw_samples(sampler, 7, seed=0, batch_size=4)
    assert [c[3] for c in calls] == [[0, 1, 2, 0], [1, 2, 0]]


def test_user_errors_leave_metrics_untouched(cli, fake_runs, tiny_features, ae_run, tmp_path):
    from aegen.eval.metrics import update_metrics_json

    run = fake_runs["data"]
    update_metrics_json(run, {"reconstruction": {"mse": 0.25, "split": "test", "n": 3}})
    watched = [run / "metrics.json", ae_run / "metrics.json"]  # both are named below
    before = [p.read_bytes() for p in watched]  # real files: a missing one would raise here
    assert_user_error(cli("eval", run, "--n", "100"), "feature network", "aegen features train")
    assert_user_error(
        cli("eval", run, "--features", tiny_features.directory, "--n", "5"),
        "--n must be at least 10",
    )
    assert_user_error(cli("eval", run, "--features", tmp_path / "nope"), "no such feature network")
    other = tmp_path / "other-data"
    shutil.copytree(tiny_features.directory, other)
    info = json.loads((other / "features.json").read_text())
    info["data"]["name"] = "mnist"
    (other / "features.json").write_text(json.dumps(info))
    assert_user_error(cli("eval", run, "--features", other, "--n", "100"), "trained on mnist")
    assert_user_error(cli("eval", tmp_path / "nowhere"), "no such run directory")
    assert_user_error(cli("eval", ae_run, "--only", "everything"), "invalid choice")
    assert_user_error(cli("eval", ae_run, "--only", "likelihood"), "nothing to score")
    assert_user_error(cli("eval", tiny_features.directory), "feature-cnn run neither reconstructs")
    assert [p.read_bytes() for p in watched] == before
    assert not (run / "samples" / "scored_samples.png").exists()
