"""``aegen tour``: every part of the lecture end to end on synthetic data, killed and resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import assert_user_error, run_cli_subprocess

from aegen.pipelines.tour import CLAIMS, PARTS, evaluate_claims, tour_claims


def _tour_argv(out):
    return ["tour", "--out", str(out), "--budget", "tiny", "--data", "synthetic", "--quiet"]


def _finished_parts(out) -> list[str]:
    try:
        return list(json.loads((out / "tour.json").read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return []


@pytest.fixture(scope="module")
def resumed_tour(tmp_path_factory):
    """A tiny tour killed after its first finished part, then run again to the end."""
    tmp = tmp_path_factory.mktemp("tour")
    out = tmp / "tour"
    env = {**os.environ, "AEGEN_CACHE": str(tmp / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegen", *_tour_argv(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not _finished_parts(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _finished_parts(out)
    first = out / "1-autoencoders" / "ae-mlp" / "model.safetensors"
    stamp = first.stat().st_mtime_ns if first.exists() else None
    report_after_kill = (out / "report.html").exists()
    cache = {"AEGEN_CACHE": str(tmp / "cache")}
    r = run_cli_subprocess(*_tour_argv(out), env=cache, timeout=900)
    return {
        "out": out, "env": cache, "done": done, "first": first, "stamp": stamp,
        "report_after_kill": report_after_kill, "rerun": r,
    }  # fmt: skip


def test_tour_killed_after_a_part_resumes_without_redoing_it(resumed_tour):
    t = resumed_tour
    out, done, r = t["out"], t["done"], t["rerun"]
    assert done, "the tour recorded no finished part before it was killed"
    assert not t["report_after_kill"] or len(done) == len(PARTS)
    assert r.code == 0, r.err
    for part in done:
        assert f"{PARTS[part][0]}] done already; skipped" in r.err, r.err
    assert r.err.count("done already; skipped") == len(done)
    assert t["first"].stat().st_mtime_ns == t["stamp"]  # the finished part was not trained again

    page = (out / "report.html").read_text()
    ids = re.findall(r'<section class="part" id="part-([a-z]+)"', page)
    assert ids == list(PARTS)  # one section per part, in the lecture's order
    for key in PARTS:
        section = page.split(f'id="part-{key}"', 1)[1].split("</section>", 1)[0]
        assert "not run yet" not in section
        assert section.count("<figure>") >= 1, key
        assert "<figcaption>" in section
    state = json.loads((out / "tour.json").read_text())
    assert state["parts"]["autoencoders"]["numbers"]
    # the transformer's picture is drawn as the part scores it: unguided, like the other priors
    vq_part = out / f"{list(PARTS).index('vqvae') + 1}-vqvae"
    drawn = json.loads((vq_part / "samples" / "samples.json").read_text())
    assert "guidance" not in drawn and drawn["temperature"] == 1.0
    # its prior as the claims were measured: without the pipeline's weight decay
    prior = json.loads((vq_part / "prior" / "config.json").read_text())
    assert prior["train"]["weight_decay"] == 0
    # nothing fetched: no link or picture points off the page (base64 pictures may spell "http")
    assert "img-src data:" in page
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', page.split("<body>", 1)[1])


def test_tour_refuses_a_directory_of_another_tour_or_data(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "tour.json").write_text(
        json.dumps(
            {"budget": "quick", "data": "synthetic", "data_dir": None, "seed": 0, "parts": {}}
        )
    )
    assert_user_error(run_cli_subprocess(*_tour_argv(out)), "budget='quick'")
    other = tmp_path / "full"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    assert_user_error(run_cli_subprocess(*_tour_argv(other)), "not empty")
    assert (other / "x.txt").read_text() == "mine"
    assert_user_error(
        run_cli_subprocess(*_tour_argv(tmp_path / "n"), "--parts", "primer,nope"), "nope"
    )
    assert not (tmp_path / "n").exists()


def test_the_claims_table_follows_the_recorded_numbers(resumed_tour):
    """Re-run over a finished tour whose recorded numbers were changed: the marks follow them."""
    out, env = resumed_tour["out"], resumed_tour["env"]
    state = json.loads((out / "tour.json").read_text())
    judged = {c["key"]: c["holds"] for c in state["claims"]}
    assert set(judged) == {s.key for s in CLAIMS}  # every claim, none left unmeasured
    assert all(isinstance(v, bool) for v in judged.values()), judged
    assert [c.to_json() for c in tour_claims(state)] == state["claims"]

    def marks() -> dict[str, str]:
        page = (out / "report.html").read_text()
        rows = re.findall(r'<tr id="claim-([a-z_]+)"><td class="mark (\w+)"', page)
        return dict(rows)

    assert marks() == {k: ("holds" if v else "fails") for k, v in judged.items()}
    ae = state["parts"]["autoencoders"]["metrics"]
    # make the conv AE 1 dB better, then 1 dB worse, than the MLP AE: the mark must follow
    for delta, want in ((1.0, "holds"), (-1.0, "fails")):
        ae["conv_psnr"] = ae["mlp_at_conv_psnr"] + delta
        (out / "tour.json").write_text(json.dumps(state))
        r = run_cli_subprocess(*_tour_argv(out), env=env, timeout=300)
        assert r.code == 0, r.err
        assert marks()["conv_beats_mlp"] == want
        assert f"conv {ae['conv_psnr']:.2f} dB" in (out / "report.html").read_text()
    # a number that was not finite is stored as JSON's null; read back, it fails its claim
    ae["conv_psnr"] = None
    (out / "tour.json").write_text(json.dumps(state))
    r = run_cli_subprocess(*_tour_argv(out), env=env, timeout=300)
    assert r.code == 0, r.err
    assert marks()["conv_beats_mlp"] == "fails"
    assert "conv nan dB" in (out / "report.html").read_text()
    text = (out / "tour.json").read_text()
    assert (
        "NaN" not in text
        and json.loads(text)["parts"]["autoencoders"]["metrics"]["conv_psnr"] is None
    )


def _numbers_where_every_claim_holds() -> dict[str, dict[str, float]]:
    return {
        "autoencoders": {
            "pca_psnr": 19.0, "mlp_psnr": 20.0, "conv_psnr": 21.0, "phased_psnr": 20.1,
            "mlp_at_conv_psnr": 19.5, "conv_epochs": 2,
            "code_dim": 32, "plane_ratio": 1.001, "gaussian_dae_psnr": 18.0,
            "gaussian_plain_psnr": 14.0, "dropout_dae_psnr": 17.0, "dropout_plain_psnr": 12.0,
        },
        "classification": {
            "few_fraction": 0.01, "few_ae": 0.75, "few_scratch": 0.70,
            "more_fraction": 0.2, "more_ae": 0.86, "more_scratch": 0.85, "n_test": 10000,
        },
        "primer": {
            "inverse_cdf_tv": 0.011, "inverse_cdf_tv_exact": 0.012, "inverse_cdf_n": 2e5,
            "corr_photo": 0.9, "corr_iid": 0.001, "kl_cat": 0.0253, "kl_gauss": 0.4431,
            "kl_worst_z": 1.2,
        },
        "vae": {
            "sample_sharpness": 0.3, "recon_sharpness": 0.4, "interp_conf_ends": 0.9,
            "interp_conf_mid": 0.6, "fid": 100.0,
        },
        "vqvae": {
            "recon_sharpness": 0.7, "codes_used": 250, "num_codes": 256, "unigram_bits": 7.4,
            "bits_transformer": 4.5, "bits_pixelcnn": 4.7, "bits_pixelrnn": 4.6,
            "fid_transformer": 40.0, "fid_pixelcnn": 50.0, "fid_pixelrnn": 45.0,
        },
    }  # fmt: skip


# one number per claim that, moved this way, makes exactly that claim fail
BREAKS = {
    "ae_beats_pca": ("autoencoders", "pca_psnr", 20.5),
    "plane": ("autoencoders", "plane_ratio", 1.2),
    "conv_beats_mlp": ("autoencoders", "mlp_at_conv_psnr", 21.5),  # the MLP AE of as many steps
    "denoising_gaussian": ("autoencoders", "gaussian_dae_psnr", 13.0),
    "denoising_dropout": ("autoencoders", "dropout_dae_psnr", 11.0),
    "phased": ("autoencoders", "phased_psnr", 19.9),
    "semisup_few": ("classification", "few_ae", 0.69),
    "semisup_more": ("classification", "more_ae", 0.84),  # 1 point below: twice the 0.5 of one SE
    "inverse_cdf": ("primer", "inverse_cdf_tv", 0.05),
    "histogram_loses_picture": ("primer", "corr_iid", 0.4),
    "kl": ("primer", "kl_worst_z", 6.0),
    "vae_blurry": ("vae", "sample_sharpness", 1.3),
    "vae_hybrids": ("vae", "interp_conf_mid", 0.95),
    "vq_sharper": ("vqvae", "recon_sharpness", 0.3),
    "priors_beat_unigram": ("vqvae", "bits_pixelcnn", 7.5),
    "codebook_used": ("vqvae", "codes_used", 100),
    "vq_beats_vae": ("vqvae", "fid_pixelrnn", 120.0),
}


def test_each_claim_is_judged_on_its_own_numbers():
    base = _numbers_where_every_claim_holds()
    assert all(c.holds for c in evaluate_claims(base))
    assert set(BREAKS) == {s.key for s in CLAIMS}
    for key, (part, name, value) in BREAKS.items():
        numbers = json.loads(json.dumps(base))
        numbers[part][name] = value
        judged = {c.key: c.holds for c in evaluate_claims(numbers)}
        assert judged[key] is False, key
        assert all(v for k, v in judged.items() if k != key), (key, judged)


def test_not_below_allows_what_one_seed_cannot_resolve_and_no_more():
    numbers = _numbers_where_every_claim_holds()
    c = numbers["classification"]
    c.update(more_scratch=0.85, n_test=10000)  # one standard error of the difference: 0.505 points
    for ae, holds in ((0.8460, True), (0.8453, True), (0.8440, False), (0.80, False)):
        c["more_ae"] = ae
        judged = {x.key: x.holds for x in evaluate_claims(numbers)}
        assert judged["semisup_more"] is holds, ae


def test_a_claim_whose_part_did_not_run_is_not_measured():
    numbers = _numbers_where_every_claim_holds()
    del numbers["vae"]
    judged = {c.key: c for c in evaluate_claims(numbers)}
    for key in ("vae_blurry", "vae_hybrids", "vq_sharper", "vq_beats_vae"):
        assert judged[key].holds is None and "vae" in judged[key].evidence
    assert judged["priors_beat_unigram"].holds is True
    no_priors = _numbers_where_every_claim_holds()
    no_priors["vqvae"] = {
        k: v for k, v in no_priors["vqvae"].items() if not k.startswith(("bits_", "fid_"))
    }
    judged = {c.key: c for c in evaluate_claims(no_priors)}
    assert judged["priors_beat_unigram"].holds is None and judged["vq_beats_vae"].holds is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_quick_tour_on_fashion_mnist_shows_every_claim(tmp_path, seed):
    """The README's main job: on real data every claim of the lecture holds at the quick budget."""
    out = tmp_path / "tour"
    r = run_cli_subprocess(
        "tour", "--out", str(out), "--seed", str(seed), "--quiet",
        env={"AEGEN_CACHE": str(tmp_path / "cache")}, timeout=3600,
    )  # fmt: skip
    assert r.code == 0, r.err
    claims = json.loads((out / "tour.json").read_text())["claims"]
    failed = [f"{c['text']}: {c['evidence']}" for c in claims if c["holds"] is not True]
    assert not failed, "\n".join(failed)


def _tiny_tour(out):
    from aegen.pipelines.tour import BUDGETS
    from aegen.pipelines.tour.context import Tour

    return Tour(out, BUDGETS["tiny"], "synthetic", progress=False, log=lambda _m: None)


def test_the_generators_part_says_not_run_while_a_family_is_missing(tmp_path, monkeypatch):
    from aegen.pipelines import generators as gen
    from aegen.pipelines.tour import generators as part

    monkeypatch.setitem(gen.RECIPES, "gan", gen.Recipe("no-such-gan", (), False))
    d = tmp_path / "6-generators"
    d.mkdir()
    r = part.run(_tiny_tour(tmp_path), d)
    assert r.numbers[0][0] == "not run" and "not installed: gan" in r.numbers[0][1]
    assert not r.metrics and not r.figures and not any(d.iterdir())


def test_the_generators_part_compares_the_installed_families(tmp_path, monkeypatch):
    from aegen.pipelines import generators as gen
    from aegen.pipelines.tour import generators as part

    # a stand-in "gan" (a small VAE) shows the part's plumbing while the real one is not merged
    monkeypatch.setattr(gen, "FAMILIES", ("vae", "gan"))
    monkeypatch.setitem(gen.RECIPES, "gan", gen.Recipe("vae-mlp", ("model.latent_dim=4",), False))
    d = tmp_path / "6-generators"
    d.mkdir()
    r = part.run(_tiny_tour(tmp_path), d)
    assert set(r.metrics) == {"fid_vae", "fid_gan", "entropy_vae", "entropy_gan", "fid_data"}
    assert [rel for rel, _ in r.figures] == [
        "6-generators/vae/samples.png",
        "6-generators/gan/samples.png",
    ]
    saved = json.loads((d / "generators.json").read_text())
    for (_, text), fam in zip(r.figures, ("vae", "gan"), strict=True):
        assert text == f"{fam}: {saved['families'][fam]['caption']}"
    assert r.metrics["fid_gan"] == saved["families"]["gan"]["fid"]


def test_a_budget_with_consistency_runs_it_on_its_own_unlabeled_budget_and_may_pick_it(
    tmp_path, monkeypatch
):
    import dataclasses
    import math

    from aegen.pipelines.semisup import read_results
    from aegen.pipelines.tour import semisup as part

    tiny = dataclasses.replace(part.BUDGETS["tiny"], modes=("consistency",), unlabeled_epochs=3.0)
    monkeypatch.setitem(part.BUDGETS, "tiny", tiny)
    t = _tiny_tour(tmp_path)
    d = tmp_path / "2-classification"
    d.mkdir()
    r = part.run(t, d)
    rows = read_results(d / "results.csv")
    n_train = len(t.data().train)
    for name, fraction in (("few", tiny.few), ("more", tiny.more)):
        at = [row for row in rows if abs(row["fraction"] - fraction) < 1e-12]
        assert {row["column"] for row in at} == {"probe", "finetune", "scratch", "consistency"}
        cons = next(row for row in at if row["column"] == "consistency")
        # the budget's 3 unlabeled epochs of μ·B = 256 draws a step, not the library's 20
        assert math.ceil(3 * n_train / 256) <= cons["steps"] < math.ceil(20 * n_train / 256)
        best = max((row for row in at if row["column"] != "scratch"), key=lambda r: r["val_acc"])
        assert r.metrics[f"{name}_ae"] == pytest.approx(best["test_acc"], abs=1e-6)  # csv: 6 digits
    assert any("consistency" in label for label, _ in r.numbers)


def test_the_ae_based_pick_takes_a_budgets_extra_mode_only_when_the_budget_runs_it():
    from aegen.pipelines.tour.semisup import _pick

    def row(column, val, test):
        return {"fraction": 0.01, "column": column, "val_acc": val, "test_acc": test}

    rows = [row("probe", 0.70, 0.69), row("finetune", 0.80, 0.79), row("scratch", 0.85, 0.84)]
    rows.append(row("consistency", 0.83, 0.82))
    assert _pick(rows, 0.01, ("consistency",))[0]["column"] == "consistency"
    assert _pick(rows, 0.01)[0]["column"] == "finetune"  # scratch is never the AE-based row
    assert _pick(rows, 0.01)[1]["column"] == "scratch"
