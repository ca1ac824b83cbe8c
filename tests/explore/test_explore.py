"""aegen explore: the pages' answers, the server's refusals, and the page in a real browser.

Tiny runs are trained on synthetic data once for the module (a few seconds): an
``ae-mlp`` with a 2-D code, a ``vae-mlp`` with a 4-D latent (the map is then its
first two principal components) and a VQ pipeline with a transformer prior. One
server on 127.0.0.1 (any free port, stopping itself after a few minutes at most)
and one headless Chromium serve every test. Screenshots go to
``$AEGEN_TEST_ARTIFACTS`` (default: a temporary folder); with
``AEGEN_UPDATE_FIGURES=1`` they are also copied into docs/figures for docs/explore.md.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_user_error
from explorer_page import artifacts_folder, open_page, outside, screenshot
from headless import Browser

import aegen
from aegen.explore import SamplingSession, export_static, make_server, open_runs, start_in_thread
from aegen.explore.pages import pixels
from aegen.explore.vq import VQPage
from aegen.pipelines.vq_prior import run_pipeline
from aegen.priors.base import Prior
from aegen.registry import available, build_model, entry
from aegen.runs import make_run_config, train_run

VQ_TINY = [
    "vqvae.model.num_codes=32",
    "vqvae.model.code_dim=8",
    "vqvae.model.hidden=16",
    "vqvae.model.res_hidden=8",
    "vqvae.model.res_blocks=1",
    "vqvae.train.batch_size=25",
    "prior.model.d_model=32",
    "prior.model.n_layers=2",
    "prior.train.batch_size=50",
]
VIEW = (1280, 860)
# the screenshots docs/explore.md shows (the others stay test artefacts)
DOC_FIGURES = {"latent-vae-mlp-path", "vq-vqvae-edited", "prior-prior-sampling", "static-vae-mlp"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: a second torch thread only adds waiting, and on a busy machine
    the two threads' barriers made the module's training 10x slower (36 s against 4 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """ae-mlp (2-D code), vae-mlp (4-D latent) and a VQ pipeline (K = 32), briefly trained."""
    out = tmp_path_factory.mktemp("explore") / "runs"
    torch.manual_seed(0)
    data = aegen.load_data("synthetic", val_size=100, limit=600)
    for model, sets in (
        ("ae-mlp", ["model.hidden=64", "model.code_dim=2"]),
        ("vae-mlp", ["model.hidden=64", "model.latent_dim=4"]),
    ):
        run = make_run_config(
            model,
            data="synthetic",
            overrides=[*sets, "train.batch_size=50", "train.lr=3e-3"],
            epochs=15,
            limit=600,
            val_size=100,
        )
        train_run(run, out / model, progress=False, data=data)
    run_pipeline(
        out / "vq",
        prior="transformer",
        data="synthetic",
        limit=600,
        vqvae_epochs=6,
        prior_epochs=4,
        n=4,
        overrides=VQ_TINY,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def pages(runs):
    """The pages, opened by relative paths as a user types them (the titles show them)."""
    here = os.getcwd()
    os.chdir(runs.parent)
    try:
        return open_runs([f"{runs.name}/{n}" for n in ("ae-mlp", "vae-mlp", "vq")], points=400)
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def server(pages):
    srv = make_server(pages, "127.0.0.1", 0)
    thread = start_in_thread(srv, stop_after=240)  # never outlives a stuck test run
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def browser():
    with Browser(*VIEW, timeout=60) as b:
        yield b


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return artifacts_folder(tmp_path_factory)


def shot(browser: Browser, artifacts: Path, name: str) -> Path:
    """A screenshot as a test artefact (and a docs figure when AEGEN_UPDATE_FIGURES=1)."""
    return screenshot(browser, artifacts, name, docs=name in DOC_FIGURES)


def page_of(pages, kind):
    return next(p for p in pages if p.kind == kind)


# ------------------------------------------------------------------ HTTP helpers


def request(server, method, path, body=None, raw=None, headers=None):
    """(status, decoded JSON or text) of one request on a fresh connection."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        res = conn.getresponse()
        text = res.read().decode()
        ctype = res.getheader("Content-Type", "")
        return res.status, json.loads(text) if ctype.startswith("application/json") else text
    finally:
        conn.close()


def post(server, run, action, body):
    return request(server, "POST", f"/api/{run}/{action}", body)


# ------------------------------------------------------------------ pages and server


def test_opening_the_runs_gives_one_page_per_kind(pages):
    assert [(p.name, p.kind) for p in pages] == [
        ("ae-mlp", "latent"),
        ("vae-mlp", "latent"),
        ("vqvae", "vq"),
        ("prior", "prior"),
    ]
    ae, vae, vq, prior = pages
    assert ae.info()["projection"] == "latent" and ae.dim == 2
    assert vae.info()["projection"] == "pca" and vae.dim == 4
    # the PCA axes are orthonormal and the points are the codes' coordinates on them
    assert torch.allclose(vae.basis @ vae.basis.T, torch.eye(2), atol=1e-5)
    assert torch.allclose(vae.points, (vae.codes - vae.center) @ vae.basis.T, atol=1e-5)
    assert prior.vq is vq and prior.info()["conditional"]


def test_a_prior_finds_its_vqvae_wherever_it_is(runs):
    """Alone (through its codes directory), or listed before its VQ-VAE: the pair is found once."""
    alone = open_runs([runs / "vq" / "prior"], points=20)
    assert [p.kind for p in alone] == ["vq", "prior"] and alone[1].vq is alone[0]
    both = open_runs([runs / "vq" / "prior", runs / "vq" / "vqvae"], points=20)
    assert [p.name for p in both] == ["vqvae", "prior"] and both[1].vq is both[0]


def test_a_run_of_another_family_is_refused(runs, tmp_path):
    other = tmp_path / "flow"
    shutil.copytree(runs / "ae-mlp", other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "family": "flow"}))
    with pytest.raises(aegen.UserError, match="a flow run has no explorer page yet"):
        open_runs([other])


def test_the_api_answers_every_kind(server, pages):
    status, body = request(server, "GET", "/api/runs")
    assert status == 200 and [r["name"] for r in body["runs"]] == [p.name for p in pages]
    status, info = request(server, "GET", "/api/vae-mlp/info")
    assert status == 200 and len(info["points"]) == info["n"] == 400 and info["vae"]
    status, img = post(server, "vae-mlp", "image", {"index": 3})
    assert status == 200 and len(img["std"]) == 4 and all(s > 0 for s in img["std"])
    status, path = post(server, "vae-mlp", "path", {"a": 1, "b": 2, "steps": 5})
    assert status == 200 and len(path["linear"]) == len(path["spherical"]) == 5
    # a path's ends are the two images' codes, on the map too
    assert path["linear_points"][0] == pytest.approx(info["points"][1], abs=1e-3)
    status, book = request(server, "GET", "/api/vqvae/codebook")
    assert status == 200 and len(book["images"]) == 32 and sum(book["usage"]) == 400 * 49


def test_a_decode_is_the_models_own(server, pages):
    vq = page_of(pages, "vq")
    codes = vq.codes[5]
    status, ans = post(server, "vqvae", "decode", {"codes": codes.flatten().tolist()})
    want = pixels(vq.model.decode_indices(codes[None])[0].clamp(0, 1))
    assert status == 200 and ans["image"] == want


def test_pixels_are_the_images_bytes():
    """uint8 images go as they are, floats in [0, 1] are scaled and rounded, 1×H×W is squeezed."""
    import base64

    u8 = torch.randint(0, 256, (28, 28), dtype=torch.uint8)
    assert base64.b64decode(pixels(u8)) == u8.numpy().tobytes()
    f = torch.tensor([[[0.0, 0.5, 1.0, 2.0]]])  # (1, 1, 4): 2.0 is clipped
    assert list(base64.b64decode(pixels(f))) == [0, 128, 255, 255]


LONG = 10**9
BAD = [
    # (method, path, JSON body or raw bytes, status, words in the reason)
    ("GET", "/api/nope/info", None, 404, "no run named"),
    ("GET", "/api/ae-mlp/explode", None, 404, "no action"),
    ("POST", "/api/ae-mlp/__class__", {}, 404, "no action"),
    ("POST", "/api/ae-mlp/info()", {}, 404, "no action"),
    ("GET", "/api/ae-mlp/decode", None, 405, "POST"),
    ("GET", "/../../../etc/passwd", None, 404, "no such page"),
    ("GET", "/assets/..%2f..%2f..%2fpyproject.toml", None, 404, "no such asset"),
    ("GET", "/assets/%2e%2e%2fpages.py", None, 404, "no such asset"),
    ("GET", "/assets/index.html/../../explore/pages.py", None, 404, "no such page"),
    ("GET", "/api/..%2f..%2fvqvae/info", None, 404, "no run named"),
    ("POST", "/api/ae-mlp/decode", b"not json", 400, "not JSON"),
    ("POST", "/api/ae-mlp/decode", b"\xff\xfe", 400, "not JSON"),
    ("POST", "/api/ae-mlp/decode", [1, 2], 400, "JSON object"),
    ("POST", "/api/ae-mlp/decode", {}, 400, "missing field 'z'"),
    ("POST", "/api/ae-mlp/decode", {"z": [1.0]}, 400, "2 values"),
    ("POST", "/api/ae-mlp/decode", {"z": "0,0"}, 400, "must be a list"),
    ("POST", "/api/ae-mlp/decode", {"z": ["a", 1]}, 400, "numbers only"),
    ("POST", "/api/ae-mlp/decode", {"z": [True, 1]}, 400, "numbers only"),
    ("POST", "/api/ae-mlp/decode", b'{"z": [NaN, 0]}', 400, "finite"),
    ("POST", "/api/ae-mlp/decode", {"z": [1e300, 0]}, 400, "magnitude"),
    ("POST", "/api/ae-mlp/image", {"index": -1}, 400, "0..399"),
    ("POST", "/api/ae-mlp/image", {"index": LONG}, 400, "0..399"),
    ("POST", "/api/ae-mlp/image", {"index": 1.5}, 400, "integer"),
    ("POST", "/api/ae-mlp/image", {"index": "3"}, 400, "integer"),
    ("POST", "/api/ae-mlp/path", {"a": 0, "b": 1, "steps": 1000}, 400, "steps"),
    ("POST", "/api/vqvae/decode", {"codes": [32] * 49}, 400, "0..31"),
    ("POST", "/api/vqvae/decode", {"codes": [-1] * 49}, 400, "0..31"),
    ("POST", "/api/vqvae/decode", {"codes": [0] * 48}, 400, "49 values"),
    ("POST", "/api/vqvae/decode", {"codes": [[0] * 7] * 7}, 400, "49 values"),
    ("POST", "/api/vqvae/decode", {"codes": [0.5] * 49}, 400, "integer"),
    ("POST", "/api/prior/start", {"label": 99}, 400, "label"),
    ("POST", "/api/prior/start", {"temperature": 0}, 400, "temperature"),
    ("POST", "/api/prior/start", {"top_k": 0}, 400, "top_k"),
    ("POST", "/api/prior/start", {"seed": -1}, 400, "seed"),
    ("POST", "/api/prior/start", {"prefix": [0] * 49}, 400, "prefix"),
    ("POST", "/api/prior/step", {"session": "no-such-session"}, 404, "unknown sampling session"),
    ("POST", "/api/prior/step", {"session": 7}, 400, "session"),
    ("PUT", "/api/ae-mlp/decode", {"z": [0, 0]}, 405, "PUT"),
    ("DELETE", "/", None, 405, "DELETE"),
]


@pytest.mark.parametrize("method, path, body, status, reason", BAD, ids=[b[1] for b in BAD])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(server, method, path, body, status, reason):
    raw = body if isinstance(body, bytes) else None
    got, answer = request(server, method, path, None if raw else body, raw=raw)
    assert got == status, answer
    assert reason in answer["error"] and "\n" not in answer["error"]


def test_the_server_refuses_oversized_bodies_other_hosts_and_chunks(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/api/ae-mlp/decode")
    conn.putheader("Content-Length", str(LONG))  # the body is never sent
    conn.endheaders()
    res = conn.getresponse()
    assert res.status == 413 and "bytes" in json.loads(res.read())["error"]
    conn.close()
    status, answer = request(server, "POST", "/api/ae-mlp/decode", raw=b"", headers={})
    assert status == 400 and "missing field 'z'" in answer["error"]  # an empty body is {}
    status, answer = request(server, "GET", "/api/runs", headers={"Host": "evil.example"})
    assert status == 421 and "Host" in answer["error"]
    status, answer = request(
        server, "POST", "/api/ae-mlp/decode", raw=b"2\r\n{}\r\n0\r\n\r\n",
        headers={"Transfer-Encoding": "chunked"},
    )  # fmt: skip
    assert status == 411
    # and after all of it the server still answers
    assert request(server, "GET", "/api/runs")[0] == 200


def test_no_path_reaches_a_file_outside_the_runs(server, tmp_path):
    """Every traversal spelling is a 404 that carries none of the file it aims at."""
    secret = (REPO / "pyproject.toml").read_text()[:60]
    for path in (
        "/assets/../../../../pyproject.toml",
        "/assets/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/assets/....//....//pyproject.toml",
        "/api/ae-mlp/../../pyproject.toml",
        "//etc/passwd",
        "/assets/explore.js%00.html",
        "/%2fetc%2fpasswd",
    ):
        status, answer = request(server, "GET", path)
        assert status == 404, path
        assert secret not in json.dumps(answer)


@pytest.mark.parametrize("label, temperature, top_k", [(2, 1.0, None), (None, 0.7, 5)])
def test_stepping_the_prior_over_http_equals_prior_sample(server, pages, label, temperature, top_k):
    prior = page_of(pages, "prior").prior
    body = {"seed": 11, "label": label, "temperature": temperature, "top_k": top_k}
    status, s = post(server, "prior", "start", body)
    assert status == 200 and s["t"] == 0 and s["codes"] == [-1] * 49
    for t in range(49):
        p = [c["p"] for c in s["candidates"]]
        assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1 + 1e-5
        status, s = post(server, "prior", "step", {"session": s["session"]})
        assert status == 200 and s["t"] == t + 1
    want = prior.sample(
        1, torch.Generator().manual_seed(11), label=label, temperature=temperature, top_k=top_k
    )
    assert s["done"] and s["codes"] == want.flatten().tolist()
    if top_k is not None:  # the candidates are the top-k renormalised
        start = post(server, "prior", "start", body)[1]
        assert len(start["candidates"]) <= top_k
        assert sum(c["p"] for c in start["candidates"]) == pytest.approx(1, abs=1e-5)
    assert post(server, "prior", "step", {"session": s["session"]})[0] == 400  # complete


AUTOREGRESSIVE = [n for n in available("prior") if issubclass(entry(n).cls, Prior)]


def test_the_explorer_knows_which_priors_draw_in_raster_order():
    assert {"pixelcnn", "pixelrnn", "transformer"} <= set(AUTOREGRESSIVE)
    assert "maskgit" in available("prior") and "maskgit" not in AUTOREGRESSIVE


@pytest.mark.parametrize("name", AUTOREGRESSIVE)
def test_a_session_equals_sample_for_every_prior(name):
    """The cached priors (transformer, pixelrnn) and the uncached one (pixelcnn) alike."""
    torch.manual_seed(0)
    prior = build_model(name, num_codes=8, height=3, width=3, num_classes=2).eval()
    for seed, label in ((0, None), (1, 1), (5, 0)):
        session = SamplingSession(prior, seed=seed, label=label, temperature=0.9)
        while not session.done:
            session.step()
        want = prior.sample(1, torch.Generator().manual_seed(seed), label=label, temperature=0.9)
        assert session.codes() == want.flatten().tolist(), (name, seed)


def test_resampling_keeps_the_first_t_codes(server):
    prefix = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    status, s = post(server, "prior", "start", {"seed": 2, "label": 0, "prefix": prefix})
    assert status == 200 and s["t"] == 10 and s["codes"][:10] == prefix
    assert s["codes"][10:] == [-1] * 39
    status, s = post(server, "prior", "step", {"session": s["session"], "steps": 49})
    assert s["done"] and s["codes"][:10] == prefix and min(s["codes"]) >= 0


def test_several_tabs_at_once(server, pages):
    """Threads that hover and sample at the same time all get their own right answers."""
    prior = page_of(pages, "prior").prior
    results, errors = {}, []

    def sampler(seed):
        try:
            s = post(server, "prior", "start", {"seed": seed, "label": 1})[1]
            for _ in range(49):
                s = post(server, "prior", "step", {"session": s["session"]})[1]
            results[seed] = s["codes"]
        except Exception as e:  # noqa: BLE001 — reported below
            errors.append(repr(e))

    def hoverer():
        try:
            for i in range(40):
                status, _ = post(server, "ae-mlp", "decode", {"z": [i / 10, -i / 20]})
                assert status == 200
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=sampler, args=(s,)) for s in (21, 22, 23)]
    threads += [threading.Thread(target=hoverer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for seed, codes in results.items():
        want = prior.sample(1, torch.Generator().manual_seed(seed), label=1)
        assert codes == want.flatten().tolist()
    assert len(results) == 3


def test_the_codebook_shows_each_code_in_the_middle_of_the_background(pages):
    vq: VQPage = page_of(pages, "vq")
    book = vq.codebook_images()  # (K, 1, 28, 28)
    assert book.shape == (32, 1, 28, 28)
    background = vq.decode_grids(torch.full((1, 7, 7), vq.background))[0]
    # the background code's own entry is the plain background; others differ mostly mid-image
    assert torch.allclose(book[vq.background], background, atol=1e-5)
    used = [k for k in range(32) if vq.usage[k] > 0 and k != vq.background]
    diff = (book[used] - background).abs()[:, 0]  # (U, 28, 28)
    middle = diff[:, 8:20, 8:20].sum((1, 2))
    assert (middle > 0.5 * diff.sum((1, 2))).float().mean() > 0.8


# ------------------------------------------------------------------ the command line


def test_cli_refuses_bad_input_in_one_line(cli, runs, tmp_path):
    assert_user_error(cli("explore", tmp_path / "missing"), "no such run directory")
    assert_user_error(cli("explore", tmp_path), "not a run directory")
    assert_user_error(cli("explore", runs / "ae-mlp", "--port", "70000"), "port")
    assert_user_error(cli("explore", runs / "ae-mlp", "--port", "x"), "integer")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me")
    assert_user_error(cli("explore", runs / "ae-mlp", "--static", full), "not an empty")
    assert (full / "x").read_text() == "keep me"
    lonely = tmp_path / "lonely-prior"
    shutil.copytree(runs / "vq" / "prior", lonely)
    cfg = json.loads((lonely / "config.json").read_text())
    cfg["codes"]["dir"] = str(tmp_path / "gone")
    (lonely / "config.json").write_text(json.dumps(cfg))
    assert_user_error(cli("explore", lonely), "cannot find the VQ-VAE")


def test_cli_writes_the_static_export(cli, runs, tmp_path):
    result = cli("explore", runs / "vq", "--static", tmp_path / "site", "--points", "60")
    assert result.code == 0 and "wrote" in result.out, result.err
    data = (tmp_path / "site" / "assets" / "data.js").read_text()
    payload = json.loads(data.removeprefix("window.AEGEN_STATIC = ").rstrip().rstrip(";"))
    assert [r["kind"] for r in payload["runs"]] == ["vq", "prior"]
    prior = payload["pages"]["prior"]
    assert len(prior["recordings"]) == 4 and all(
        len(r["states"]) == 50 for r in prior["recordings"]
    )
    assert (tmp_path / "site" / "sheets" / "vqvae-codebook.png").is_file()


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN])
def test_cli_serves_until_ctrl_c(runs, inherited):
    """SIGINT stops the server, also when it starts with SIGINT ignored, as a script's
    background job does (CI once ran the suite that way and the server ran on)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "aegen", "explore", str(runs / "ae-mlp"), "--port", "0"]
    proc = subprocess.Popen(
        [*argv, "--no-browser", "--points", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("aegen explore: http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[2]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/runs")
        assert json.loads(conn.getresponse().read())["runs"][0]["name"] == "ae-mlp"
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ in a real browser

PIXELS = """Array.from(document.getElementById(%r).getContext('2d')
  .getImageData(0, 0, 28, 28).data.filter((_, i) => i %% 4 === 0))"""
RECT = "JSON.stringify(document.getElementById(%r).getBoundingClientRect())"


def rect(browser, element_id):
    return json.loads(browser.evaluate(RECT % element_id))


def pixels_of(browser, element_id):
    return torch.tensor(browser.evaluate(PIXELS % element_id), dtype=torch.float32).view(28, 28)


def test_the_page_loads_offline_without_errors(browser, server, pages, artifacts):
    browser.clear()
    for page in pages:
        open_page(browser, server.url, page.name)
        shot(browser, artifacts, f"{page.kind}-{page.name}-loaded")
    assert browser.errors == []
    assert outside(browser.requests, server.url) == []  # nothing left 127.0.0.1
    assert any(u.endswith("/assets/explore.js") for u in browser.requests)


def test_the_browser_checks_catch_errors_and_outside_requests(browser, server, tmp_path):
    """The checks above can fail: errors, blocked fetches and outside requests are all seen."""
    open_page(browser, server.url, "ae-mlp")
    browser.clear()
    browser.evaluate("fetch('http://127.0.0.2:9/x').catch(() => 0); console.error('boom'); 1")
    browser.evaluate("new Promise((r) => setTimeout(r, 100))")
    assert any("boom" in e for e in browser.errors)
    # the page's Content-Security-Policy stops the fetch before it leaves, and says so
    assert any("Content Security Policy" in e for e in browser.errors), browser.errors
    assert outside(browser.requests, server.url) == []
    # a page without that policy: the outside request is recorded
    bad = tmp_path / "bad.html"
    bad.write_text('<img src="http://127.0.0.2:9/x.png">')
    browser.goto(bad.as_uri())
    assert outside(browser.requests, bad.as_uri()) == ["http://127.0.0.2:9/x.png"]
    browser.clear()


@pytest.mark.parametrize("run", ["ae-mlp", "vae-mlp"])
def test_moving_the_mouse_over_the_map_changes_the_decoded_image(browser, server, artifacts, run):
    open_page(browser, server.url, run)
    box = rect(browser, "map")
    seen = []
    for fx, fy in ((0.2, 0.2), (0.8, 0.75), (0.5, 0.3)):
        browser.mouse("mouseMoved", box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        browser.evaluate("window.aegenExplore.idle()")
        seen.append(pixels_of(browser, "decoded"))
    assert all((a - b).abs().max() > 10 for a, b in zip(seen, seen[1:], strict=False))
    # dragging decodes too
    x, y = box["x"] + 0.3 * box["width"], box["y"] + 0.6 * box["height"]
    browser.mouse("mousePressed", x, y, buttons=1)
    browser.mouse("mouseMoved", x + 60, y - 40, buttons=1)
    browser.mouse("mouseReleased", x + 60, y - 40)
    browser.evaluate("window.aegenExplore.idle()")
    dragged = pixels_of(browser, "decoded")
    assert (dragged - seen[-1]).abs().max() > 10
    # pick A and B (clicks on two of the map's points), then the path strip fills in
    page = server.pages[run]
    (x0, y0), (x1, y1) = page.extent.tolist()

    def at(i):
        px, py = page.points[i].tolist()
        inner = box["width"] - 2  # the canvas's 1-px border
        return (
            box["x"] + 1 + (px - x0) / (x1 - x0) * inner,
            box["y"] + 1 + (1 - (py - y0) / (y1 - y0)) * inner,
        )

    rel = (page.points - page.extent[0]) / (page.extent[1] - page.extent[0])  # (N, 2) in [0, 1]
    inside = ((rel > 0.05) & (rel < 0.95)).all(1).nonzero().flatten().tolist()
    a, b = inside[0], max(inside[1:], key=lambda k: (rel[k] - rel[inside[0]]).norm().item())
    browser.click(*at(a))
    browser.evaluate("window.aegenExplore.idle()")
    browser.click(*at(b), modifiers=8)  # shift
    browser.evaluate("window.aegenExplore.idle()")
    strip = browser.evaluate(
        "Array.from(document.getElementById('strip').getContext('2d')"
        ".getImageData(0, 0, 252, 56).data).reduce((a, b) => a + b, 0)"
    )
    assert strip > 0
    picked = "document.getElementById('pick-b').getContext('2d').getImageData(0, 0, 28, 28).data[3]"
    assert browser.evaluate(picked) == 255  # B's image was drawn
    shot(browser, artifacts, f"latent-{run}-path")
    assert browser.errors == []


def test_changing_one_vq_cell_changes_the_image_mostly_near_it(browser, server, pages, artifacts):
    vq = page_of(pages, "vq")
    open_page(browser, server.url, "vqvae")
    before = pixels_of(browser, "vq-decoded")
    box = rect(browser, "vq-image")
    i, j = 3, 4
    cell = box["width"] / 7
    browser.click(box["x"] + (j + 0.5) * cell, box["y"] + (i + 0.5) * cell)
    old = vq.codes[0, i, j].item()
    # the used code whose decode differs most from the old one's: a change worth seeing
    book = vq.codebook_images()[:, 0]
    new = max(
        (k for k in range(vq.num_codes) if vq.usage[k] > 0),
        key=lambda k: (book[k] - book[old]).abs().sum().item(),
    )
    browser.evaluate(
        f"(() => {{ const c = document.getElementById('vq-code'); c.value = {new};"
        "c.dispatchEvent(new Event('change')); return window.aegenExplore.idle(); })()"
    )
    after = pixels_of(browser, "vq-decoded")
    diff = (after - before).abs()
    assert diff.sum() > 255  # the picture changed
    # a cell is 4×4 pixels: the cell and its ring of neighbours (12×12 of 28×28 pixels, 18 %
    # of the image) hold most of the change, and beyond two cells nearly nothing moves
    near = diff[4 * (i - 1) : 4 * (i + 2), 4 * (j - 1) : 4 * (j + 2)]
    assert near.sum() > 0.6 * diff.sum(), (near.sum(), diff.sum())
    far = diff.clone()
    far[4 * (i - 2) : 4 * (i + 3), 4 * (j - 2) : 4 * (j + 3)] = 0
    assert far.sum() < 0.1 * diff.sum() and far.max() < 0.5 * diff.max()
    # the page's decode is the model's: the edited grid decoded here gives the same pixels
    grid = vq.codes[0].clone()
    grid[i, j] = new
    want = vq.decode_grids(grid[None])[0, 0] * 255
    assert (after - want.round()).abs().max() <= 1
    shot(browser, artifacts, "vq-vqvae-edited")
    # paint one code over several cells: drag across row 5, columns 1 to 3, then choose it
    y = box["y"] + 5.5 * cell
    browser.mouse("mousePressed", box["x"] + 1.5 * cell, y, buttons=1)
    for col in (2.5, 3.5):
        browser.mouse("mouseMoved", box["x"] + col * cell, y, buttons=1)
    browser.mouse("mouseReleased", box["x"] + 3.5 * cell, y)
    state = browser.evaluate(
        "(() => { const c = document.getElementById('vq-code'); c.value = 7;"
        "c.dispatchEvent(new Event('change'));"
        "return window.aegenExplore.idle().then(() => window.aegenExplore.state); })()"
    )
    assert state["selected"] == [36, 37, 38]
    painted = grid.flatten().tolist()
    painted[36:39] = [7, 7, 7]
    assert state["codes"] == painted
    want = vq.decode_grids(torch.tensor(painted).view(1, 7, 7))[0, 0] * 255
    assert (pixels_of(browser, "vq-decoded") - want.round()).abs().max() <= 1
    assert browser.errors == []


def test_stepping_the_prior_49_times_in_the_page_equals_prior_sample(
    browser, server, pages, artifacts
):
    prior = page_of(pages, "prior").prior
    open_page(browser, server.url, "prior")
    codes = browser.evaluate("""(async () => {
        const set = (id, v) => { const e = document.getElementById(id); e.value = v;
          e.dispatchEvent(new Event('change')); };
        set('seed', 7); set('label', '3'); set('top-k', 0);
        document.getElementById('restart').click();
        await window.aegenExplore.idle();
        return window.aegenExplore.state.codes; })()""")
    assert codes == [-1] * 49
    steps = """(async () => {
        for (let i = 0; i < %d; i++) {
          document.getElementById('step').click(); await window.aegenExplore.idle(); }
        return window.aegenExplore.state.codes; })()"""
    half = browser.evaluate(steps % 25)
    assert half[25:] == [-1] * 24 and min(half[:25]) >= 0
    assert browser.evaluate("document.querySelectorAll('#candidates .candidate').length") > 0
    shot(browser, artifacts, "prior-prior-sampling")
    codes = browser.evaluate(steps % 24)
    want = prior.sample(1, torch.Generator().manual_seed(7), label=3)
    assert codes == want.flatten().tolist() and codes[:25] == half[:25]
    # play runs on by itself, pause stops it
    moving = browser.evaluate("""(async () => {
        const wait = (ms) => new Promise((r) => setTimeout(r, ms));
        document.getElementById('restart').click(); await window.aegenExplore.idle();
        document.getElementById('play').click(); await wait(700);
        document.getElementById('play').click(); await window.aegenExplore.idle();
        const t = window.aegenExplore.state.t; await wait(400);
        return [t, window.aegenExplore.state.t]; })()""")
    assert 0 < moving[0] < 49 and moving[1] == moving[0]
    browser.evaluate("""(async () => {
        for (let i = 0; i < 49; i++) {
          document.getElementById('step').click(); await window.aegenExplore.idle(); } })()""")
    # click cell 10, resample from there: the first 10 codes stay, the rest is drawn anew
    box = rect(browser, "prior-grid")
    cell = box["width"] / 7
    browser.click(box["x"] + (3 + 0.5) * cell, box["y"] + (1 + 0.5) * cell)
    again = browser.evaluate("""(async () => {
        document.getElementById('resample').click(); await window.aegenExplore.idle();
        return window.aegenExplore.state; })()""")
    assert again["t"] == 10 and again["codes"][:10] == codes[:10]
    assert again["codes"][10:] == [-1] * 39 and again["seed"] == 8
    assert browser.errors == []


def test_the_static_export_works_from_file_with_no_server(browser, pages, tmp_path, artifacts):
    out = tmp_path / "site"
    index = export_static(pages, out)
    assert (out / "assets" / "data.js").is_file() and (out / "sheets").is_dir()
    assert len(list((out / "sheets").glob("*.png"))) == 3  # two latent grids, one codebook
    browser.clear()
    for page in pages:
        open_page(browser, index.as_uri(), page.name)
    assert outside(browser.requests, out.as_uri()) == []  # no http at all: no server needed
    # the latent map: hovering shows the precomputed decodes
    open_page(browser, index.as_uri(), "vae-mlp")
    box = rect(browser, "map")
    seen = []
    for fx, fy in ((0.1, 0.1), (0.9, 0.9)):
        browser.mouse("mouseMoved", box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        seen.append(pixels_of(browser, "decoded"))
    assert (seen[0] - seen[1]).abs().max() > 10
    shot(browser, artifacts, "static-vae-mlp")
    # the recorded sampling runs step to their end
    open_page(browser, index.as_uri(), "prior")
    codes = browser.evaluate("""(async () => {
        for (let i = 0; i < 49; i++) {
          document.getElementById('step').click(); await window.aegenExplore.idle(); }
        return window.aegenExplore.state.codes; })()""")
    recording = page_of(pages, "prior").recording(0, 0)
    assert codes == recording["states"][-1]["codes"] and min(codes) >= 0
    assert browser.errors == []


# ------------------------------------------------------------------ the bench case and packaging


def test_the_latency_bench_cases_are_well_formed():
    """The shape of the cases (speed is never asserted in tests: bench/ and docs/ report it)."""
    from aegen.bench.explore import BUDGET_MS, latency_cases

    torch.set_num_threads(2)  # the cases set (and restore) the server's one thread themselves
    cases = latency_cases(repeats=3)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert [c.name for c in cases] == [
        "explore/decode_ae-conv",
        "explore/decode_vae-mlp",
        "explore/decode_vqvae",
        "explore/prior_step_transformer",
    ]
    for c in cases:
        assert c.unit == "ms" and c.value > 0 and c.extra["budget_ms"] == BUDGET_MS == 50
        assert c.extra["torch_threads"] == 1  # timed as the server serves
    assert all(c.baseline > 0 and c.ratio > 0 for c in cases[:3])


def test_the_page_is_package_data():
    """Every asset the server reads ships in the wheel: pyproject's package-data names it."""
    import fnmatch
    import tomllib

    from aegen.explore.server import assets

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["aegen.explore"]
    names = set(assets())
    assert {"index.html", "explore.js", "explore.css"} <= names
    for name in names:
        assert any(fnmatch.fnmatch(f"assets/{name}", p) for p in patterns), name
