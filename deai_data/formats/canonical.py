"""Canonical JSON: one byte encoding for one value, so that a document's hash is its identity.

The rules (a strict subset of RFC 8785 JCS): UTF-8, object keys ASCII and sorted, no whitespace,
integers only (no floats, |n| < 2**63), strings escaped minimally as Python's `json` does with
`ensure_ascii=False`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np

_INT_LIMIT = 2**63
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


class CanonicalError(ValueError):
    """A value cannot be encoded canonically, or bytes are not the canonical encoding of their value."""


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise CanonicalError(f"{path}: integer out of range")
        return
    if isinstance(value, float):
        raise CanonicalError(f"{path}: floats are not allowed in canonical documents")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise CanonicalError(f"{path}: object keys must be ASCII strings, got {key!r}")
            _check(item, f"{path}.{key}")
        return
    raise CanonicalError(f"{path}: type {type(value).__name__} is not allowed")


def encode(value: Any) -> bytes:
    """Encode `value` canonically; raise `CanonicalError` for anything outside the subset."""
    _check(value, "$")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise CanonicalError("a string holds a lone UTF-16 surrogate (not valid text)") from None


def nesting_depth(data: bytes) -> int:
    """How deep arrays and objects nest in JSON text, found without parsing (strings are skipped)."""
    brackets = _STRING.sub(b"", bytes(data)).translate(None, _NOT_BRACKETS)
    return int(np.cumsum(_STEP[np.frombuffer(brackets, dtype=np.uint8)], dtype=np.int64).max(initial=0))


def _parse_int(text: str) -> int:
    if len(text) > 20:  # |n| < 2**63 has at most 19 digits and a sign
        raise CanonicalError(f"integer out of range: {text[:24]}...")
    return int(text)


def decode(data: bytes, *, max_bytes: int = 1 << 30, max_depth: int = 64) -> Any:
    """Decode canonical bytes; raise `CanonicalError` unless `data` is exactly `encode(value)`.

    Size and nesting depth are checked before parsing, integers before conversion: hostile input costs
    bounded memory and time and raises only `CanonicalError`.
    """
    if len(data) > max_bytes:
        raise CanonicalError(f"document is {len(data)} bytes, more than the limit of {max_bytes}")
    depth = nesting_depth(data)
    if depth > max_depth:
        raise CanonicalError(f"document nests {depth} deep, more than the limit of {max_depth}")
    try:
        value = json.loads(data.decode("utf-8"), parse_float=_reject_float, parse_constant=_reject_float,
                           parse_int=_parse_int)
    except UnicodeDecodeError as exc:
        raise CanonicalError(f"not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not JSON: {exc}") from None
    if encode(value) != bytes(data):
        raise CanonicalError("not in canonical form (key order, whitespace or escaping differ)")
    return value


def _reject_float(text: str) -> Any:
    raise CanonicalError(f"floats are not allowed in canonical documents: {text}")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`: the identity of a canonical document."""
    return hashlib.sha256(data).hexdigest()
