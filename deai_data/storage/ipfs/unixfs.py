"""UnixFS files over dag-pb with raw leaves: how a shard becomes one CID.

The layout is the one `ipfs add --cid-version=1 --raw-leaves` builds by default (fixed-size chunks of
256 KiB, balanced tree, at most 174 links per node, a single chunk is its own raw CID), so the same
bytes get the same CID here and in Kubo or js-ipfs, and any gateway serves the shard as a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import FormatError
from ..varint import Buffer, decode_varint, encode_varint
from .cid import CID, DAG_PB, RAW

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
_FILE = 2


def _field(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _field(number, 2) + encode_varint(len(value)) + value


@dataclass(frozen=True)
class Link:
    cid: CID
    tsize: int  # the bytes of the whole subtree's blocks


@dataclass(frozen=True)
class FileNode:
    """A dag-pb UnixFS file node: its links and the file bytes under each."""

    links: tuple[Link, ...]
    blocksizes: tuple[int, ...]

    @property
    def filesize(self) -> int:
        return sum(self.blocksizes)

    def encode(self) -> bytes:
        data = _field(1, 0) + encode_varint(_FILE) + _field(3, 0) + encode_varint(self.filesize)
        data += b"".join(_field(4, 0) + encode_varint(size) for size in self.blocksizes)
        out = bytearray()
        for link in self.links:  # dag-pb: links first, then data; each link Hash, Name (empty), Tsize
            body = _bytes_field(1, link.cid.to_bytes()) + _bytes_field(2, b"")
            body += _field(3, 0) + encode_varint(link.tsize)
            out += _bytes_field(2, body)
        out += _bytes_field(1, data)
        return bytes(out)

    @classmethod
    def decode(cls, block: Buffer) -> FileNode:
        """Parse a dag-pb block holding a UnixFS file node; raises ValueError otherwise."""
        links: list[Link] = []
        data = None
        for number, value in _fields(block):
            if number == 2 and isinstance(value, bytes):
                cid, tsize = None, 0
                for sub, subvalue in _fields(value):
                    if sub == 1 and isinstance(subvalue, bytes):
                        cid = CID.from_bytes(subvalue)
                    elif sub == 3 and isinstance(subvalue, int):
                        tsize = subvalue
                if cid is None:
                    raise FormatError("dag-pb link without a hash")
                links.append(Link(cid, tsize))
            elif number == 1 and isinstance(value, bytes):
                data = value
        if data is None:
            raise FormatError("dag-pb node without UnixFS data")
        kind, sizes, inline = None, [], b""
        for number, value in _fields(data):
            if number == 1:
                kind = value
            elif number == 4 and isinstance(value, int):
                sizes.append(value)
            elif number == 2 and isinstance(value, bytes):
                inline = value
        if kind not in (_FILE, 0) or inline:
            raise FormatError("not a UnixFS file node with raw leaves")
        if len(sizes) != len(links):
            raise FormatError("UnixFS blocksizes do not match the links")
        return cls(tuple(links), tuple(sizes))


def _fields(data: Buffer) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    view = memoryview(data)
    while pos < len(view):
        key, pos = decode_varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(view, pos)
            yield number, value
        elif wire == 2:
            length, pos = decode_varint(view, pos)
            if pos + length > len(view):
                raise FormatError("truncated protobuf field")
            yield number, bytes(view[pos:pos + length])
            pos += length
        else:
            raise FormatError(f"protobuf wire type {wire} is not used by dag-pb")


@dataclass(frozen=True)
class Block:
    cid: CID
    data: Buffer


def file_blocks(data: Buffer, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> tuple[CID, list[Block]]:
    """The root CID and every block (leaves first, root last) of `data` as a UnixFS file."""
    view = memoryview(data)
    blocks: list[Block] = []
    layer: list[tuple[CID, int, int]] = []  # (cid, tsize, file bytes)
    for start in range(0, max(len(view), 1), chunk_size):
        chunk = view[start:start + chunk_size]
        cid = CID.of(chunk, RAW)
        blocks.append(Block(cid, chunk))
        layer.append((cid, len(chunk), len(chunk)))
    while len(layer) > 1:
        parents = []
        for i in range(0, len(layer), max_links):
            group = layer[i:i + max_links]
            node = FileNode(tuple(Link(c, t) for c, t, _ in group), tuple(size for _, _, size in group)).encode()
            cid = CID.of(node, DAG_PB)
            blocks.append(Block(cid, node))
            parents.append((cid, len(node) + sum(t for _, t, _ in group), sum(s for _, _, s in group)))
        layer = parents
    return layer[0][0], blocks


def file_cid(data: Buffer) -> CID:
    """The CID `ipfs add --cid-version=1 --raw-leaves` gives `data`."""
    return file_blocks(data)[0]
