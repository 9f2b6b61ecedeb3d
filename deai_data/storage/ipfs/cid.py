"""CIDs (v1, and v0 for reading), multihashes, unsigned varints and base32 multibase: the few hundred
lines of multiformats deai-data needs, written here rather than depending on `multiformats` (unmaintained
since 2023, lacks the PieceCID v2 multihash) or `libipld` (its CAR reader accepts DAG-CBOR blocks only).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ...errors import FormatError
from ..varint import Buffer, decode_varint, encode_varint

RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
FIL_COMMITMENT_UNSEALED = 0xF101
SHA2_256 = 0x12
SHA2_256_TRUNC254_PADDED = 0x1012
FR32_SHA256_TRUNC254_PADBINTREE = 0x1011
IDENTITY = 0x00
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"



def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


@dataclass(frozen=True)
class CID:
    """A content identifier: version, codec (multicodec) and multihash (code + digest)."""

    version: int
    codec: int
    hash_code: int
    digest: bytes

    @classmethod
    def of(cls, data: Buffer, codec: int = RAW) -> CID:
        """The CIDv1 (sha2-256) of a block."""
        return cls(1, codec, SHA2_256, hashlib.sha256(data).digest())

    @property
    def multihash(self) -> bytes:
        return encode_varint(self.hash_code) + encode_varint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + base64.b32encode(self.to_bytes()).decode().lower().rstrip("=")

    def __repr__(self) -> str:
        return f"CID({self})"

    @classmethod
    def parse(cls, text: str) -> CID:
        """From a string: base32 CIDv1 (`b...`), base58btc CIDv0 (`Qm...`) or base16 (`f...`)."""
        text = text.strip()
        try:
            if text.startswith("Qm") and len(text) == 46:
                return cls.from_bytes(_b58decode(text))
            if text[:1] == "b":
                body = text[1:].upper()
                return cls.from_bytes(base64.b32decode(body + "=" * (-len(body) % 8)))
            if text[:1] == "f":
                return cls.from_bytes(bytes.fromhex(text[1:]))
        except (ValueError, TypeError) as exc:
            raise FormatError(f"not a CID: {text!r} ({exc})") from None
        raise FormatError(f"not a CID (unsupported multibase): {text!r}")

    @classmethod
    def from_bytes(cls, data: Buffer) -> CID:
        cid, end = cls.read(data, 0)
        if end != len(data):
            raise FormatError("bytes after the CID")
        return cid

    @classmethod
    def read(cls, data: Buffer, pos: int) -> tuple[CID, int]:
        """Parse a binary CID at `pos`; returns (cid, position after it)."""
        if len(data) - pos >= 34 and data[pos] == 0x12 and data[pos + 1] == 0x20:  # CIDv0: a bare multihash
            return cls(0, DAG_PB, SHA2_256, bytes(data[pos + 2:pos + 34])), pos + 34
        version, pos = decode_varint(data, pos)
        if version != 1:
            raise FormatError(f"CID version {version} is not supported")
        codec, pos = decode_varint(data, pos)
        code, pos = decode_varint(data, pos)
        length, pos = decode_varint(data, pos)
        if pos + length > len(data):
            raise FormatError("truncated multihash")
        return cls(1, codec, code, bytes(data[pos:pos + length])), pos + length

    def verify(self, block: Buffer) -> bool:
        """Whether `block` is what this CID names (sha2-256 or identity multihashes)."""
        if self.hash_code == SHA2_256:
            return hashlib.sha256(block).digest() == self.digest
        if self.hash_code == IDENTITY:
            return bytes(block) == self.digest
        raise FormatError(f"multihash 0x{self.hash_code:x} is not supported for block verification")
