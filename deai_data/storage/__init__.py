"""Storage backends behind one small protocol, registered by URI scheme."""

from typing import TYPE_CHECKING, Any

from .base import Batching, Located, ObjectStat, ReadsInto, Store, StoreReader, content_path
from .cache import ShardCache
from .http import HttpStore
from .local import LocalStore, locator_from_path, path_from_locator
from .registry import open_store, read_through, register_store, registered_schemes, store_for

if TYPE_CHECKING:
    from .arweave import ArweaveStore
    from .filecoin import PieceStore
    from .ipfs import IpfsStore
    from .s3 import S3Store

_NETWORK = {"ArweaveStore": ".arweave", "IpfsStore": ".ipfs", "PieceStore": ".filecoin", "S3Store": ".s3"}


def __getattr__(name: str) -> Any:
    """The network stores load on first use (their clients are not needed to read local data)."""
    if name in _NETWORK:
        from importlib import import_module
        return getattr(import_module(_NETWORK[name], __name__), name)
    raise AttributeError(name)


__all__ = [
    "ArweaveStore",
    "Batching",
    "HttpStore",
    "IpfsStore",
    "Located",
    "LocalStore",
    "ObjectStat",
    "PieceStore",
    "ReadsInto",
    "S3Store",
    "ShardCache",
    "Store",
    "StoreReader",
    "content_path",
    "locator_from_path",
    "open_store",
    "path_from_locator",
    "read_through",
    "register_store",
    "registered_schemes",
    "store_for",
]
