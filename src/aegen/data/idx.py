"""Reading and writing IDX files (the MNIST format), raw or gzip-compressed.

The header is checked before anything is allocated: two zero bytes, a type code,
the number of dimensions, then one big-endian uint32 per dimension. The payload
size the header promises must equal what the file holds, so a truncated or
padded file, a wrong magic number or an absurd dimension is a :class:`DataError`,
never a huge allocation or a silent misread.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["IDX_DTYPES", "parse_idx", "read_idx", "write_idx"]

# type code -> numpy dtype (big-endian as stored)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# No real IDX file we read is larger than this once decompressed (60k MNIST images are 47 MB).
MAX_PAYLOAD_BYTES = 1 << 31


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file into a numpy array (native byte order)."""
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes)")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise DataError(f"{name}: wrong magic number {data[:4].hex()} (IDX files start with 0000)")
    if code not in IDX_DTYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    count, span = 1, 1
    for d in dims:
        count *= d
        span *= max(d, 1)  # a zero dim empties the array but numpy still refuses a huge shape
    expected = count * dtype.itemsize
    if max(expected, span * dtype.itemsize) > MAX_PAYLOAD_BYTES:
        raise DataError(f"{name}: IDX header declares {dims}, too large to be real")
    actual = len(data) - header
    if actual != expected:
        raise DataError(
            f"{name}: IDX header declares shape {tuple(dims)} ({expected} bytes) "
            f"but the file holds {actual} bytes; the file is truncated or corrupt"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _read_bounded(f, name: str) -> bytes:
    """Read an IDX stream, never more bytes than its header promises (plus one, to see excess)."""
    head = f.read(4)
    if len(head) == 4 and head[3] > 0:
        head += f.read(4 * head[3])
    if len(head) >= 4 and head[2] in IDX_DTYPES and len(head) == 4 + 4 * head[3] and head[3] > 0:
        dims = struct.unpack(f">{head[3]}I", head[4:])
        count = 1
        for d in dims:
            count *= d
        expected = count * IDX_DTYPES[head[2]].itemsize
        if expected > MAX_PAYLOAD_BYTES:
            raise DataError(f"{name}: IDX header declares {dims}, too large to be real")
        return head + f.read(expected + 1)
    return head  # parse_idx names what is wrong with it


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in ``.gz``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as f:
            data = _read_bounded(f, str(p))
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{p}: cannot read ({e}); the file is corrupt") from None
    return parse_idx(data, str(p))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip when the name ends in ``.gz``)."""
    arr = np.asarray(array)
    codes = [
        c
        for c, dt in IDX_DTYPES.items()
        if (dt.kind, dt.itemsize) == (arr.dtype.kind, arr.dtype.itemsize)
    ]
    if not codes:
        raise ValueError(f"no IDX type for dtype {arr.dtype}")
    code = codes[0]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(IDX_DTYPES[code], copy=False).tobytes()
    p = Path(path)
    if p.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    from ..files import atomic_write_bytes

    atomic_write_bytes(p, payload)
