import json

from PIL import Image


def test_demo_writes_everything(cli, tmp_path):
    out = tmp_path / "demo"
    r = cli(
        "demo", "--data", "synthetic", "--limit", "1200", "--epochs", "1", "--out", out, "--quiet"
    )
    assert r.code == 0, r.err
    for name in (
        "samples/reconstructions.png",
        "samples/latent_scatter.png",
        "samples/loss.png",
        "metrics.csv",
        "model.safetensors",
        "config.json",
    ):
        assert (out / name).is_file(), name
    assert Image.open(out / "samples/latent_scatter.png").size[0] > 200
    assert "test MSE" in r.out and "PSNR" in r.out
    mse = json.loads((out / "metrics.json").read_text())["reconstruction"]["mse"]
    assert f"{mse:.5f}" in r.out


def test_demo_refuses_a_used_directory(cli, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    r = cli("demo", "--data", "synthetic", "--out", tmp_path / "x", "--quiet")
    assert r.code == 2 and (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_plane_demo(cli, tmp_path):
    r = cli("demo", "plane", "--epochs", "60", "--out", tmp_path / "p", "--quiet")
    assert r.code == 0, r.err
    result = json.loads((tmp_path / "p" / "plane.json").read_text())
    assert result["ratio"] < 1.1 and (tmp_path / "p" / "plane.png").is_file()
    assert "PCA optimum" in r.out
