"""The semi-supervised grid: results, report files, resuming at cell granularity, settings checks."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error

import aegen
from aegen.pipelines.semisup import (
    RECIPES,
    _same_training,
    markdown_table,
    read_results,
    summarize,
)
from aegen.runs import make_run_config

# a grid small enough for the default suite: one MLP AE, two fractions, two columns
TINY = [
    "semisup", "--data", "synthetic", "--limit", "1200", "--models", "ae-mlp",
    "--fractions", "0.1,1", "--columns", "probe,scratch", "--ae-epochs", "1",
    "--epochs", "1", "--min-steps", "4", "--head-steps", "2", "--quiet",
]  # fmt: skip


def test_grid_writes_results_and_resumes_by_cell(cli, tmp_path):
    out = tmp_path / "grid"
    r = cli(*TINY, "--seeds", "1", "--out", out)
    assert r.code == 0, r.err
    rows = read_results(out / "results.csv")
    cells = {(row["column"], row["fraction"], row["seed"]) for row in rows}
    assert cells == {(c, f, 0) for c in ("probe", "scratch") for f in (0.1, 1.0)}
    for name in ("results.md", "accuracy_vs_labels.png", "confusion_best.png", "grid.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "ae-mlp" / "model.safetensors").is_file()
    assert all(0 <= row["test_acc"] <= 1 for row in rows)
    confusions = json.loads((out / "confusion.json").read_text())
    assert len(confusions) == 4 and all(sum(map(sum, m)) == 1000 for m in confusions.values())

    # run again with one more seed: only the new seed's cells are trained
    before = (out / "results.csv").read_text()
    weights = (out / "ae-mlp" / "model.safetensors").read_bytes()
    r = cli(*TINY, "--seeds", "2", "--out", out)
    assert r.code == 0, r.err
    assert "4 of 8 cells already done" in r.err
    after = read_results(out / "results.csv")
    assert len(after) == 8
    assert (out / "results.csv").read_text().startswith(before)  # old rows kept as they were
    assert {row["seed"] for row in after} == {0, 1}
    assert (out / "ae-mlp" / "model.safetensors").read_bytes() == weights  # reused, not retrained

    # a changed budget does not mix with the cells already there
    r = cli(*[a if a != "4" else "5" for a in TINY], "--seeds", "2", "--out", out)
    assert_user_error(r, "other classifier settings")


def test_summary_and_table_have_mean_and_sample_std():
    rows = [
        {"model": "m", "column": c, "fraction": 0.5, "seed": s, "n_labeled": 10, "test_acc": a}
        for c, s, a in [
            ("probe", 0, 0.8),
            ("probe", 1, 0.9),
            ("scratch", 0, 0.7),
            ("scratch", 1, 0.7),
        ]
    ]
    stats = summarize(rows)
    mean, std, n = stats[("m", "probe", 0.5)]
    assert mean == pytest.approx(0.85) and std == pytest.approx(0.0707107, rel=1e-5) and n == 2
    table = markdown_table(rows)
    # columns: probe, scratch, then best AE-based minus scratch
    assert "| 50% (10) | 2 | 85.00 ± 7.07 | 70.00 ± 0.00 | +15.00 |" in table
    one_seed = markdown_table([r for r in rows if r["seed"] == 0])
    assert "| 50% (10) | 1 | 80.00 | 70.00 | +10.00 |" in one_seed  # no ± from one value


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--fractions", "0.1,1.2"], "(0, 1]"),
        (["--fractions", "0"], "(0, 1]"),
        (["--models", "no-such-ae"], "no-such-ae"),
        (["--columns", "probe,guess"], "guess"),
    ],
)
def test_grid_rejects_bad_arguments(cli, tmp_path, args, fragment):
    out = tmp_path / "grid"
    r = cli("semisup", "--data", "synthetic", "--out", out, *args)
    assert_user_error(r, fragment)
    assert not out.exists()


def test_an_autoencoder_from_an_older_version_is_still_recognised():
    """A run written before a setting existed matches when that setting has its default value."""
    recipe = RECIPES["ae-conv"]
    run = make_run_config(recipe.model, overrides=list(recipe.overrides), epochs=recipe.epochs)
    stored = json.loads(json.dumps({"model": run.model, **_dicts(run)}))
    assert _same_training(stored, run)
    older = json.loads(json.dumps(stored))
    del older["train"]["seed"]  # as if the key did not exist yet: its default (0) applies
    assert _same_training(older, run)
    changed = json.loads(json.dumps(stored))
    changed["train"]["lr"] = 1e-4
    assert not _same_training(changed, run)
    changed = json.loads(json.dumps(stored))
    changed["model_config"]["code_dim"] = 8
    assert not _same_training(changed, run)
    assert not _same_training({"model": "ae-conv"}, run)  # no config at all


def _dicts(run) -> dict:
    from aegen.config import to_dict

    return {"model_config": to_dict(run.model_config), "train": to_dict(run.train)}


def test_grid_runs_consistency_and_m2_cells_with_cpu_time(cli, tmp_path):
    out = tmp_path / "grid"
    args = [a if a != "probe,scratch" else "consistency,m2" for a in TINY]
    args = [a if a != "0.1,1" else "0.1" for a in args]
    r = cli(*args, "--seeds", "1", "--unlabeled-ratio", "1", "--out", out)
    assert r.code == 0, r.err
    rows = read_results(out / "results.csv")
    assert {(row["model"], row["column"]) for row in rows} == {
        ("ae-mlp", "consistency"),
        ("m2", "m2"),  # m2 uses no autoencoder: one cell per fraction and seed
    }
    assert all(row["cpu_seconds"] > 0 for row in rows)
    table = (out / "results.md").read_text()
    assert "### m2" in table and "CPU minutes per cell" in table


def test_an_older_grid_without_the_new_settings_resumes(tmp_path):
    from aegen.classify import ClassifyConfig
    from aegen.config import to_dict
    from aegen.pipelines.semisup import _check_settings

    new = {"data_fingerprint": "f", "models": {}, "classify": to_dict(ClassifyConfig())}
    old = json.loads(json.dumps(new))
    for key in ("unlabeled_ratio", "unlabeled_weight", "threshold", "alpha"):
        del old["classify"][key]
    (tmp_path / "grid.json").write_text(json.dumps(old))
    _check_settings(tmp_path / "grid.json", new)  # accepted: the defaults fill the gap
    # ... but not a default that changed: a grid stored before threshold_mode existed ran
    # its consistency cells with the fixed τ, so it resumes only with "fixed"
    del old["classify"]["threshold_mode"]
    (tmp_path / "grid.json").write_text(json.dumps(old))
    with pytest.raises(aegen.UserError, match="other classifier settings"):
        _check_settings(tmp_path / "grid.json", new)
    fixed = {**new, "classify": {**new["classify"], "threshold_mode": "fixed"}}
    _check_settings(tmp_path / "grid.json", fixed)
    old["classify"]["epochs"] = 3
    (tmp_path / "grid.json").write_text(json.dumps(old))
    with pytest.raises(aegen.UserError, match="other classifier settings"):
        _check_settings(tmp_path / "grid.json", new)
