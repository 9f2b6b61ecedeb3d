"""ANS-104 data items and bundles: many small objects, each with its own id, in one transaction.

Only signature type 1 (Arweave, RSA-PSS 4096) is written and read. Tags are Avro-encoded as the
standard requires (an array of {name: bytes, value: bytes} records).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

from ...errors import FormatError, IntegrityError
from ..varint import decode_varint, encode_varint
from .deep_hash import deep_hash
from .merkle import Buffer, b64url
from .wallet import Wallet, verify

SIGNATURE_TYPE_ARWEAVE = 1
SIGNATURE_LENGTH = 512
OWNER_LENGTH = 512
BUNDLE_TAGS = (("Bundle-Format", "binary"), ("Bundle-Version", "2.0.0"))
MAX_TAGS = 128


def _zigzag(value: int) -> bytes:
    """An Avro long: zigzag-mapped, then a varint."""
    return encode_varint((value << 1) ^ (value >> 63))


def _read_zigzag(data: Buffer, pos: int) -> tuple[int, int]:
    value, pos = decode_varint(data, pos, max_bytes=10)
    return (value >> 1) ^ -(value & 1), pos


def encode_avro_tags(tags: list[tuple[str, str]]) -> bytes:
    """The Avro encoding of `tags` (empty bytes for no tags, as arbundles writes it)."""
    if not tags:
        return b""
    out = bytearray(_zigzag(len(tags)))
    for name, value in tags:
        for text in (name.encode(), value.encode()):
            out += _zigzag(len(text)) + text
    return bytes(out + _zigzag(0))


def decode_avro_tags(data: Buffer) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    pos = 0
    if not len(data):
        return tags
    while True:
        count, pos = _read_zigzag(data, pos)
        if count == 0:
            break
        if count < 0:  # a block with its byte size (allowed by Avro)
            count = -count
            _, pos = _read_zigzag(data, pos)
        for _ in range(count):
            pair = []
            for _ in range(2):
                length, pos = _read_zigzag(data, pos)
                if length < 0 or pos + length > len(data):
                    raise FormatError("Avro string past the end of the tags")
                try:
                    pair.append(bytes(data[pos:pos + length]).decode("utf-8"))
                except UnicodeDecodeError:
                    raise FormatError("an Avro tag is not UTF-8") from None
                pos += length
            tags.append((pair[0], pair[1]))
    if pos != len(data):
        raise FormatError("bytes after the Avro tags")
    return tags


class DataItem(NamedTuple):
    """A signed ANS-104 data item (signature type 1)."""

    raw: bytes

    @property
    def id(self) -> str:
        return b64url(hashlib.sha256(self.signature).digest())

    @property
    def signature(self) -> bytes:
        return self.raw[2:2 + SIGNATURE_LENGTH]

    @property
    def owner(self) -> bytes:
        return self.raw[2 + SIGNATURE_LENGTH:2 + SIGNATURE_LENGTH + OWNER_LENGTH]

    def fields(self) -> _Fields:
        return _parse(self.raw)

    def verify(self) -> bool:
        try:
            parsed = _parse(self.raw)
        except ValueError:
            return False
        return verify(parsed.owner, parsed.signature_data(), parsed.signature)


@dataclass(frozen=True)
class _Fields:
    signature: bytes
    owner: bytes
    target: bytes
    anchor: bytes
    tag_bytes: bytes
    tags: list[tuple[str, str]]
    data_start: int
    data: memoryview = field(repr=False)

    def signature_data(self) -> bytes:
        return deep_hash([b"dataitem", b"1", str(SIGNATURE_TYPE_ARWEAVE).encode(), self.owner, self.target,
                          self.anchor, self.tag_bytes, self.data])


def _parse(raw: Buffer) -> _Fields:
    view = memoryview(raw)
    if len(view) < 2 + SIGNATURE_LENGTH + OWNER_LENGTH + 2 + 16:
        raise FormatError("too short for a data item")
    if int.from_bytes(view[:2], "little") != SIGNATURE_TYPE_ARWEAVE:
        raise FormatError(f"signature type {int.from_bytes(view[:2], 'little')} is not supported (only 1)")
    pos = 2
    signature = bytes(view[pos:pos + SIGNATURE_LENGTH])
    pos += SIGNATURE_LENGTH
    owner = bytes(view[pos:pos + OWNER_LENGTH])
    pos += OWNER_LENGTH
    optional = []
    for _ in range(2):  # target, then anchor
        if pos >= len(view):
            raise FormatError("truncated data item (target or anchor)")
        present = view[pos]
        pos += 1
        if present not in (0, 1):
            raise FormatError("bad presence byte")
        if present and pos + 32 > len(view):
            raise FormatError("truncated data item (target or anchor)")
        optional.append(bytes(view[pos:pos + 32]) if present else b"")
        pos += 32 if present else 0
    if pos + 16 > len(view):
        raise FormatError("truncated tag header")
    count = int.from_bytes(view[pos:pos + 8], "little")
    size = int.from_bytes(view[pos + 8:pos + 16], "little")
    pos += 16
    if count > MAX_TAGS or pos + size > len(view):
        raise FormatError("tag block past the end of the item")
    tag_bytes = bytes(view[pos:pos + size])
    tags = decode_avro_tags(tag_bytes)
    if len(tags) != count:
        raise FormatError(f"tag count {count} does not match the {len(tags)} tags encoded")
    pos += size
    return _Fields(signature, owner, optional[0], optional[1], tag_bytes, tags, pos, view[pos:])


def sign_data_item(wallet: Wallet, data: Buffer, tags: list[tuple[str, str]], *, anchor: bytes = b"",
                   target: bytes = b"") -> DataItem:
    """A data item over `data`, signed by `wallet`."""
    if len(tags) > MAX_TAGS:
        raise FormatError(f"at most {MAX_TAGS} tags")
    for extra, label in ((anchor, "anchor"), (target, "target")):
        if extra and len(extra) != 32:
            raise FormatError(f"{label} must be 32 bytes")
    tag_bytes = encode_avro_tags(tags)
    fields = _Fields(b"", wallet.owner, target, anchor, tag_bytes, tags, 0, memoryview(data))
    signature = wallet.sign(fields.signature_data())
    head = bytearray(SIGNATURE_TYPE_ARWEAVE.to_bytes(2, "little"))
    head += signature + wallet.owner
    for extra in (target, anchor):
        head += (b"\x01" + extra) if extra else b"\x00"
    head += len(tags).to_bytes(8, "little") + len(tag_bytes).to_bytes(8, "little") + tag_bytes
    return DataItem(bytes(head) + bytes(data))


def build_bundle(items: list[DataItem]) -> bytes:
    """The binary bundle: item count, (size, id) pairs, then the items."""
    out = bytearray(len(items).to_bytes(32, "little"))
    for item in items:
        out += len(item.raw).to_bytes(32, "little") + hashlib.sha256(item.signature).digest()
    for item in items:
        out += item.raw
    return bytes(out)


def parse_bundle(data: Buffer) -> list[DataItem]:
    """The items of a binary bundle, each checked: its id matches its signature, which is valid."""
    view = memoryview(data)
    try:
        count = int.from_bytes(view[:32], "little")
        if 32 + 64 * count > len(view):
            raise FormatError("header longer than the bundle")
        pos = 32 + 64 * count
        items = []
        for i in range(count):
            entry = view[32 + 64 * i:96 + 64 * i]
            size = int.from_bytes(entry[:32], "little")
            item = DataItem(bytes(view[pos:pos + size]))
            if len(item.raw) != size or b64url(entry[32:]) != item.id or not item.verify():
                raise FormatError(f"item {i} ({b64url(entry[32:])}) is truncated, misnamed or badly signed")
            items.append(item)
            pos += size
    except ValueError as exc:
        raise IntegrityError(f"bad ANS-104 bundle: {exc}") from None
    return items
