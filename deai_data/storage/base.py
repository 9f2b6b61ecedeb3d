"""The storage seam: the small `Store` protocol every backend implements, and helpers they share.

A store is untrusted: it moves bytes, and the reader verifies everything it returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import ParseResult, urlparse

from ..errors import NotFoundError, StorageError, UsageError

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class ObjectStat:
    """What a store knows about one object without reading it."""

    locator: str
    size: int


@runtime_checkable
class StoreReader(Protocol):
    """What every backend does, readers and writers alike: read objects by locator. `get` returns the bytes
    `[start, end)` (to the end of the object when `end` is None) and raises `NotFoundError` for a missing
    object and `StorageError` for any other failure."""

    schemes: tuple[str, ...]

    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes: ...

    def exists(self, locator: str) -> bool: ...

    def stat(self, locator: str) -> ObjectStat: ...


@runtime_checkable
class Store(StoreReader, Protocol):
    """A backend one can publish to, addressed by URI scheme (`file://`, `ar://`, `ipfs://`, `piece://`).

    `put*` return the locator under which the object can be fetched again; `labels` are name/value
    pairs a backend may record with the object for discovery (Arweave tags), never needed to read it
    back.
    """

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str: ...

    def put_file(self, path: str | Path, *, sha256: str | None = None,
                 labels: Mapping[str, str] | None = None) -> str: ...


# Optional capabilities, each a protocol of its own (checked with isinstance, never probed by name).

@runtime_checkable
class Batching(Protocol):
    """A store that batches what it is given (ANS-104 bundles) until `flush()` sends it; returns the batch's
    locator, or None when nothing was pending."""

    def flush(self) -> str | None: ...


@runtime_checkable
class ReadsInto(Protocol):
    """A store that can read a whole object into a caller's buffer (no fresh allocation); returns the number
    of bytes read, at most `len(buf)`."""

    def read_into(self, locator: str, buf: memoryview) -> int: ...


class Confirmation(Protocol):
    """Where a write stands on a chain of blocks."""

    @property
    def confirmed(self) -> bool: ...

    @property
    def confirmations(self) -> int: ...


@runtime_checkable
class Confirming(Protocol):
    """A store whose writes become final as blocks confirm them (Arweave): `status(locator)` says `confirmed`
    (with `confirmations`) or not yet, and raises NotFoundError for an unknown object."""

    def status(self, locator: str) -> Confirmation: ...


@runtime_checkable
class Located(Protocol):
    """A store with a URI that opens it again (`open_store(store.uri)`), used to name it in journals."""

    @property
    def uri(self) -> str: ...


class ExistsByStat:
    """`exists` for stores whose `stat` raises NotFoundError for a missing object (and costs no download)."""

    def stat(self, locator: str) -> ObjectStat:
        raise NotImplementedError

    def exists(self, locator: str) -> bool:
        try:
            self.stat(locator)
        except NotFoundError:
            return False
        return True


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


def sha256_file(path: str | Path) -> Any:
    """The SHA-256 of a file, read in 8 MiB chunks (`.hexdigest()` or `.digest()`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest


def content_path(sha256: str) -> str:
    """Relative path of an object inside a content-addressed store laid out as LocalStore does."""
    return f"objects/sha256/{sha256[:2]}/{sha256}"
