"""The four VQ-VAE stages on synthetic data: end to end, resuming, and the refusals."""

import contextlib
import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_user_error
from safetensors.torch import load_file

import aegen
from aegen.checkpoint import MODEL, load, load_config, save_model, weights_hash
from aegen.data.loader import to_float
from aegen.eval.evaluate import EvalOptions, ReconstructionSampler, draw_samples, evaluate_run
from aegen.eval.metrics import frechet_distance
from aegen.pipelines import vq_prior, vq_scores
from aegen.pipelines.vq_prior import load_codes, run_pipeline, sample_images
from aegen.pipelines.vq_scores import fid_against_steps
from aegen.priors.base import PriorConfig
from aegen.priors.sampling import balanced_sampler
from aegen.runs import data_from_config, run_config_from_json

TINY = [
    "vqvae.model.num_codes=32",
    "vqvae.model.codebook_dim=8",
    "vqvae.model.channels=8,16",
    "vqvae.model.res_dim=8",
    "vqvae.train.batch_size=25",
    "prior.model.d_model=32",
    "prior.model.n_layers=2",
    "prior.train.batch_size=50",
    # the transformer's warm-up of 200 steps is longer than these runs: without these two
    # its one epoch ended above the unigram entropy (5.31 vs 4.24 bits/code, measured)
    "prior.train.warmup_steps=0",
    "prior.train.lr=3e-3",
]
# W = 1 and T = 1, so that samples compare with sample_images and `aegen eval` draws
ARGS = dict(
    prior="transformer", data="synthetic", limit=600, vqvae_epochs=3, prior_epochs=3, n=12,
    temperature=1.0, guidance=1.0,
)  # fmt: skip


def _pipeline(out, capsys=None):
    summary = run_pipeline(out, overrides=TINY, progress=False, **ARGS)
    return summary


@pytest.fixture(scope="module", autouse=True)
def no_cached_features(tmp_path_factory):
    """An empty aegen cache: no feature network is found unless a test names one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AEGEN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One finished pipeline (shared by the tests below; they copy before changing it)."""
    out = tmp_path_factory.mktemp("vq") / "run"
    torch.manual_seed(0)
    return out, _pipeline(out)


def _cli_args(out):
    args = ["pipeline", "vqvae", "--data", "synthetic", "--limit", "600", "--out", out]
    args += ["--prior", "transformer", "--vqvae-epochs", "3", "--prior-epochs", "3", "--n", "12"]
    args += ["--temperature", "1", "--guidance", "1"]
    for s in TINY:
        args += ["--set", s]
    return args + ["--quiet"]


def test_pipeline_writes_all_four_stages(done):
    out, summary = done
    for f in (
        "vqvae/model.safetensors",
        "codes/meta.json",
        "codes/train.npy",
        "codes/test.npy",
        "prior/model.safetensors",
        "samples/samples.png",
        "samples/samples.npy",
        "summary.json",
    ):
        assert (out / f).is_file(), f
    meta = json.loads((out / "codes/meta.json").read_text())
    assert (meta["K"], meta["D"], meta["H"], meta["W"]) == (32, 8, 7, 7)
    assert meta["vqvae_weights_sha256"] == weights_hash(out / "vqvae" / MODEL)
    test = np.load(out / "codes/test.npy")
    assert test.dtype == np.uint16 and test.shape == (600, 7, 7) and test.max() < 32
    samples = np.load(out / "samples/samples.npy")
    assert samples.shape == (12, 7, 7) and samples.dtype == np.uint16 and samples.max() < 32
    prior = summary["prior"]
    # it learned more than the codes' frequencies: 3.21 vs 4.24 bits/code when measured
    assert prior["test_nll_bits"] < 0.9 * prior["test_unigram_entropy_bits"], prior
    # how long it took, stage by stage, and how much CPU time the machine lost meanwhile
    t = json.loads((out / "summary.json").read_text())["time"]
    assert list(t["stages_wall_s"]) == ["vqvae", "codes", "prior", "samples"]
    assert t["wall_s"] >= sum(t["stages_wall_s"].values()) - 0.5 and t["cpu_s"] > 0
    assert t["stages_wall_s"]["vqvae"] > 0 and t["stages_wall_s"]["prior"] > 0
    assert t["steal"] is None or 0 <= t["steal"] < 1


def test_decoding_the_codes_equals_the_reconstruction(done):
    out, _ = done
    vq = load(out / "vqvae", family="vqvae")
    data = aegen.load_data("synthetic", val_size=5000, limit=600)
    codes = load_codes(out / "codes")
    assert torch.equal(codes.data.test.y, data.test.y)
    x = to_float(data.test.x[:100])
    assert torch.equal(vq.decode_indices(codes.data.test.x[:100]), vq.reconstruct(x))


def test_pipeline_resumes_after_stage_3_output_is_removed(done, tmp_path, cli):
    src, _ = done
    out = tmp_path / "run"
    shutil.copytree(src, out)
    kept = {p: (out / p).stat().st_mtime_ns for p in ("vqvae/model.safetensors", "codes/meta.json")}
    prior_weights = load_file(out / "prior" / MODEL)
    shutil.rmtree(out / "prior")
    r = cli(*_cli_args(out))
    assert r.code == 0, r.err
    assert "stage 1/4" in r.err and "skipped" in r.err.splitlines()[0]
    assert "stage 2/4" in r.err and "skipped" in r.err.splitlines()[1]
    assert "training the transformer prior" in r.err
    assert {p: (out / p).stat().st_mtime_ns for p in kept} == kept  # stages 1–2 untouched
    again = load_file(out / "prior" / MODEL)  # same seed, same prior
    assert all(torch.equal(again[k], v) for k, v in prior_weights.items())
    assert (out / "samples/samples.png").is_file()
    # run once more: every stage is skipped, and the scores for want of a feature network
    r = cli(*_cli_args(out))
    assert r.code == 0 and r.err.count("skipped") == 5, r.err
    assert sum(line.endswith("; skipped") for line in r.err.splitlines()) == 4, r.err


def test_pipeline_refuses_other_settings_in_its_directory(done, tmp_path, cli):
    out = tmp_path / "run"
    shutil.copytree(done[0], out)
    args = _cli_args(out)
    args[args.index("--vqvae-epochs") + 1] = "2"
    assert_user_error(cli(*args), "other settings", "train.epochs")


def test_generate_cli_and_sample_images(done, tmp_path, cli):
    out, _ = done
    png = tmp_path / "g.png"
    r = cli(
        "generate",
        out / "prior",
        "--vqvae",
        out / "vqvae",
        "--n",
        "5",
        "--out",
        png,
        "--label",
        "3",
        "--seed",
        "1",
    )
    assert r.code == 0, r.err
    codes = np.load(tmp_path / "g.npy")
    assert codes.shape == (5, 7, 7) and codes.max() < 32
    images = sample_images(
        out / "prior", out / "vqvae", 5, generator=torch.Generator().manual_seed(1), label=3
    )
    assert images.shape == (5, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    vq = load(out / "vqvae", family="vqvae")
    assert torch.equal(images, vq.decode_indices(torch.from_numpy(codes.astype(np.int64))))
    assert_user_error(
        cli(
            "generate",
            out / "prior",
            "--vqvae",
            out / "vqvae",
            "--out",
            tmp_path / "h.png",
            "--label",
            "10",
        ),
        "not a class",
    )
    assert not (tmp_path / "h.png").exists()


def test_a_prior_of_another_vqvae_is_refused(done, tmp_path, cli):
    out, _ = done
    other = tmp_path / "other-vqvae"
    shutil.copytree(out / "vqvae", other)
    vq = load(other, family="vqvae")
    vq.quantizer.codebook.data += 1.0
    save_model(other / MODEL, vq)
    r = cli("generate", out / "prior", "--vqvae", other, "--n", "2", "--out", tmp_path / "s.png")
    assert_user_error(r, "another VQ-VAE")
    r = cli("generate", out / "prior", "--vqvae", out / "prior", "--out", tmp_path / "s.png")
    assert_user_error(r, "needs a vqvae run")
    assert not (tmp_path / "s.png").exists()


def _bad_codes(src, dst, name, array):
    shutil.copytree(src, dst)
    np.save(dst / name, array)


def test_bad_codes_are_refused(done, tmp_path, cli):
    codes = done[0] / "codes"
    test = np.load(codes / "test.npy")
    too_big = test.copy()
    too_big[3, 2, 2] = 32
    _bad_codes(codes, tmp_path / "big", "test.npy", too_big)
    r = cli("train-prior", tmp_path / "big", "--prior", "pixelcnn", "--out", tmp_path / "p1")
    assert_user_error(r, "code 32 is outside the codebook")
    _bad_codes(codes, tmp_path / "shape", "train.npy", np.zeros((10, 6, 7), np.uint16))
    r = cli("train-prior", tmp_path / "shape", "--prior", "pixelrnn", "--out", tmp_path / "p2")
    assert_user_error(r, "(N, 7, 7)")
    _bad_codes(codes, tmp_path / "dtype", "val.npy", np.zeros((10, 7, 7), np.float32))
    assert_user_error(
        cli("train-prior", tmp_path / "dtype", "--prior", "pixelrnn", "--out", tmp_path / "p3"),
        "uint16",
    )
    assert_user_error(
        cli("train-prior", tmp_path, "--prior", "pixelrnn", "--out", tmp_path / "p4"),
        "not a codes directory",
    )
    r = cli(
        "train-prior",
        codes,
        "--prior",
        "pixelcnn",
        "--out",
        tmp_path / "p5",
        "--set",
        "model.num_codes=8",
    )
    assert_user_error(r, "set by the codes")
    for p in ("p1", "p2", "p3", "p4", "p5"):
        assert not (tmp_path / p).exists()


def test_encode_cli(done, tmp_path, cli):
    out, _ = done
    r = cli("encode", out / "vqvae", "--out", tmp_path / "codes", "--quiet")
    assert r.code == 0, r.err
    for name in ("train", "val", "test"):
        a, b = np.load(tmp_path / "codes" / f"{name}.npy"), np.load(out / "codes" / f"{name}.npy")
        assert np.array_equal(a, b)
    assert_user_error(cli("encode", out / "vqvae", "--out", tmp_path / "codes"), "already exists")
    assert_user_error(cli("encode", out / "prior", "--out", tmp_path / "c2"), "prior run")
    assert not (tmp_path / "c2").exists()


def test_pipeline_killed_in_stage_3_resumes_exactly(done, tmp_path, monkeypatch, capsys):
    """Interrupt the prior's training after a mid-epoch checkpoint; the rerun resumes it and
    ends with the same weights as the uninterrupted run."""
    from aegen.priors.transformer import TransformerPrior

    out = tmp_path / "run"
    shutil.copytree(done[0], out)
    shutil.rmtree(out / "prior")
    shutil.rmtree(out / "samples")
    over = [*TINY, "prior.train.ckpt_every=3"]
    original, calls = TransformerPrior.loss, {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(TransformerPrior, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(out, overrides=over, progress=False, **ARGS)
    monkeypatch.setattr(TransformerPrior, "loss", original)
    assert not (out / "samples").exists()
    capsys.readouterr()
    run_pipeline(out, overrides=over, progress=False, **ARGS)
    assert "prior into" in capsys.readouterr().err.split("stage 3/4")[1].split("(resume)")[0]
    resumed, full = load_file(out / "prior" / MODEL), load_file(done[0] / "prior" / MODEL)
    assert all(torch.equal(resumed[k], v) for k, v in full.items())
    assert (out / "samples" / "samples.png").is_file()


def test_pipeline_checks_every_setting_before_writing(tmp_path, cli):
    out = tmp_path / "never"
    args = ["pipeline", "vqvae", "--data", "synthetic", "--out", out]
    assert_user_error(cli(*args, "--set", "prior.model.foo=1"), "model.foo")
    assert_user_error(cli(*args, "--set", "vqvae.model.num_codes=1"), "num_codes")
    assert_user_error(cli(*args, "--set", "size=3"), "vqvae.SECTION.KEY")
    assert not out.exists()


def test_prior_trains_data_parallel_like_one_process(done, tmp_path):
    """torchrun's two gloo processes train the prior to the weights one process reaches."""
    from conftest import run_cli_subprocess
    from safetensors.torch import load_file

    out, _ = done
    common = ["train-prior", out / "codes", "--prior", "transformer", "--epochs", "1", "--batch-size", "50",
              "--seed", "1", "--quiet"]  # fmt: skip
    for s in TINY:
        if s.startswith("prior."):
            common += ["--set", s.removeprefix("prior.")]
    one = run_cli_subprocess(*common, "--out", tmp_path / "one")
    two = run_cli_subprocess(*common, "--out", tmp_path / "two", "--nproc", "2")
    assert one.code == 0 and two.code == 0, two.err
    a, b = load_file(tmp_path / "one" / MODEL), load_file(tmp_path / "two" / MODEL)
    # float sums split over two ranks differ in the last bits; Adam at lr 3e-3 with no
    # warm-up (TINY) carries them to ~4e-5 in one epoch
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 2e-4
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["prior"]["test_nll_bits"] == pytest.approx(m1["prior"]["test_nll_bits"], abs=1e-4)
    assert m2["likelihood"]["bits_per_code"] == m2["prior"]["test_nll_bits"]
    assert two.out.count("test NLL") == 1  # one writer, one summary line


def test_pipeline_sigkilled_in_each_training_stage_resumes_bit_exact(done, tmp_path):
    """A real ``aegen pipeline`` process SIGKILLed in the VQ-VAE's training, rerun and
    SIGKILLed again in the prior's, then rerun to the end: the weights and samples of
    the uninterrupted run, bit for bit. Each kill waits for a checkpoint step and is
    checked to have left its stage unfinished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import run_cli_subprocess
    from safetensors.torch import load_file

    from aegen.checkpoint import TRAIN_STATE

    def state(d):
        try:  # the writer is alive: read without touching, tolerate a rename in flight
            return torch.load(d / TRAIN_STATE, weights_only=True)
        except Exception:  # noqa: BLE001
            return None

    # the arithmetic of the in-process `done` run: its thread count, denormals kept
    env = {**os.environ, "AEGEN_THREADS": str(torch.get_num_threads()), "AEGEN_FLUSH_DENORMAL": "0"}
    out = tmp_path / "run"
    argv = _cli_args(out) + [
        "--set",
        "vqvae.train.ckpt_every=2",
        "--set",
        "prior.train.ckpt_every=3",
    ]
    for stage in ("vqvae", "prior"):
        total = int(state(done[0] / stage)["step"])  # the uninterrupted run's last step
        target = {"vqvae": total // 3, "prior": 3}[stage]
        assert 0 < target < total
        p = subprocess.Popen([sys.executable, "-m", "aegen", *map(str, argv)], start_new_session=True,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while p.poll() is None and time.monotonic() < deadline:
                st = state(out / stage)
                if st is not None and int(st["step"]) >= target:
                    break
                time.sleep(0.01)
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        st = state(out / stage)
        assert st is not None and target <= int(st["step"]) < total, (stage, st and st["step"])
        assert not st.get("finished"), f"{stage} finished before the kill"
        assert not (out / "samples" / "samples.npy").exists()
    r = run_cli_subprocess(*argv, env=env)
    assert r.code == 0, r.err
    for stage in ("vqvae", "prior"):
        got, want = load_file(out / stage / MODEL), load_file(done[0] / stage / MODEL)
        assert all(torch.equal(got[k], v) for k, v in want.items()), stage
    assert np.array_equal(
        np.load(out / "samples/samples.npy"), np.load(done[0] / "samples/samples.npy")
    )


def test_maskgit_plugs_in_as_a_prior_without_claiming_a_likelihood(
    done, tmp_path, cli, tiny_features
):
    """train-prior, generate and the FID-against-steps function take a maskgit prior; its
    metrics.json holds the masked-code cross-entropy and no likelihood section."""
    out, _ = done
    pdir = tmp_path / "maskgit"
    r = cli(
        "train-prior", out / "codes", "--prior", "maskgit", "--out", pdir, "--epochs", "1",
        "--set", "model.d_model=32", "--set", "model.n_layers=1", "--batch-size", "50", "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "not a likelihood" in r.out and "NLL" not in r.out
    m = json.loads((pdir / "metrics.json").read_text())
    assert "likelihood" not in m and m["prior"]["exact_likelihood"] is False
    assert "test_nll_bits" not in m["prior"]
    assert 0 < m["prior"]["test_masked_ce_bits"] < 2 * m["prior"]["test_unigram_entropy_bits"]
    png = tmp_path / "g.png"
    r = cli("generate", pdir, "--vqvae", out / "vqvae", "--n", "6", "--out", png, "--label", "1")
    assert r.code == 0, r.err
    assert np.load(png.with_suffix(".npy")).shape == (6, 7, 7)
    data = aegen.load_data("synthetic", val_size=5000, limit=600)
    opts = EvalOptions(n=40, kid_subsets=2, kid_subset_size=20)
    section = fid_against_steps(pdir, out / "vqvae", data, tiny_features, (4, 1), opts)
    scores = {row["steps"]: row for row in section["rows"]}
    assert sorted(scores) == [1, 4] and section["n_samples"] == 40
    for s in scores.values():
        assert np.isfinite(s["fid"]) and 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1
        assert s["images_per_s"] > 0
    assert scores[1]["fid"] != scores[4]["fid"]  # other steps, other samples


def test_train_prior_resume_extends_to_more_epochs(done, tmp_path, cli):
    out, _ = done
    pdir = tmp_path / "prior"
    shutil.copytree(out / "prior", pdir)
    args = ["train-prior", out / "codes", "--prior", "transformer", "--out", pdir, "--resume"]
    assert_user_error(cli(*args, "--epochs", "4", "--seed", "1"), "own config.json", "--seed")
    r = cli(*args, "--epochs", "4", "--quiet")
    assert r.code == 0, r.err
    cfg = json.loads((pdir / "config.json").read_text())
    assert cfg["train"]["epochs"] == 4 and cfg["extended"][0]["from_epochs"] == 3
    with open(pdir / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3", "4"]
    assert_user_error(cli(*args, "--epochs", "2"), "train.epochs=4")


# --------------------------------------------------------------------------- stage 4 scores

EVAL_N = 40  # 4 images per class for the class accuracy


def _pipeline_data(out):
    """The pipeline's own data set, as its VQ-VAE's config.json names it."""
    return data_from_config(run_config_from_json(load_config(out / "vqvae")).data)


def _section(path, name):
    section = dict(json.loads((path / "metrics.json").read_text())[name])
    section.pop("scored_from")
    return section


@pytest.fixture(scope="module")
def scored(done, tmp_path_factory, tiny_features):
    """The finished pipeline run again with a feature network: stages 1–4 are skipped and
    the scores computed. Every labelled draw of the class accuracy is recorded."""
    out = tmp_path_factory.mktemp("scored") / "run"
    shutil.copytree(done[0], out)
    draws, original = [], vq_scores.sample_with

    def recording(prior, vqvae, n, generator=None, return_codes=False, **kw):
        images = original(prior, vqvae, n, generator, return_codes, **kw)
        if "label" in kw:
            draws.append((kw["label"], images))
        return images

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setattr(vq_scores, "sample_with", recording)
        summary = run_pipeline(
            out,
            overrides=TINY,
            progress=False,
            features_dir=tiny_features.directory,
            eval_n=EVAL_N,
            **ARGS,
        )
    return out, summary, draws, err.getvalue()


def test_pipeline_scores_samples_and_ceiling_as_aegen_eval_would(scored, tiny_features):
    """The prior's samples section is `aegen eval PRIOR --vqvae VQVAE`'s, the ceiling that of
    the VQ-VAE's test reconstructions (ReconstructionSampler), both recomputed here."""
    out, summary, _, err = scored
    assert "scoring the samples against their ceiling (40 images" in err, err
    data = _pipeline_data(out)
    vq = load(out / "vqvae", family="vqvae")
    ceiling = evaluate_run(
        out / "vqvae",
        data,
        tiny_features,
        EvalOptions(n=EVAL_N),
        sampler=ReconstructionSampler(vq, data.test),
        model=vq,
        only=("samples",),
    ).sections["samples"]
    assert _section(out / "vqvae", "ceiling") == json.loads(json.dumps(ceiling))
    samples = evaluate_run(
        out / "prior",
        data,
        tiny_features,
        EvalOptions(n=EVAL_N, vqvae_dir=str(out / "vqvae")),
        only=("samples",),
    ).sections["samples"]
    got = _section(out / "prior", "samples")
    assert got.pop("top_k") is None and got.pop("guidance") == 1.0
    assert got == json.loads(json.dumps(samples))
    assert got["n_samples"] == EVAL_N and got["features"]["sha256"] == tiny_features.sha256
    on_disk = json.loads((out / "summary.json").read_text())["scores"]
    assert sorted(on_disk) == ["ceiling", "class_accuracy", "samples"]
    assert on_disk == json.loads(json.dumps(summary["scores"]))
    assert on_disk["ceiling"]["fid"] == ceiling["fid"]
    assert (out / "prior" / "samples" / "scored_samples.png").is_file()


def test_class_accuracy_scores_the_samples_drawn_for_each_label(scored, tiny_features):
    """The class accuracy is measured on the images the samples section scored, drawn for
    the classes in turn: each image is drawn once, for both."""
    out, summary, draws, _ = scored
    acc = _section(out / "prior", "class_accuracy")
    per_class = EVAL_N // 10
    labels, images = torch.cat([y for y, _ in draws]), torch.cat([x for _, x in draws])
    assert labels.tolist() == [i % 10 for i in range(EVAL_N)]  # drawn once, classes in turn
    right = tiny_features.classify(images) == labels
    want = [float(right[labels == c].double().mean()) for c in range(10)]
    assert acc["per_class"] == want
    assert acc["mean"] == pytest.approx(sum(want) / 10)
    assert (acc["n_per_class"], acc["n_samples"]) == (per_class, EVAL_N)
    data = _pipeline_data(out)
    assert acc["test_accuracy"] == tiny_features.accuracy(data.test.x, data.test.y)
    assert acc["features"]["sha256"] == tiny_features.sha256


def test_rerun_with_matching_scores_skips_scoring(
    scored, tmp_path, monkeypatch, cli, tiny_features
):
    out = tmp_path / "run"
    shutil.copytree(scored[0], out)
    metrics = [out / "prior" / "metrics.json", out / "vqvae" / "metrics.json"]
    before = [p.read_bytes() for p in metrics]
    real = {"evaluate_run": vq_scores.evaluate_run, "class_accuracy": vq_scores.class_accuracy}
    calls = []

    def spy(name, allowed):
        def call(*args, **kw):
            assert allowed, f"{name}: scored again"
            calls.append(name)
            return real[name](*args, **kw)

        return call

    for name in real:
        monkeypatch.setattr(vq_scores, name, spy(name, allowed=False))
    args = [*_cli_args(out), "--features", tiny_features.directory, "--eval-n", str(EVAL_N)]
    r = cli(*args)
    assert r.code == 0, r.err
    sha = tiny_features.sha256[:12]
    assert f"stage 4/4: scores ({EVAL_N} images, features {sha}) match; skipped" in r.err
    assert [p.read_bytes() for p in metrics] == before
    s = scored[1]["scores"]
    assert f"samples: FID {s['samples']['fid']:.3f}, precision" in r.out
    assert f"ceiling (VQ-VAE test reconstructions): FID {s['ceiling']['fid']:.3f}" in r.out
    assert f"class accuracy: {100 * s['class_accuracy']['mean']:.1f}% of the samples" in r.out
    # another number of images makes other scores: all three are measured again
    for name in real:
        monkeypatch.setattr(vq_scores, name, spy(name, allowed=True))
    r = cli(*args[:-1], "20")
    assert r.code == 0, r.err
    assert sorted(calls) == ["class_accuracy", "evaluate_run", "evaluate_run"]
    m = json.loads((out / "prior" / "metrics.json").read_text())
    assert m["samples"]["n_samples"] == 20 and m["class_accuracy"]["n_per_class"] == 2
    assert json.loads((out / "vqvae" / "metrics.json").read_text())["ceiling"]["n_samples"] == 20


def test_score_lines_print_a_score_stored_as_null_as_nan():
    """metrics.json keeps a score that was not a number as null: a rerun prints it, not a crash."""
    scores = {
        "samples": {"fid": None, "precision": 0.8125, "recall": None, "n_samples": 10},
        "ceiling": {"fid": 38.671, "precision": 0.963, "recall": 0.667, "n_samples": 10},
    }
    assert vq_scores.score_lines(scores) == [
        "samples: FID nan, precision 0.812, recall nan (10 images)",
        "ceiling (VQ-VAE test reconstructions): FID 38.671, precision 0.963, recall 0.667 "
        "(10 images)",
    ]


def test_eval_n_0_scores_nothing(done, tmp_path, monkeypatch, cli, tiny_features):
    out = tmp_path / "run"
    shutil.copytree(done[0], out)
    monkeypatch.setattr(vq_prior, "score_pipeline", lambda *a, **k: pytest.fail("scored"))
    r = cli(*_cli_args(out), "--features", tiny_features.directory, "--eval-n", "0")
    assert r.code == 0, r.err
    assert "scoring" not in r.err and "feature network" not in r.err and "FID" not in r.out
    assert "scores" not in json.loads((out / "summary.json").read_text())
    assert "samples" not in json.loads((out / "prior" / "metrics.json").read_text())


def test_without_a_feature_network_scoring_is_skipped_with_a_hint(done, tmp_path, cli):
    out = tmp_path / "run"
    shutil.copytree(done[0], out)
    r = cli(*_cli_args(out))
    assert r.code == 0, r.err
    lines = [line for line in r.err.splitlines() if "scoring skipped" in line]
    assert len(lines) == 1 and "'aegen features train --data synthetic'" in lines[0], r.err
    assert "FID" not in r.out
    assert "scores" not in json.loads((out / "summary.json").read_text())


def test_scoring_settings_are_checked_before_anything_is_written(tmp_path, cli, tiny_features):
    out = tmp_path / "never"
    args = ["pipeline", "vqvae", "--data", "synthetic", "--limit", "600", "--out", out]
    assert_user_error(cli(*args, "--eval-n", "5"), "--eval-n must be 0", "at least 10")
    assert_user_error(cli(*args, "--eval-n", "-1"), "--eval-n")
    assert_user_error(cli(*args, "--features", tmp_path / "none"), "no such feature network")
    other = tmp_path / "features-fashion"
    shutil.copytree(tiny_features.directory, other)
    info = json.loads((other / "features.json").read_text())
    info["data"]["name"] = "fashion-mnist"
    (other / "features.json").write_text(json.dumps(info))
    assert_user_error(cli(*args, "--features", other), "trained on fashion-mnist")
    assert not out.exists()


def _row(page, metric):
    """The cells of one score row of a report page."""
    row = page.split(f'data-metric="{metric}"')[1].split("</tr>")[0]
    return [c.split(">", 1)[1].split("<")[0] for c in row.split("<td")[2:]]


def test_report_shows_the_ceiling_beside_the_samples(scored, tmp_path, cli):
    out, summary, _, _ = scored
    s = summary["scores"]
    r = cli("report", out, "--out", tmp_path / "pipeline.html")
    assert r.code == 0, r.err
    assert "(2 runs)" in r.out, r.out
    page = (tmp_path / "pipeline.html").read_text()
    # the pipeline directory is its two runs: the VQ-VAE, then the prior
    assert _row(page, "reconstruction.mse")[1] == "—"
    assert _row(page, "samples.fid") == ["—", f"{s['samples']['fid']:.3f}"]
    fid = f"{s['ceiling']['fid']:.3f}"
    assert _row(page, "ceiling.fid") == [fid, fid]  # the prior's column shows its VQ-VAE's
    assert _row(page, "class_accuracy.mean") == ["—", f"{s['class_accuracy']['mean']:.3f}"]
    assert 'id="incomparable"' not in page
    r = cli("report", out / "prior", "--out", tmp_path / "prior.html")
    assert r.code == 0, r.err
    page = (tmp_path / "prior.html").read_text()
    assert _row(page, "ceiling.fid") == [fid] and _row(page, "samples.recall")
    # a VQ-VAE with other weights than the prior's codes came from lends it no ceiling
    copy = tmp_path / "changed"
    shutil.copytree(out, copy)
    (copy / "codes" / "meta.json").unlink()  # the codes no longer name the original VQ-VAE
    vq = load(copy / "vqvae", family="vqvae")
    vq.quantizer.codebook.data += 1.0
    save_model(copy / "vqvae" / MODEL, vq)
    cfg = json.loads((copy / "prior" / "config.json").read_text())
    cfg["codes"]["dir"] = str(copy / "codes")
    (copy / "prior" / "config.json").write_text(json.dumps(cfg))
    r = cli("report", copy / "prior", "--out", tmp_path / "changed.html")
    assert r.code == 0, r.err
    assert 'data-metric="ceiling.fid"' not in (tmp_path / "changed.html").read_text()


def test_the_temperature_is_the_lowest_fid_or_the_highest_tied_with_it():
    fids = {0.8: 50.0, 0.9: 40.0, 1.0: 41.9, 1.1: 42.1, 1.2: 39.0 * 1.5}
    assert vq_scores.pick_temperature(fids, tie=0.05) == 1.0  # 41.9 <= 42 < 42.1
    assert vq_scores.pick_temperature(fids, tie=0.0) == 0.9  # no ties: the lowest FID
    assert vq_scores.pick_temperature(fids, tie=0.06) == 1.1
    assert vq_scores.pick_temperature({1.0: 30.0, 0.8: 30.0}) == 1.0  # order does not matter
    assert vq_scores.pick_temperature(fids) == vq_scores.pick_temperature(fids, vq_scores.FID_TIE)


def test_auto_temperature_is_chosen_by_fid_on_validation_images(scored, tmp_path, tiny_features):
    """`temperature=None` (the CLI's auto) scores each candidate on validation images, samples
    and scores at the one :func:`pick_temperature` takes, and keeps the choice for a rerun."""
    out = tmp_path / "run"
    shutil.copytree(scored[0], out)
    args = {**ARGS, "temperature": None}
    drawn, original = [], vq_scores.sample_with

    def counting(prior, vqvae, n, *a, **kw):
        drawn.append(n)
        return original(prior, vqvae, n, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vq_scores, "sample_with", counting)
        summary = run_pipeline(
            out, overrides=TINY, progress=False, features_dir=tiny_features.directory,
            eval_n=EVAL_N, **args,
        )  # fmt: skip
    # the scores and the class accuracy take the chosen temperature's images: no draw more
    assert sum(drawn) == len(vq_scores.TEMPERATURES) * EVAL_N
    choice = summary["temperature_choice"]
    fids = {float(t): f for t, f in choice["fid_on_val"].items()}
    assert sorted(fids) == list(vq_scores.TEMPERATURES)
    assert summary["temperature"] == choice["temperature"] == vq_scores.pick_temperature(fids)
    assert choice["split"] == "val" and choice["n"] == EVAL_N
    # one candidate recomputed: the same seeded draws against validation, not test, images
    data = _pipeline_data(out)
    prior, vq = vq_scores.load_prior(out / "prior"), load(out / "vqvae", family="vqvae").eval()
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.val), generator=g)[:EVAL_N]

    def draw(k, gen, y):
        return vq_scores.sample_with(prior, vq, k, generator=gen, label=y, temperature=0.9)

    sampler = balanced_sampler(draw, prior.config.num_classes)
    fake = tiny_features.embed(draw_samples(sampler, EVAL_N, 0))
    assert fids[0.9] == frechet_distance(tiny_features.embed(data.val.x[idx]), fake)
    assert fids[0.9] != frechet_distance(tiny_features.embed(data.test.x[:EVAL_N]), fake)
    # the samples are scored at the chosen temperature, and the choice is kept
    m = json.loads((out / "prior" / "metrics.json").read_text())
    assert m["samples"]["temperature"] == choice["temperature"]
    assert m["temperature_choice"]["temperature"] == choice["temperature"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vq_scores, "load_prior", lambda *a, **k: pytest.fail("chosen again"))
        again = vq_scores.choose_temperature(
            out / "prior", out / "vqvae", data, tiny_features, n=EVAL_N
        )
    assert again == m["temperature_choice"]


@pytest.mark.parametrize("bad", ["0", "-1", "warm"])
def test_a_bad_temperature_is_one_error_line(cli, tmp_path, bad):
    r = cli(
        "pipeline", "vqvae", "--data", "synthetic", "--out", tmp_path / "x", "--temperature", bad
    )
    assert r.code == 2 and r.err.count("\n") == 1 and "--temperature" in r.err, r.err
    assert not (tmp_path / "x").exists()


def test_guidance_applies_to_the_temperature_choice_samples_and_scores(
    done, tmp_path, tiny_features
):
    """With --guidance W every draw of stage 4 is guided: the temperature choice, the
    samples, their scores and the class accuracy; each record says W, and scores made at
    another W are not taken for these."""
    out = tmp_path / "run"
    shutil.copytree(done[0], out)
    for stage in ("prior", "samples"):  # the VQ-VAE and codes are reused, the prior retrained
        shutil.rmtree(out / stage)
    guided = [*TINY, "prior.model.label_dropout=0.3"]  # not the pipeline's 0.1
    seen = []
    original = vq_scores.sample_with

    def recording(prior, vqvae, n, generator=None, return_codes=False, **kw):
        seen.append(kw.get("guidance", 1.0))
        return original(prior, vqvae, n, generator, return_codes, **kw)

    def pipeline(w):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(vq_scores, "sample_with", recording)
            return run_pipeline(
                out, overrides=guided, progress=False, features_dir=tiny_features.directory,
                eval_n=EVAL_N, **{**ARGS, "temperature": None, "guidance": w},
            )  # fmt: skip

    summary = pipeline(2.0)
    # one call for each temperature; the scores and the class accuracy reuse the chosen one's
    assert len(seen) == len(vq_scores.TEMPERATURES) and set(seen) == {2.0}
    m = json.loads((out / "prior" / "metrics.json").read_text())
    assert m["temperature_choice"]["scored_from"]["guidance"] == 2.0
    assert m["samples"]["guidance"] == m["samples"]["scored_from"]["guidance"] == 2.0
    assert m["class_accuracy"]["guidance"] == 2.0
    assert summary["scores"]["samples"]["fid"] == m["samples"]["fid"]
    # W = 1 again: chosen and scored anew, unguided, and recorded without a W
    seen.clear()
    pipeline(1.0)
    assert seen and set(seen) == {1.0}
    m = json.loads((out / "prior" / "metrics.json").read_text())
    assert "guidance" not in m["samples"]["scored_from"]
    assert "guidance" not in m["temperature_choice"]["scored_from"]
    assert m["class_accuracy"]["guidance"] == 1.0
    # a ramp A:B: recorded as [A, B] everywhere, and a second run finds every record its
    # own (read back from JSON, a list) and draws nothing
    seen.clear()
    summary = pipeline((1.5, 3.5))
    assert seen and set(seen) == {(1.5, 3.5)} and summary["guidance"] == [1.5, 3.5]
    m = json.loads((out / "prior" / "metrics.json").read_text())
    assert m["samples"]["scored_from"]["guidance"] == m["class_accuracy"]["guidance"] == [1.5, 3.5]
    record = json.loads((out / "samples" / "samples.json").read_text())
    assert record["guidance"] == [1.5, 3.5]
    seen.clear()
    again = pipeline((1.5, 3.5))
    assert seen == [] and again["scores"]["samples"]["fid"] == summary["scores"]["samples"]["fid"]


def test_the_pipeline_trains_a_guidable_prior_and_guides_its_samples_by_default(done, tmp_path):
    """A conditional prior gets label dropout 0.1 and stage 4 guidance 1.5; an unconditional
    one, or one whose label dropout the user sets to 0, is sampled at W = 1."""
    out, _ = done
    cfg = load_config(out / "prior")["model_config"]
    assert cfg["label_dropout"] == vq_prior.PIPELINE_LABEL_DROPOUT == 0.1
    for over, conditional, w in (
        ([], True, vq_prior.PIPELINE_GUIDANCE),
        (["prior.model.label_dropout=0"], True, 1.0),
        ([], False, 1.0),
    ):
        run = tmp_path / f"{len(over)}{conditional}"
        shutil.copytree(out, run)
        if over or not conditional:  # another prior: trained again beside the same VQ-VAE
            shutil.rmtree(run / "prior")
        summary = run_pipeline(
            run, overrides=[*TINY, *over], progress=False, conditional=conditional,
            **{k: v for k, v in ARGS.items() if k != "guidance"},
        )  # fmt: skip
        assert summary["guidance"] == w
        record = json.loads((run / "samples" / "samples.json").read_text())
        assert record.get("guidance", 1.0) == w
        dropout = load_config(run / "prior")["model_config"]["label_dropout"]
        assert dropout == (0.1 if conditional and not over else 0.0)


def test_the_default_guidance_is_each_priors_own_and_1_where_it_cannot_guide():
    guided = PriorConfig(num_classes=10, label_dropout=0.1)
    assert vq_prior.default_guidance("transformer", guided) == vq_prior.PIPELINE_GUIDANCE == 2.0
    assert vq_prior.default_guidance("pixelcnn", guided) == 2.0
    assert vq_prior.default_guidance("maskgit", guided) == (1.5, 3.5)  # a ramp
    for cannot in (PriorConfig(num_classes=0), PriorConfig(num_classes=10, label_dropout=0)):
        assert vq_prior.default_guidance("maskgit", cannot) == 1.0
        assert vq_prior.default_guidance("transformer", cannot) == 1.0


def test_the_pipeline_trains_its_own_transformer_recipe_unless_told_otherwise():
    """2 blocks with weight decay 0.1 for 8 epochs (docs/vqvae.md, "The default command, end
    to end", "Weight decay"), MaskGIT at the transformer's depth and epochs; --set and
    --prior-epochs win, and a prior without a recipe keeps its own defaults."""
    settings = vq_prior.pipeline_prior_settings
    over, epochs = settings("transformer", [], True, None)
    assert over == ["model.label_dropout=0.1", "model.n_layers=2", "train.weight_decay=0.1"]
    assert epochs == 8
    run = vq_prior.prior_run_config("transformer", (256, (7, 7), 10), over, epochs=epochs)
    assert (run.model_config.n_layers, run.train.weight_decay, run.train.epochs) == (2, 0.1, 8)
    mine = ["model.n_layers=3", "train.weight_decay=0"]
    over, epochs = settings("transformer", mine, False, 4)
    run = vq_prior.prior_run_config("transformer", (256, (7, 7), 10), over, False, epochs=epochs)
    got = (run.model_config.n_layers, run.train.weight_decay, run.train.epochs)
    assert got == (3, 0.0, 4) and run.model_config.num_classes == 0
    assert settings("maskgit", [], True, None) == (
        ["model.label_dropout=0.1", "model.n_layers=2"],
        8,
    )
    assert settings("pixelcnn", [], True, None) == (["model.label_dropout=0.1"], None)


def test_eval_of_a_prior_scores_on_its_vqvaes_data(done, tmp_path, cli, tiny_features):
    """A prior's config.json names no data set: aegen eval takes the VQ-VAE's (synthetic
    here), not the default Fashion-MNIST, which the synthetic feature network refuses."""
    out = tmp_path / "run"
    shutil.copytree(done[0], out)
    r = cli("eval", out / "prior", "--vqvae", out / "vqvae", "--features",
            tiny_features.directory, "--n", "10", "--only", "samples", "--quiet")  # fmt: skip
    assert r.code == 0, r.err
    samples = json.loads((out / "prior" / "metrics.json").read_text())["samples"]
    assert samples["data"]["name"] == "synthetic" and samples["n_samples"] == 10
