import gzip
import struct

import numpy as np
import pytest

from aegen.data.idx import parse_idx, read_idx, write_idx
from aegen.errors import DataError


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
        np.arange(7, dtype=np.uint8),
        np.array([[1, -2], [3, -4]], dtype=np.int32),
        np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        np.array([-1.5, 2.25], dtype=np.float64),
        np.array([-7, 7], dtype=np.int16),
    ],
)
def test_round_trip(tmp_path, array, suffix):
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def _header(code=0x08, dims=(2, 3)):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not an IDX file"),
        (b"\x00\x00", "not an IDX file"),
        (b"\x08\x03\x00\x03" + b"\x00" * 20, "wrong magic"),
        (_header(code=0x42) + b"\x00" * 6, "unknown IDX type"),
        (bytes([0, 0, 8, 0]), "zero dimensions"),
        (bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02", "truncated IDX header"),
        (_header() + b"\x00" * 5, "truncated or corrupt"),
        (_header() + b"\x00" * 7, "truncated or corrupt"),
        (_header(dims=(60000, 60000, 28)) + b"\x00", "too large"),
    ],
)
def test_corrupt_bytes(data, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_idx(data)


def test_corrupt_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "missing")
    (tmp_path / "bad.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="corrupt"):
        read_idx(tmp_path / "bad.gz")
    # a gzip stream cut short
    full = gzip.compress(_header(dims=(1000,)) + bytes(1000))
    (tmp_path / "cut.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError):
        read_idx(tmp_path / "cut.gz")


class _CountingReader:
    """A file object that counts the bytes handed out (to see what a reader consumed)."""

    def __init__(self, f):
        self.f, self.read_bytes = f, 0

    def read(self, n=-1):
        out = self.f.read(n)
        self.read_bytes += len(out)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _counting_gzip(monkeypatch) -> list[_CountingReader]:
    import aegen.data.idx as idx

    opened, real_open = [], gzip.open

    def gzip_open(path, mode):
        opened.append(_CountingReader(real_open(path, mode)))
        return opened[-1]

    monkeypatch.setattr(idx.gzip, "open", gzip_open)
    return opened


def test_gzip_reads_no_more_than_the_header_promises(tmp_path, monkeypatch):
    """A small header followed by a flood of bytes is refused without reading the flood."""
    flood = gzip.compress(_header(dims=(4,)) + bytes(4) + bytes(50_000_000))
    (tmp_path / "flood.gz").write_bytes(flood)
    opened = _counting_gzip(monkeypatch)
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "flood.gz")
    # the 8-byte header, the 4 bytes it promises, and one more to see the excess
    assert [f.read_bytes for f in opened] == [8 + 4 + 1]


def test_a_huge_declared_size_is_refused_after_the_header(tmp_path, monkeypatch):
    (tmp_path / "huge.gz").write_bytes(gzip.compress(_header(dims=(60000, 4096, 4096)) + bytes(99)))
    opened = _counting_gzip(monkeypatch)
    with pytest.raises(DataError, match="too large"):
        read_idx(tmp_path / "huge.gz")
    assert [f.read_bytes for f in opened] == [4 + 3 * 4]


def test_a_zero_dimension_does_not_excuse_a_huge_one():
    # found by the fuzzer: the payload is empty, but numpy cannot even make that shape
    import struct

    from aegen.data.idx import parse_idx
    from aegen.errors import DataError

    data = bytes([0, 0, 8, 4]) + struct.pack(">4I", 0, 15754, 45932, 3186570551)
    with pytest.raises(DataError, match="too large"):
        parse_idx(data, "x")
