import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

import aegen
from aegen.data.datasets import download_mnist, load_idx_dir, make_synthetic
from aegen.data.idx import write_idx
from aegen.errors import DataError


def _write_mnist_like(d, n_train=60, n_test=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    sfx = ".gz" if gz else ""
    d.mkdir(parents=True, exist_ok=True)
    write_idx(
        d / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    )
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(
        d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    )
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", (np.arange(n_test) % 10).astype(np.uint8))
    return d


def test_synthetic_is_deterministic_and_balanced():
    a, b = make_synthetic(500, seed=3), make_synthetic(500, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.x.dtype == torch.uint8 and a.x.shape == (500, 28, 28)
    assert a.y.bincount(minlength=10).tolist() == [50] * 10
    c = make_synthetic(500, seed=4)
    assert not torch.equal(a.x, c.x)


def test_splits_are_disjoint_and_fixed(synthetic):
    again = aegen.load_data("synthetic", val_size=500)
    assert torch.equal(synthetic.val.x, again.val.x)
    assert len(synthetic.train) + len(synthetic.val) == 6000
    # the validation images are not among the training images
    train_rows = {bytes(r) for r in synthetic.train.x.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in synthetic.val.x.flatten(1).numpy())
    assert synthetic.fingerprint() == again.fingerprint()


def test_limit_and_val_cap():
    d = aegen.load_data("synthetic", val_size=5000, limit=600)
    assert len(d.train) + len(d.val) == 600 and len(d.val) == 100 and len(d.test) == 600


def test_idx_directory(tmp_path):
    d = _write_mnist_like(tmp_path / "m", gz=False)
    data = aegen.load_data(str(d), val_size=10)
    assert len(data.train) == 50 and len(data.val) == 10 and len(data.test) == 20
    assert data.num_classes == 10


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink(), "t10k-labels-idx1-ubyte"),
        (
            lambda d: write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8)),
            "counts must agree",
        ),
        (
            lambda d: write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((60, 32, 32), np.uint8)),
            "28×28",
        ),
        (
            lambda d: write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((60, 784), np.uint8)),
            "3 dimensions",
        ),
        (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(b""), "not an IDX file"),
        (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage"), "corrupt"),
    ],
)
def test_bad_directories(tmp_path, mutate, fragment):
    d = _write_mnist_like(tmp_path / "m")
    mutate(d)
    with pytest.raises(DataError, match=fragment):
        load_idx_dir(d)


def test_unknown_name_and_missing_dir(tmp_path):
    with pytest.raises(DataError, match="unknown data set"):
        aegen.load_data("cifar")
    with pytest.raises(DataError, match="no such data directory"):
        aegen.load_data(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="not found"):
        aegen.load_data("fashion-mnist", data_dir=str(tmp_path / "nowhere"))


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server serving MNIST-like files, standing in for the official mirrors."""
    served = _write_mnist_like(tmp_path / "served")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    yield f"http://127.0.0.1:{server.server_address[1]}/", sums
    server.shutdown()


def test_download_checks_sha256_and_caches(tmp_path, mirror):
    url, sums = mirror
    target = download_mnist(
        tmp_path / "cache", mirrors=["http://127.0.0.1:9/", url], checksums=sums
    )
    data = aegen.load_data("mnist", data_dir=target, val_size=10)
    assert len(data.test) == 20
    # present and correct: not fetched again even when no mirror answers
    download_mnist(tmp_path / "cache", mirrors=["http://127.0.0.1:9/"], checksums=sums)


def test_download_refuses_a_wrong_checksum(tmp_path, mirror):
    url, sums = mirror
    bad = {k: "0" * 64 for k in sums}
    with pytest.raises(DataError, match="does not match"):
        download_mnist(tmp_path / "cache", mirrors=[url], checksums=bad)
    assert not any((tmp_path / "cache").iterdir())  # nothing half-downloaded left behind
