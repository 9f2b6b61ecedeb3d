"""The storage seam: the small `Store` protocol every backend implements, and helpers they share.

A store is untrusted: it moves bytes, and the reader verifies everything it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import ParseResult, urlparse

from ..errors import StorageError, UsageError

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class ObjectStat:
    """What a store knows about one object without reading it."""

    locator: str
    size: int


@runtime_checkable
class Store(Protocol):
    """A backend addressed by URI scheme (`file://`, `http://`, `ar://`, `ipfs://`, `piece://`).

    `put*` return the locator under which the object can be fetched again; `labels` are name/value
    pairs a backend may record with the object for discovery (Arweave tags), never needed to read it
    back. `flush()`, where a store has it, sends what it batched (ANS-104 bundles). `get` returns the bytes
    `[start, end)` (to the end of the object when `end` is None) and raises `NotFoundError` for a
    missing object and `StorageError` for any other failure.
    """

    schemes: tuple[str, ...]

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str: ...

    def put_file(self, path: str | Path, *, sha256: str | None = None,
                 labels: Mapping[str, str] | None = None) -> str: ...

    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes: ...

    def exists(self, locator: str) -> bool: ...

    def stat(self, locator: str) -> ObjectStat: ...


class PutFileByReading:
    """`put_file` for stores whose uploads take the whole object in memory anyway (network backends)."""

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        raise NotImplementedError

    def put_file(self, path: str | Path, *, sha256: str | None = None,
                 labels: Mapping[str, str] | None = None) -> str:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from None
        return self.put(data, sha256=sha256, labels=labels)


def parse_uri(uri: str) -> ParseResult:
    """`urlparse(uri)`, with a malformed URI (an unclosed `[`, say) a StorageError instead of a ValueError."""
    try:
        return urlparse(uri)
    except ValueError as exc:
        raise StorageError(f"not a valid URI: {exc}", locator=uri[:200]) from None


def check_range(start: int, end: int | None) -> None:
    """Validate a requested byte range."""
    if start < 0 or (end is not None and end < start):
        raise UsageError(f"invalid byte range [{start}, {end})")


def content_path(sha256: str) -> str:
    """Relative path of an object inside a content-addressed store laid out as LocalStore does."""
    return f"objects/sha256/{sha256[:2]}/{sha256}"
