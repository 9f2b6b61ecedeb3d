"""Hex text of many logs to Arrow columns at once: the strings become one (rows, width) byte matrix, and each ABI
word a slice of it, turned into a string, integer or decimal column with NumPy (no Python call per value).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NIBBLE = np.full(256, 16, np.uint8)  # ASCII code -> hex digit value; 16 marks a character that is not one
for _digit, _char in enumerate(b"0123456789abcdef"):
    _NIBBLE[_char] = _digit
_DECIMAL_HIGH, _DECIMAL_LOW = divmod(10**38, 1 << 64)  # decimal(38, 0) holds values below 10**38


def hex_matrix(texts: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray | None:
    """A string column whose values are all `width` ASCII characters long as an (n, width) matrix of their
    lowercase codes (a view of the column's bytes); None when any value has another length or is not ASCII."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not len(texts):
        return np.empty((0, width), np.uint8)
    if texts.null_count:
        return None
    matrix = _bytes(texts, width)
    if matrix is None or matrix.max() >= 128:
        return None
    return _bytes(pc.ascii_lower(texts), width)


def _bytes(texts: pa.Array, width: int) -> np.ndarray | None:
    _, offsets, data = texts.buffers()
    ends = np.frombuffer(offsets, np.int32)[texts.offset:texts.offset + len(texts) + 1]
    if (np.diff(ends) != width).any():
        return None
    return np.frombuffer(data, np.uint8)[ends[0]:ends[-1]].reshape(len(texts), width)


def hex_ints(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """0x-hex quantities (block numbers, log indexes) as int64; each distinct text is parsed once. Raises
    ValueError for a text that is not one or a value past int64."""
    encoded = texts.dictionary_encode()
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    values = [int(text, 16) for text in encoded.dictionary.to_pylist()]
    if values and (max(values) >= 1 << 63 or min(values) < 0):
        raise ValueError("a quantity does not fit int64")
    return np.array(values, np.int64)[encoded.indices.to_numpy(zero_copy_only=False)]


def quantity(text: Any) -> int | None:
    """One 0x-hex quantity as an int; None when it is not one."""
    try:
        return int(text, 16)
    except (TypeError, ValueError):
        return None


def string_column(matrix: np.ndarray, start: int, end: int, prefix: bytes = b"") -> pa.Array:
    """Columns start:end of every row, after `prefix`, as a string array."""
    part = matrix[:, start:end]
    if prefix:
        prefixed = np.empty((len(matrix), len(prefix) + end - start), np.uint8)
        prefixed[:, :len(prefix)] = np.frombuffer(prefix, np.uint8)
        prefixed[:, len(prefix):] = part
        part = prefixed
    width = part.shape[1]
    offsets = np.arange(len(matrix) + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.string(), len(matrix),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(part))])


def _digits(matrix: np.ndarray, start: int, end: int) -> np.ndarray:
    digits = _NIBBLE[matrix[:, start:end]]
    if (digits == 16).any():
        raise ValueError("an ABI word is not hex")
    return digits


def _uint64(digits: np.ndarray) -> np.ndarray:
    """Rows of 16 hex digit values as unsigned 64-bit integers (pairs of digits are bytes, big-endian)."""
    octets = np.ascontiguousarray((digits[:, 0::2] << 4) | digits[:, 1::2])
    return octets.view(">u8").ravel().astype(np.uint64)


def _zeros(matrix: np.ndarray, start: int, end: int) -> bool:
    return not (matrix[:, start:end] != ord("0")).any()


def int64_column(matrix: np.ndarray, at: int) -> pa.Array | None:
    """The 64-hex-digit word at `at` of every row as int64; None when a value needs more than 63 bits."""
    if not _zeros(matrix, at, at + 48):
        return None
    value = _uint64(_digits(matrix, at + 48, at + 64))
    if (value >> np.uint64(63)).any():
        return None
    return pa.array(value.astype(np.int64), pa.int64())


def decimal_column(matrix: np.ndarray, at: int) -> pa.Array | None:
    """The word at `at` of every row as decimal(38, 0); None when a value is 10**38 or more."""
    if not _zeros(matrix, at, at + 32):
        return None
    digits = _digits(matrix, at + 32, at + 64)
    high, low = _uint64(digits[:, :16]), _uint64(digits[:, 16:])
    if ((high > _DECIMAL_HIGH) | ((high == _DECIMAL_HIGH) & (low >= _DECIMAL_LOW))).any():
        return None
    halves = np.empty((len(matrix), 2), "<u8")
    halves[:, 0], halves[:, 1] = low, high
    return pa.Array.from_buffers(pa.decimal128(38, 0), len(matrix), [None, pa.py_buffer(halves)])


def bool_column(matrix: np.ndarray, at: int) -> pa.Array | None:
    """The word at `at` of every row as bool; None unless every word is exactly 0 or 1 (the per-value decoder
    then judges the others, as the ABI requires)."""
    last = matrix[:, at + 63]
    if not _zeros(matrix, at, at + 63) or not ((last == ord("0")) | (last == ord("1"))).all():
        return None
    return pa.array(last == ord("1"), pa.bool_())
