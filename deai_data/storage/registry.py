"""Stores registered by URI scheme, in the spirit of fsspec: `store_for(locator)` finds the backend.

Backends register a factory for their schemes; later backends (`ar://`, `ipfs://`, `piece://`) plug in
with `register_store` and nothing else changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import UnsupportedLocatorError, UsageError
from .base import Store, StoreReader, parse_uri
from .http import HttpStore
from .local import LocalStore

StoreFactory = Callable[[], StoreReader]
WriterFactory = Callable[[str], Store]

_factories: dict[str, StoreFactory] = {}
_writers: dict[str, WriterFactory] = {}
_readers: dict[str, StoreReader] = {}
_lock = threading.RLock()


def register_store(scheme: str, factory: StoreFactory, *, writer: WriterFactory | None = None,
                   replace: bool = False) -> None:
    """Register `factory` (called with no arguments) as the reader for `scheme://` locators, and
    `writer` (called with the URI) to open a writable store from a `scheme://...` URI."""
    scheme = scheme.lower()
    with _lock:
        if scheme in _factories and not replace:
            raise UsageError(f"a store is already registered for {scheme}://")
        _factories[scheme] = factory
        _readers.pop(scheme, None)
        if writer is not None:
            _writers[scheme] = writer


def registered_schemes() -> list[str]:
    return sorted(_factories)


def scheme_of(locator: str) -> str:
    return parse_uri(locator).scheme.lower() if "://" in locator else "file"


def store_for(locator: str) -> StoreReader:
    """The (shared, thread-safe) store able to read `locator`."""
    scheme = scheme_of(locator)
    with _lock:
        store = _readers.get(scheme)
        if store is None:
            factory = _factories.get(scheme)
            if factory is None:
                raise UnsupportedLocatorError(
                    f"no store is registered for {scheme}://", locator=locator,
                    hint=f"registered schemes: {', '.join(registered_schemes())}")
            store = _readers[scheme] = factory()
    return store


def open_store(target: str | Path | Store) -> Store:
    """A writable store from a Store, a directory path, a `file://` URI, or a URI of a scheme registered
    with a writer (`ar://?gateway=...`)."""
    if isinstance(target, Store):
        return target
    text = str(target)
    if scheme_of(text) == "file":
        return LocalStore(text)
    writer = _writers.get(scheme_of(text))
    if writer is not None:
        return writer(text)
    raise UnsupportedLocatorError(f"cannot open {text!r} as a writable store", locator=text,
                                  hint="pass a directory, a file:// URI, an ar://, ipfs://, piece:// or s3:// URI, "
                                       "or a Store instance")


def read_through(target: str | Path | Store) -> Store:
    """From now on (in this process) read the locators of `target`'s scheme through it: for example
    `read_through("ipfs://?api=http://127.0.0.1:5001")` after publishing to that node, instead of the
    readers configured from the environment. Returns the store."""
    store = open_store(target)
    for scheme in store.schemes:
        register_store(scheme, lambda: store, replace=True)
    return store


register_store("file", LocalStore)
register_store("http", lambda: HttpStore(untrusted=True))  # http(s) locators are named by manifests
register_store("https", lambda: store_for("http://"))


def _on_first_use(module: str, name: str) -> Callable[..., Store]:
    """`module.name(...)`, the module imported at the first call: a network backend costs nothing to
    whoever never opens one of its locators."""
    def call(*args: str) -> Store:
        target: Any = import_module(module, __package__)
        for part in name.split("."):
            target = getattr(target, part)
        return target(*args)
    return call


for _scheme, _module, _store in (("ar", ".arweave.store", "ArweaveStore"), ("ipfs", ".ipfs.store", "IpfsStore"),
                                 ("piece", ".filecoin.store", "PieceStore"), ("s3", ".s3", "S3Store")):
    register_store(_scheme, _on_first_use(_module, "reader_from_env"),
                   writer=_on_first_use(_module, f"{_store}.from_uri"))
