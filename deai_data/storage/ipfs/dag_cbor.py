"""A small DAG-CBOR codec (maps with string keys in canonical order, lists, ints, bytes, strings,
booleans, null, CID links as tag 42): enough for CAR headers and structured IPLD objects."""

from __future__ import annotations

from typing import Any

from ...errors import FormatError
from .cid import CID

Value = Any


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise FormatError("integer too large for DAG-CBOR")


def encode(value: Value) -> bytes:
    if value is None:
        return b"\xf6"
    if value is True or value is False:
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, CID):
        link = b"\x00" + value.to_bytes()
        return b"\xd8\x2a" + _head(2, len(link)) + link
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise FormatError("DAG-CBOR map keys must be strings")
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return _head(5, len(keys)) + b"".join(encode(k) + encode(value[k]) for k in keys)
    raise TypeError(f"cannot encode {type(value).__name__} as DAG-CBOR")


MAX_DEPTH = 64  # nesting a decoder follows (no honest deai-data block nests more than a few levels)


def decode(data: bytes) -> Value:
    value, end = _decode(memoryview(data), 0, 0)
    if end != len(data):
        raise FormatError("bytes after the DAG-CBOR value")
    return value


def _decode(data: memoryview, pos: int, depth: int) -> tuple[Value, int]:
    if pos >= len(data):
        raise FormatError("truncated DAG-CBOR")
    if depth > MAX_DEPTH:
        raise FormatError(f"DAG-CBOR nests deeper than {MAX_DEPTH}")
    first = data[pos]
    major, info = first >> 5, first & 31
    pos += 1
    if major == 7:
        simple = {20: False, 21: True, 22: None}
        if info not in simple:
            raise FormatError("floats and other simple values are not used here")
        return simple[info], pos
    if info < 24:
        arg = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise FormatError("truncated DAG-CBOR")
        arg = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    else:
        raise FormatError("indefinite lengths are not allowed in DAG-CBOR")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise FormatError("truncated DAG-CBOR string")
        raw = bytes(data[pos:pos + arg])
        if major == 2:
            return raw, pos + arg
        try:
            return raw.decode(), pos + arg
        except UnicodeDecodeError:
            raise FormatError("a DAG-CBOR text string is not UTF-8") from None
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        out = {}
        for _ in range(arg):
            key, pos = _decode(data, pos, depth + 1)
            if not isinstance(key, str):
                raise FormatError("DAG-CBOR map keys must be strings")
            out[key], pos = _decode(data, pos, depth + 1)
        return out, pos
    if major == 6:
        if arg != 42:
            raise FormatError(f"tag {arg} is not allowed in DAG-CBOR")
        link, pos = _decode(data, pos, depth + 1)
        if not isinstance(link, bytes) or link[:1] != b"\x00":
            raise FormatError("a CID link must be bytes starting with 0x00")
        return CID.from_bytes(link[1:]), pos
    raise FormatError(f"unexpected CBOR major type {major}")
