"""``aegen primer``: every figure written, and every number it prints is what aegen.prob computes."""

import contextlib
import io
import json
import math

import pytest
import torch
from conftest import assert_user_error
from PIL import Image

from aegen.cli import main
from aegen.pipelines.primer import (
    FIGURES,
    P_CAT,
    Q_CAT,
    load_cameraman,
    run_primer,
    summary_lines,
)
from aegen.prob import (
    bits,
    conditional_gaussian,
    empirical_pmf,
    kl_categorical,
    kl_categorical_mc,
    kl_gaussian,
    kl_gaussian_mc,
    kl_vae,
    sample_gaussian,
    sample_pmf,
)

N = 20_000  # small, to keep the test fast; the numbers are checked against recomputation


@pytest.fixture(scope="module")
def primer(tmp_path_factory):
    out = tmp_path_factory.mktemp("primer")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["primer", "--out", str(out), "--samples", str(N), "--seed", "3"])
    assert code == 0
    numbers = json.loads((out / "primer.json").read_text())
    return out, stdout.getvalue(), numbers, (out / "primer.md").read_text()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_every_figure_is_written_and_shown(primer):
    out, printed, numbers, md = primer
    for name in FIGURES:
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width >= 600 and img.height >= 300, name
        assert f"]({name})" in md, name
    assert numbers["samples"] == N and numbers["seed"] == 3
    assert "primer.md" in printed and not list(out.glob(".*.tmp"))


def test_printed_lines_are_the_json_numbers(primer):
    _, printed, numbers, _ = primer
    for line in summary_lines(numbers):
        assert line in printed, line


def test_kl_numbers_match_the_closed_forms_and_the_seeded_estimators(primer):
    _, printed, numbers, md = primer
    cat, gau = numbers["kl"]["categorical"], numbers["kl"]["gaussian"]
    closed = {
        "cat P||Q": kl_categorical(P_CAT, Q_CAT).item(),
        "cat Q||P": kl_categorical(Q_CAT, P_CAT).item(),
        "gau P||Q": kl_gaussian(0.0, 1.0, 1.0, 2.0).item(),
        "gau Q||P": kl_gaussian(1.0, 2.0, 0.0, 1.0).item(),
    }
    assert (
        cat["P||Q"]["closed"] == closed["cat P||Q"] and gau["Q||P"]["closed"] == closed["gau Q||P"]
    )
    for value in closed.values():
        assert f"{value:.4f}" in printed and f"{value:.4f}" in md
        assert f"{bits(value):.4f}" in md
    assert "0.0253" in md and "0.4431" in md  # the lecture's numbers
    # the Monte Carlo numbers are the estimators' own output for the recorded seed
    g = gen(numbers["kl"]["seed"])
    mc = [
        kl_categorical_mc(P_CAT, Q_CAT, N, g),
        kl_categorical_mc(Q_CAT, P_CAT, N, g),
        kl_gaussian_mc(0.0, 1.0, 1.0, 2.0, N, g),
        kl_gaussian_mc(1.0, 2.0, 0.0, 1.0, N, g),
    ]
    got = [cat["P||Q"], cat["Q||P"], gau["P||Q"], gau["Q||P"]]
    for est, row in zip(mc, got, strict=True):
        assert row["mc"] == est.value.item() and row["mc_stderr"] == est.stderr.item()
        assert abs(row["mc"] - row["closed"]) < 5 * row["mc_stderr"]
    for row in numbers["kl_vae"]["points"]:
        mu = torch.tensor([row["mu"]], dtype=torch.float64)
        lv = torch.tensor([2 * math.log(row["sigma"])], dtype=torch.float64)
        assert math.isclose(row["closed"], kl_vae(mu, lv).item(), abs_tol=1e-15)
        assert abs(row["mc"] - row["closed"]) <= 5 * row["mc_stderr"] + 1e-12


def test_conditional_numbers_match_the_formula(primer):
    _, printed, numbers, md = primer
    for name in ("diagonal", "correlated"):
        case = numbers["gaussian_2d"][name]
        m, v = conditional_gaussian(case["mean"], case["cov"], case["x"])
        assert case["cond_mean"] == m.item() and case["cond_var"] == v.item()
        assert f"mean {m.item():.4f}, variance {v.item():.4f}" in printed
        assert case["slice_vs_conditional_max_error"] < 1e-12
        rj = case["rejection"]
        assert rj["kept"] > 100
        assert abs(rj["mean"] - m.item()) < 5 * math.sqrt(v.item() / rj["kept"])
    assert numbers["gaussian_2d"]["diagonal"]["cond_mean"] == 2.0  # μ = (1, 2), Σ = diag(3, 2)
    assert numbers["gaussian_2d"]["diagonal"]["cond_var"] == 2.0


def test_sampling_numbers_are_what_sample_pmf_and_sample_gaussian_give(primer):
    _, _, numbers, _ = primer
    pmf = empirical_pmf(load_cameraman(), 256)
    s = numbers["sampled_pmf"]
    # the figure draws u and maps it through the inverse CDF: exactly sample_pmf, written open
    est = empirical_pmf(sample_pmf(pmf, N, gen(s["seed"])), 256)
    assert s["total_variation"] == pytest.approx(0.5 * (est - pmf).abs().sum().item(), abs=1e-15)
    g1 = numbers["gaussian_1d"]
    draws = sample_gaussian(g1["mean"], g1["std"], N, gen(g1["seed"]))
    assert g1["sample_mean"] == draws.mean().item() and g1["sample_std"] == draws.std().item()
    iid = numbers["iid"]
    assert (
        iid["neighbour_correlation_original"] > 0.9 and abs(iid["neighbour_correlation_iid"]) < 0.02
    )
    assert numbers["cameraman"]["height"] == 512 and numbers["cameraman"]["levels_used"] <= 256


def test_run_primer_refuses_too_few_samples(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        run_primer(tmp_path / "p", samples=10)
    assert not (tmp_path / "p").exists()


def test_cli_errors_are_one_line(cli, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("mine")
    assert_user_error(cli("primer", "--out", f, "--samples", "1000"), "not a directory")
    assert f.read_text() == "mine"
    assert_user_error(cli("primer", "--out", tmp_path / "p", "--samples", "10"), "at least 1000")
    assert_user_error(cli("primer", "--out", tmp_path / "p", "--samples", "many"), "integer")
    assert not (tmp_path / "p").exists()
