"""compare-generators: families at equal CPU time, scored by one feature network."""

import json

import pytest

from aegen.eval.evaluate import EvalOptions
from aegen.pipelines import generators as gen
from aegen.pipelines.generators import THRESHOLDS, caption, compare_generators

REF = {"recall": 0.8, "precision": 0.8, "entropy_nats": 2.3, "sharpness": 1.0}
GOOD = {
    "recall": 0.7,
    "precision": 0.75,
    "entropy_nats": 2.25,
    "sharpness": 0.95,
    "rare_classes": [],
}


def test_a_family_like_the_data_is_captioned_sharp_and_covering():
    text = caption(GOOD, REF)
    assert text.startswith("covers the classes") and "sharp: sharpness 0.95" in text
    assert "collapse" not in text and "blur" not in text and "speckle" not in text


def test_missing_classes_are_mode_collapse_and_low_recall_alone_is_narrow():
    names = [f"c{i}" for i in range(10)]
    two_rare = {**GOOD, "rare_classes": [3, 7]}
    assert caption(two_rare, REF, names).startswith("mode collapse: class entropy 2.25")
    assert "rare or missing: c3, c7" in caption(two_rare, REF, names)
    one_rare = {**GOOD, "rare_classes": [3]}
    assert caption(one_rare, REF, names).startswith("covers the classes")
    assert "rare or missing: c3" in caption(one_rare, REF, names)
    flat = {**GOOD, "entropy_nats": 0.79 * 2.3}
    assert caption(flat, REF).startswith("mode collapse")
    assert "mode collapse" not in caption({**flat, "entropy_nats": 0.81 * 2.3}, REF)
    # recall below half the data's with every class present: narrow, not collapsed
    low_recall = {**GOOD, "recall": 0.39}  # below 0.5 × 0.8
    assert caption(low_recall, REF).startswith("narrow: the classes are there")
    assert "collapse" not in caption(low_recall, REF)
    assert caption({**GOOD, "recall": 0.41}, REF).startswith("covers the classes")
    assert caption({**low_recall, "rare_classes": [1, 2]}, REF).startswith("mode collapse")


@pytest.mark.parametrize(
    "ratio, word",
    [(0.3, "blur"), (0.7, "soft"), (1.0, "sharp"), (1.3, "grainy"), (2.0, "speckle")],
)
def test_sharpness_words_follow_the_ratio_to_the_data(ratio, word):
    text = caption({**GOOD, "sharpness": ratio}, REF)
    assert f"; {word}: " in text
    # the thresholds are relative to the data's own score: the same samples against data
    # twice as sharp read one band softer or more
    if word in ("sharp", "grainy", "speckle"):
        assert f"; {word}: " not in caption({**GOOD, "sharpness": ratio}, {**REF, "sharpness": 2.0})


def test_low_precision_is_off_the_data():
    assert "off the data" in caption({**GOOD, "precision": 0.39}, REF)
    assert "off the data" not in caption({**GOOD, "precision": 0.41}, REF)
    assert THRESHOLDS["off_precision"] == 0.5


def test_unknown_and_missing_families_are_one_line_errors(cli, tmp_path, monkeypatch):
    r = cli("compare-generators", "--minutes", "1", "--out", tmp_path / "a", "--data", "synthetic",
            "--families", "vae,nope")  # fmt: skip
    assert r.code == 2 and r.err_lines == [
        "error: unknown generator family 'nope'; choose from vae, vqvae, gan, flow, diffusion"
    ]
    monkeypatch.setitem(gen.RECIPES, "gan", gen.Recipe("no-such-gan", (), False))
    r = cli("compare-generators", "--minutes", "1", "--out", tmp_path / "b", "--data", "synthetic",
            "--families", "gan,vae")  # fmt: skip
    assert r.code == 2 and len(r.err_lines) == 1
    assert r.err_lines[0].startswith("error: generator family not installed: gan")
    r = cli("compare-generators", "--minutes", "0", "--out", tmp_path / "c", "--data", "synthetic")
    assert r.code == 2 and r.err_lines[0].startswith("error:")
    assert not any((tmp_path / d).exists() for d in "abc")


# few scored samples, a 4-sample IWAE bound on 20 images: the plumbing, not the numbers
OPTIONS = EvalOptions(n=40, seed=0, kid_subsets=5, kid_subset_size=20, nll_images=20, iwae_k=4)
SMALL = dict(data="synthetic", limit=300, eval_n=40, features_epochs=1, options=OPTIONS,
             progress=False, log=lambda _m: None)  # fmt: skip


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "cmp"
    kw = dict(families=["vae", "vqvae"], **SMALL)
    first = compare_generators(out, 0.01, **kw)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    second = compare_generators(out, 0.01, **kw)
    return out, first, second, stamps


def test_the_comparison_writes_table_json_html_and_grids(compared):
    out, first, _, _ = compared
    assert first["actions"] == {"vae": "trained", "vqvae": "trained"}
    saved = json.loads((out / "generators.json").read_text())
    assert list(saved["families"]) == ["vae", "vqvae"]
    vae, vq = saved["families"]["vae"], saved["families"]["vqvae"]
    assert vae["bits_per_dim"] > 0 and vae.get("bits_per_code") is None  # the IWAE bound
    assert vq["bits_per_code"] > 0 and vq.get("bits_per_dim") is None  # another unit
    for row in (vae, vq):
        assert row["fid"] >= 0 and 0 <= row["recall"] <= 1 and row["parameters"] > 0
        assert row["train_seconds"] > 0 and row["sample_images_per_s"] > 0
        assert sum(row["class_histogram"]) == pytest.approx(1.0)
        assert row["caption"] == caption(row, saved["reference"], saved["classes"])
    # the budget held: each stopped by time long before its 10 000-epoch horizon
    assert vae["train_steps"] < 10_000
    md = (out / "generators.md").read_text()
    assert md.count("\n| vae | vae-mlp |") == 1 and "| training images | (reference) |" in md
    page = (out / "generators.html").read_text()
    assert page.count("<figure>") == 2 and 'data-family="vqvae"' in page
    assert vae["caption"].split(";")[0] in page
    assert (out / "vae" / "samples.png").is_file() and (out / "vqvae" / "samples.png").is_file()
    # the prior trains as its recipe was measured: 2 blocks, without the pipeline's weight decay
    prior = json.loads((out / "vqvae" / "prior" / "config.json").read_text())
    assert prior["model_config"]["n_layers"] == 2 and prior["train"]["weight_decay"] == 0


def test_a_rerun_skips_finished_families(compared):
    out, first, second, stamps = compared
    assert second["actions"] == {"vae": "skipped", "vqvae": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == stamps
    assert second["families"]["vae"]["fid"] == first["families"]["vae"]["fid"]


def test_an_interrupted_family_resumes(compared, tmp_path):
    """A family whose checkpoint says unfinished is resumed, not started again."""
    import shutil

    import torch

    from aegen.checkpoint import TRAIN_STATE

    out = tmp_path / "cmp"
    shutil.copytree(compared[0], out)
    state_path = out / "vae" / "run" / TRAIN_STATE
    state = torch.load(state_path, weights_only=True)
    state.update(finished=False, out_of_time=False, elapsed_s=0.0)
    torch.save(state, state_path)
    again = compare_generators(out, 0.01, families=["vae"], **SMALL)
    assert again["actions"] == {"vae": "resumed"}
    assert again["families"]["vae"]["train_steps"] > compared[1]["families"]["vae"]["train_steps"]
