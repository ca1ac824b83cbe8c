"""aegen report: one self-contained HTML page, checked as text and in headless Chromium."""

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import fakes
import pytest
from conftest import assert_user_error
from headless import visit
from PIL import Image

from aegen.eval.evaluate import EvalOptions, evaluate_run
from aegen.eval.metrics import update_metrics_json
from aegen.eval.report import (
    IncomparableScores,
    RunSummary,
    build_report,
    comparison_table,
    write_report,
)
from aegen.registry import available
from aegen.runs import finish_run, make_run_config, train_run
from aegen.viz import save_grid

OPTIONS = EvalOptions(n=200, kid_subsets=5, nll_images=50, iwae_k=8)
# the report needs a run of each family, not a good one: the diffusion model's default
# U-Net and 25 sampling steps were half of this module's time
SMALLER = {"diffusion": ["model.channels=8,16,16", "model.embed_dim=16", "model.sample_steps=4"]}


def _evaluate(run_dir, data, features):
    result = evaluate_run(run_dir, data, features, OPTIONS)
    if result.samples is not None:
        save_grid(run_dir / "samples" / "scored_samples.png", result.samples)
    update_metrics_json(run_dir, result.sections)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_features, small_synthetic):
    """A tiny trained, evaluated run of every registered model, plus two fake generators."""
    base = tmp_path_factory.mktemp("report")
    dirs = {}
    for name in available("model"):
        sets = SMALLER.get(name, [])
        cfg = make_run_config(name, "synthetic", sets, epochs=1, batch_size=100, limit=1200)
        trained = train_run(cfg, base / name, progress=False)
        finish_run(trained, report="fast")  # the report shows the NLL, whatever its k
        _evaluate(base / name, small_synthetic, tiny_features)
        dirs[name] = base / name
    with fakes.registered():
        for mode in ("data", "noise"):
            d = fakes.make_run(base / f"fake-{mode}", mode)
            (d / "samples").mkdir()
            _evaluate(d, small_synthetic, tiny_features)
            dirs[f"fake-{mode}"] = d
    return dirs


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page):
    p = _Tags()
    p.feed(page)
    return p.tags


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    write_report(list(runs.values()), out)
    return out


def test_the_report_covers_every_family(runs, report):
    page = report.read_text()
    tags = _tags(page)
    families = {json.loads((d / "config.json").read_text())["family"] for d in runs.values()}
    assert {"ae", "vae"} <= families
    sections = [a for t, a in tags if t == "section" and a.get("class") == "run"]
    assert len(sections) == len(runs)
    for label in runs:
        assert f'<th scope="col">{label}</th>' in page
    images = [a for t, a in tags if t == "img"]
    # every trained run: loss curves + reconstructions (+ scored samples where it samples)
    assert len(images) >= 3 * len(available("model")) + 2
    for img in images:
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert Image.open(io.BytesIO(png)).size[0] > 0
    external = [
        a
        for _, a in tags
        for k in ("src", "href")
        if k in a and not a[k].startswith(("data:", "#"))
    ]
    assert external == []
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page


def test_the_metrics_table_marks_the_best_of_comparable_scores(runs, report):
    page = report.read_text()
    labels = list(runs)
    for metric in (
        "reconstruction.mse",
        "reconstruction.ssim",
        "samples.fid",
        "samples.kid_mean",
        "samples.recall",
        "likelihood.nll_nats",
    ):
        assert f'data-metric="{metric}"' in page, metric
    row = page.split('data-metric="samples.fid"')[1].split("</tr>")[0]
    cells = row.split("<td")[2:]  # after the "better" column: one per run
    assert len(cells) == len(labels)
    best = [label for label, cell in zip(labels, cells, strict=True) if "class=best" in cell]
    assert best == ["fake-data"]  # real images beat noise (and every untrained model)
    assert 'id="incomparable"' not in page  # same features, counts and data everywhere


def test_scores_from_different_feature_networks_are_flagged_or_refused(runs, tmp_path, cli):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs["fake-data"], a)
    shutil.copytree(runs["fake-noise"], b)
    metrics = json.loads((b / "metrics.json").read_text())
    metrics["samples"]["features"]["sha256"] = "f" * 64  # scored with another network
    (b / "metrics.json").write_text(json.dumps(metrics))
    page = build_report([a, b])
    assert 'id="incomparable"' in page and "different feature networks" in page
    fid_row = page.split('data-metric="samples.fid"')[1].split("</tr>")[0]
    assert "class=best" not in fid_row and 'class="incomparable"' in page
    mse_row = page.split('data-metric="reconstruction.mse"')[0].rsplit("<tr", 1)[1]
    assert "incomparable" not in mse_row  # the reconstructions are still comparable
    with pytest.raises(IncomparableScores, match="different feature networks"):
        build_report([a, b], strict=True)
    out = tmp_path / "r.html"
    assert_user_error(cli("report", a, b, "--out", out, "--strict"), "different feature networks")
    assert not out.exists()


def _summary(label, likelihood):
    return RunSummary(Path(label), label, {"model": label}, {"likelihood": likelihood}, [])


def test_comparability_is_judged_per_row():
    vae = _summary(
        "vae", {"nll_nats": 90.0, "bits_per_dim": 0.166, "n": 1000, "importance_samples": 100}
    )
    prior = _summary("prior", {"bits_per_code": 2.0, "n": 5000})  # other rows: never compared
    better = _summary(
        "vae2", {"nll_nats": 80.0, "bits_per_dim": 0.147, "n": 1000, "importance_samples": 100}
    )
    rows, warnings = comparison_table([vae, prior, better])
    assert warnings == []
    nll = next(r for r in rows if r.row.key == "nll_nats")
    assert nll.best == {2} and nll.cells[1] == "—"
    rough = _summary(
        "vae3", {"nll_nats": 70.0, "bits_per_dim": 0.129, "n": 1000, "importance_samples": 5}
    )
    rows, warnings = comparison_table([vae, rough])
    assert all(not r.best and not r.comparable for r in rows)
    assert warnings == [
        "Likelihood of the test images: different numbers of importance samples (100: vae; 5: vae3)"
    ]


def test_report_user_errors(runs, tmp_path, cli):
    out = tmp_path / "r.html"
    assert_user_error(cli("report", tmp_path, "--out", out), "not a run directory")
    assert_user_error(cli("report", runs["fake-data"], "--out", tmp_path / "r.txt"), ".html")
    broken = tmp_path / "broken"
    shutil.copytree(runs["fake-data"], broken)
    metrics = json.loads((broken / "metrics.json").read_text())
    del metrics["samples"]["fid"]
    (broken / "metrics.json").write_text(json.dumps(metrics))
    assert_user_error(cli("report", broken, "--out", out), "samples.fid is missing")
    (broken / "metrics.json").write_text("{not json")
    assert_user_error(cli("report", broken, "--out", out), "metrics.json: unreadable")
    assert not out.exists()


def test_an_unreadable_picture_is_named_not_embedded(runs, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(runs["ae-mlp"], run)
    (run / "samples" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = cli("report", run, "--out", tmp_path / "r.html")
    assert r.code == 0, r.err
    page = (tmp_path / "r.html").read_text()
    assert "unreadable pictures left out: broken.png" in page
    assert page.count("<img") == len(list((runs["ae-mlp"] / "samples").glob("*.png"))) + 2


# ------------------------------------------------------------------ in a real browser

PAGE_STATE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth})),
  table: !!document.querySelector('table#metrics'),
  rows: document.querySelectorAll('table#metrics tr[data-metric]').length,
  best: document.querySelectorAll('table#metrics td.best').length,
  resources: performance.getEntriesByType('resource').map(e => e.name),
})"""


def _external(visit_result, page_url):
    return [u for u in visit_result.requests if u != page_url and not u.startswith("data:")]


def test_report_in_headless_chromium(report):
    seen = visit(report, PAGE_STATE)
    state = json.loads(seen.result)
    assert state["table"] and state["rows"] >= 7 and state["best"] >= 1
    assert len(state["images"]) > 0
    assert all(i["complete"] and i["width"] > 0 for i in state["images"]), state["images"]
    assert _external(seen, report.resolve().as_uri()) == []  # no request left the file
    assert state["resources"] == [] and seen.failed == []
    assert not [m for m in seen.console if "Content Security Policy" in m]


def test_the_browser_check_catches_a_page_that_reaches_out(report, tmp_path):
    """The checks above can fail: a page with an outside image is caught three ways."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        report.read_text().replace("<h1>", '<img src="http://127.0.0.1:9/x.png"><h1>', 1)
    )
    seen = visit(bad, PAGE_STATE)
    state = json.loads(seen.result)
    assert not all(i["width"] > 0 for i in state["images"])
    assert _external(seen, bad.resolve().as_uri()) == ["http://127.0.0.1:9/x.png"]
    assert any("Content Security Policy" in m for m in seen.console)
