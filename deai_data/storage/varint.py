"""Unsigned LEB128 varints, as multiformats (CIDs, CAR frames) and Avro (ANS-104 tags) write integers."""

from __future__ import annotations

from ..errors import FormatError

Buffer = bytes | bytearray | memoryview


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise FormatError("varints are unsigned")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: Buffer, pos: int = 0, *, max_bytes: int = 9) -> tuple[int, int]:
    """(value, next position); rejects truncated, over-long and non-minimal varints."""
    value = shift = 0
    start = pos
    while True:
        if pos >= len(data):
            raise FormatError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and pos - start > 1:
                raise FormatError("varint is not minimally encoded")
            return value, pos
        shift += 7
        if pos - start >= max_bytes:
            raise FormatError(f"varint longer than {max_bytes} bytes")
