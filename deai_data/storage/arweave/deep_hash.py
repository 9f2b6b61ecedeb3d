"""Arweave's deep hash (SHA-384 over tagged blobs and lists): what transactions and data items sign."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

DeepHashable = bytes | bytearray | memoryview | Sequence["DeepHashable"]


def _sha384(*parts: bytes | bytearray | memoryview) -> bytes:
    digest = hashlib.sha384()
    for part in parts:
        digest.update(part)
    return digest.digest()


def deep_hash(value: DeepHashable) -> bytes:
    """`deepHash` of arweave-js: a blob is tagged with its length, a list folds its items' hashes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        blob = memoryview(value)
        return _sha384(_sha384(b"blob" + str(blob.nbytes).encode()), _sha384(blob))
    acc = _sha384(b"list" + str(len(value)).encode())
    for item in value:
        acc = _sha384(acc, deep_hash(item))
    return acc
