"""aegen explore on an M2 run: "same style, every class", from Python, over HTTP and in the browser.

One tiny M2 is trained for the module the way a user makes one — ``aegen classify RUN
--mode m2 --out DIR``, where RUN (a briefly trained ``ae-mlp`` on synthetic shapes)
only names the data.
"""

from __future__ import annotations

import base64
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_user_error
from explorer_page import artifacts_folder, open_page, outside, screenshot
from headless import Browser

from aegen.data.loader import to_float
from aegen.explore import StylePage, export_static, make_server, open_runs, start_in_thread
from aegen.explore.pages import RequestError, pixels
from aegen.explore.styles import MAX_ROWS, RANDOM_ROWS
from aegen.runs import make_run_config, train_run

POINTS = 120


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only waits
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    from aegen.cli import main

    out = tmp_path_factory.mktemp("styles")
    run = make_run_config("ae-mlp", data="synthetic", epochs=1, limit=600, val_size=100)
    train_run(run, out / "ae", progress=False)
    # every label: no unlabeled term, so no ten decodes per image (what the page shows
    # is the same for any M2)
    argv = ["classify", str(out / "ae"), "--mode", "m2", "--labels", "1.0", "--epochs", "6"]
    assert main([*argv, "--min-steps", "60", "--out", str(out / "m2")]) == 0
    return out / "m2"


@pytest.fixture(scope="module")
def page(m2_run) -> StylePage:
    (page,) = open_runs([m2_run], points=POINTS)
    return page


def _decode(page: StylePage, z: torch.Tensor, k: int) -> str:
    y = F.one_hot(torch.tensor([k]), page.num_classes).float()
    with torch.no_grad():
        return pixels(page.model.decode(torch.cat([z[None].float(), y], 1))[0].clamp(0, 1))


def test_an_m2_run_opens_as_a_style_page_over_the_data_it_was_trained_on(page, m2_run):
    import aegen

    data = aegen.load_data("synthetic", val_size=100, limit=600)  # the ae run's data
    assert page.kind == "styles" and page.name == "m2"
    assert torch.equal(page.images, data.test.x[:POINTS])
    assert page.labels.tolist() == data.test.y[:POINTS].tolist()
    assert page.classes == list(data.classes) and page.dim == page.model.config.latent_dim
    with torch.no_grad():
        right = page.model.class_logits(to_float(page.images)).argmax(1) == page.labels
    assert page.info()["accuracy"] == pytest.approx(right.float().mean().item(), abs=1e-4)


def test_each_row_is_one_style_drawn_in_every_class(page):
    styles = torch.randn(3, page.dim, generator=torch.Generator().manual_seed(1))
    rows = page.act_rows({"styles": styles.tolist()})["rows"]
    assert len(rows) == 3 and all(len(r) == page.num_classes for r in rows)
    for r, row in enumerate(rows):
        for k in (0, 4, page.num_classes - 1):
            assert row[k] == _decode(page, styles[r], k)
    assert len(set(rows[0])) == page.num_classes  # the class changes the picture
    assert rows[0] != rows[1]  # so does the style


def test_a_test_image_brings_q_y_given_x_and_its_style_in_every_class(page):
    ans = page.act_image({"index": 7})
    with torch.no_grad():
        code = page.model.encode(to_float(page.images[7:8]))[0]
    assert ans["style"] == pytest.approx(code[: page.dim].tolist(), abs=1e-5)
    assert ans["probs"] == pytest.approx(code[page.dim :].tolist(), abs=1e-4)
    assert sum(ans["probs"]) == pytest.approx(1, abs=1e-3)
    assert ans["label"] == int(page.labels[7]) and ans["image"] == pixels(page.images[7])
    style = torch.tensor(ans["style"])
    assert ans["row"] == [_decode(page, style, k) for k in range(page.num_classes)]


def test_the_priors_styles_are_fixed_by_the_seed(page):
    a, again = page.act_random({"seed": 5}), page.act_random({"seed": 5, "n": RANDOM_ROWS})
    assert a == again and len(a["rows"]) == RANDOM_ROWS
    want = torch.randn((RANDOM_ROWS, page.dim), generator=torch.Generator().manual_seed(5))
    assert a["styles"] == want.tolist()
    assert page.act_random({"seed": 6})["rows"] != a["rows"]
    assert len(page.act_random({"seed": 0, "n": 2})["rows"]) == 2


@pytest.mark.parametrize(
    ("action", "body", "reason"),
    [
        ("rows", {}, "missing field 'styles'"),
        ("rows", {"styles": "0"}, "must be a list"),
        ("rows", {"styles": []}, f"1..{MAX_ROWS}"),
        ("rows", {"styles": [[0.0] * 16] * (MAX_ROWS + 1)}, f"1..{MAX_ROWS}"),
        ("rows", {"styles": [[0.0] * 3]}, "styles[0] must hold 16"),
        ("rows", {"styles": [[0.0] * 16, [float("nan")] * 16]}, "styles[1] must hold finite"),
        ("rows", {"styles": [[True] * 16]}, "numbers only"),
        ("random", {"seed": -1}, "seed must be in"),
        ("random", {"seed": 1, "n": 0}, "n must be in"),
        ("random", {"seed": 1.5}, "must be an integer"),
        ("image", {"index": POINTS}, f"index must be in 0..{POINTS - 1}"),
        ("nope", {}, "no action 'nope'"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(page, action, body, reason):
    assert page.dim == 16  # the bodies above are written for M2's default style size
    with pytest.raises(RequestError) as err:
        page.handle(action, body)
    assert reason in str(err.value) and err.value.status in (400, 404)


def test_an_m2_run_whose_data_cannot_be_found_is_refused(m2_run, tmp_path):
    """The run ``aegen classify`` was given names the data; with other data there the page
    would show images the model never saw: refused, saying how to name it."""
    moved = tmp_path / "m2"
    shutil.copytree(m2_run, moved)
    other = tmp_path / "other-ae"
    run = make_run_config("ae-mlp", data="synthetic", epochs=1, limit=300, val_size=100)
    train_run(run, other, progress=False)
    info = (moved / "classifier.json").read_text()
    (moved / "classifier.json").write_text(info.replace(str(m2_run.parent / "ae"), str(other)))
    with pytest.raises(Exception, match="say which with --data") as err:
        open_runs([moved], points=10)
    assert type(err.value).__name__ == "UserError"


def test_data_with_other_classes_is_refused_in_one_line(page):
    """Reached without a classifier.json to check the data against (a copied run)."""
    from aegen.errors import UserError

    with pytest.raises(UserError, match="10 classes, the data 3"):
        StylePage("m2", "M2", page.model, page.images, page.labels, ["a", "b", "c"])


def test_cli_exports_the_style_page(cli, m2_run, tmp_path):
    r = cli("explore", str(m2_run), "--static", str(tmp_path / "site"), "--points", "40")
    assert r.code == 0, r.err
    assert (tmp_path / "site" / "sheets" / "m2-styles.png").is_file()
    assert_user_error(cli("explore", str(m2_run), "--points", "0"), "--points")


# ------------------------------------------------------------------ in a real browser

STATE = "window.aegenExplore.state"


@pytest.fixture(scope="module")
def browser():
    with Browser(1100, 800, timeout=60) as b:
        yield b


@pytest.fixture(scope="module")
def server(page):
    srv = make_server([page], "127.0.0.1", 0)
    thread = start_in_thread(srv, stop_after=180)
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_the_page_draws_rows_that_follow_the_seed_the_image_and_the_sliders(
    browser, server, page, tmp_path_factory
):
    browser.clear()
    open_page(browser, server.url, "m2")
    screenshot(browser, artifacts_folder(tmp_path_factory), "styles-m2")
    first = browser.evaluate(STATE)
    assert first["seed"] == 0 and first["random"] == page.act_random({"seed": 0})["rows"]
    assert first["own"] == page.act_image({"index": 0})["row"]
    drawn = browser.evaluate(
        "Array.from(document.getElementById('style-grid').getContext('2d')"
        ".getImageData(2, 16, 28, 28).data.filter((_, i) => i % 4 === 0))"
    )
    # the top left cell is the first image's style in class 0, as the server decoded it
    assert bytes(drawn) == base64.b64decode(first["own"][0])

    browser.evaluate("document.getElementById('style-reroll').click(); window.aegenExplore.idle()")
    rerolled = browser.evaluate(STATE)
    assert rerolled["seed"] == 1 and rerolled["random"] == page.act_random({"seed": 1})["rows"]

    browser.evaluate("""(async () => { const i = document.getElementById('style-index');
        i.value = 3; i.dispatchEvent(new Event('change')); await window.aegenExplore.idle(); })()""")
    assert browser.evaluate(STATE)["own"] == page.act_image({"index": 3})["row"]

    value = browser.evaluate("""(async () => { const s = document.querySelector('[data-dim="2"]');
        s.value = 2.5; s.dispatchEvent(new Event('input')); await window.aegenExplore.idle();
        return +s.value; })()""")  # 2.5 on the slider's steps
    assert value == pytest.approx(2.5, abs=0.03)
    moved = browser.evaluate(STATE)
    style = page.act_image({"index": 3})["style"]
    style[2] = value
    assert moved["label"] == "slider style"
    assert moved["own"] == page.act_rows({"styles": [style]})["rows"][0]
    assert browser.errors == [] and outside(browser.requests, server.url) == []


def test_the_static_export_shows_the_precomputed_styles(browser, page, tmp_path):
    index = export_static([page], tmp_path / "site")
    browser.clear()
    open_page(browser, index.as_uri(), "m2")
    shown = browser.evaluate(STATE)
    assert shown["random"] == page.act_random({"seed": 0})["rows"]
    assert shown["own"] == page.act_image({"index": 0})["row"]
    browser.evaluate("""(async () => { const i = document.getElementById('style-index');
        i.value = 2; i.dispatchEvent(new Event('change')); await window.aegenExplore.idle(); })()""")
    assert browser.evaluate(STATE)["own"] == page.act_image({"index": 2})["row"]
    assert browser.errors == [] and outside(browser.requests, (tmp_path / "site").as_uri()) == []
