"""The policy server's wire format: length-prefixed msgpack frames with explicit array encoding.

Frame: 4-byte big-endian body length, then a msgpack map. Arrays travel as
``{"nd": 1, "dtype": NAME, "shape": [..], "data": BYTES}`` (C order, little-endian) with the dtype from
a whitelist; decoding checks the dtype, that the shape has at most 8 non-negative ints, and that the
byte count is exactly ``prod(shape) * itemsize`` before ``numpy.frombuffer``. msgpack extension types
are refused; nothing is ever unpickled. Every decoding problem is a :class:`WireError` with a code
the server sends back.
"""
from __future__ import annotations

import struct

import msgpack
import numpy as np

__all__ = ["DTYPES", "HEADER", "MAX_MESSAGE", "WireError", "decode_array", "encode_array", "frame", "pack", "unpack"]

#: Array dtypes accepted on the wire (numpy names; little-endian).
DTYPES = ("uint8", "int32", "int64", "float16", "float32", "float64", "bool")
#: Default limit of one frame's body, bytes (a 1080p RGB frame is 6.2 MB).
MAX_MESSAGE = 16 * 2**20
HEADER = struct.Struct("!I")
_MAX_DIMS = 8


class WireError(Exception):
    """A malformed or refused message: ``code`` is sent back as the error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def encode_array(a) -> dict:
    a = np.asarray(a)
    name = a.dtype.name
    if name not in DTYPES:
        raise WireError("bad_array", f"dtype {name} cannot be sent; use one of {', '.join(DTYPES)}")
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
    return {"nd": 1, "dtype": name, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(obj, *, name: str = "array", max_bytes: int = MAX_MESSAGE) -> np.ndarray:
    """Check and decode one encoded array (a read-only view of the message bytes is copied)."""
    if not isinstance(obj, dict) or obj.get("nd") != 1:
        raise WireError("bad_array", f"{name} must be an encoded array {{nd: 1, dtype, shape, data}}")
    dtype, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise WireError("bad_array", f"{name}: dtype {str(dtype)[:32]!r} is not one of {', '.join(DTYPES)}")
    if (not isinstance(shape, list) or len(shape) > _MAX_DIMS
            or not all(type(d) is int and 0 <= d <= max_bytes for d in shape)):
        raise WireError("bad_array", f"{name}: shape must be a list of at most {_MAX_DIMS} non-negative ints")
    if not isinstance(data, bytes):
        raise WireError("bad_array", f"{name}: data must be bytes")
    dt = np.dtype(dtype).newbyteorder("<")
    n = 1
    for d in shape:
        n *= d
        if n * dt.itemsize > max_bytes:
            raise WireError("too_large", f"{name}: shape {shape} is larger than the message limit")
    if len(data) != n * dt.itemsize:
        raise WireError("bad_array", f"{name}: {len(data)} bytes for shape {shape} {dtype} (expected {n * dt.itemsize})")
    return np.frombuffer(data, dtype=dt).reshape(shape).astype(dt.newbyteorder("="), copy=True)


def _no_ext(code, data):
    raise WireError("bad_request", f"msgpack extension type {code} is not accepted")


def pack(msg: dict) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def unpack(body: bytes, *, max_message: int = MAX_MESSAGE) -> dict:
    """A frame body -> its map (``WireError('bad_request')`` for anything else)."""
    try:
        msg = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True, ext_hook=_no_ext,
                              max_bin_len=max_message, max_str_len=1 << 16, max_array_len=1 << 16,
                              max_map_len=256, max_ext_len=1 << 10)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, UnicodeDecodeError,
            RecursionError) as e:
        raise WireError("bad_request", f"not a msgpack message ({type(e).__name__})") from None
    if not isinstance(msg, dict):
        raise WireError("bad_request", f"the message must be a map, got {type(msg).__name__}")
    return msg


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body
