"""CAR v1 (content-addressed archives): streaming writer and a verifying streaming reader.

A CAR is a DAG-CBOR header `{"roots": [CID...], "version": 1}` and then blocks, each framed as
varint(len(CID) + len(data)), CID, data. The reader checks every block against its CID as it goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ...errors import FormatError
from ..varint import Buffer, decode_varint, encode_varint
from . import dag_cbor
from .cid import CID
from .unixfs import Block

MAX_BLOCK = 4 << 20  # a frame longer than this is refused (no honest shard block is)


def car_header(roots: list[CID]) -> bytes:
    header = dag_cbor.encode({"roots": roots, "version": 1})
    return encode_varint(len(header)) + header


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterable[Block]) -> int:
    """Write a CAR to `out` without buffering it; returns the bytes written."""
    written = out.write(car_header(roots))
    for block in blocks:
        cid = block.cid.to_bytes()
        frame = encode_varint(len(cid) + len(block.data)) + cid
        written += out.write(frame) + out.write(block.data)
    return written


def car_bytes(roots: list[CID], blocks: Iterable[Block]) -> bytes:
    parts = [car_header(roots)]
    for block in blocks:
        cid = block.cid.to_bytes()
        parts += [encode_varint(len(cid) + len(block.data)), cid, bytes(block.data)]
    return b"".join(parts)


class CarError(FormatError):
    """A CAR stream is malformed or holds a block that does not match its CID."""


class _Stream:
    """Exact reads over a file-like object or an iterator of byte chunks."""

    def __init__(self, source: BinaryIO | Iterable[bytes]) -> None:
        self._read = getattr(source, "read", None)
        self._chunks = None if self._read else iter(source)
        self._buf = bytearray()

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            chunk = self._read(max(n - len(self._buf), 1 << 16)) if self._read else next(self._chunks, b"")  # type: ignore[arg-type]
            if not chunk:
                return False
            self._buf += chunk
        return True

    def varint(self) -> int | None:
        """The next varint, or None at a clean end of stream."""
        if not self._fill(1):
            return None
        for size in range(1, 10):
            if not self._fill(size):
                raise CarError("truncated varint")
            if not self._buf[size - 1] & 0x80:
                value, _ = decode_varint(self._buf[:size])
                del self._buf[:size]
                return value
        raise CarError("varint longer than 9 bytes")

    def take(self, n: int) -> bytes:
        if not self._fill(n):
            raise CarError(f"stream ended inside a {n}-byte frame")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def read_car(source: BinaryIO | Iterable[bytes] | Buffer) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """The roots and a lazy iterator of verified (CID, block) pairs. A block whose bytes do not hash to
    its CID raises CarError naming it, before the caller sees the block."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = [bytes(source)]
    stream = _Stream(source)
    length = stream.varint()
    if length is None or length > 1 << 16:
        raise CarError("no CAR header")
    try:
        header = dag_cbor.decode(stream.take(length))
        roots = header["roots"]
        if header.get("version") != 1 or not all(isinstance(r, CID) for r in roots):
            raise FormatError("not a CAR v1 header")
    except (ValueError, KeyError, TypeError) as exc:
        raise CarError(f"bad CAR header: {exc}") from None

    def blocks() -> Iterator[tuple[CID, bytes]]:
        while (size := stream.varint()) is not None:
            if size > MAX_BLOCK + 128:
                raise CarError(f"a {size}-byte frame is larger than any block should be")
            frame = stream.take(size)
            try:
                cid, start = CID.read(frame, 0)
            except ValueError as exc:
                raise CarError(f"bad CID in CAR frame: {exc}") from None
            data = frame[start:]
            if not cid.verify(data):
                raise CarError(f"block {cid} does not match its CID")
            yield cid, data

    return roots, blocks()
