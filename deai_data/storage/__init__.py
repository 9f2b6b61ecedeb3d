"""Storage backends behind one small protocol, registered by URI scheme."""

from .arweave import ArweaveStore
from .base import ObjectStat, Store, content_path
from .cache import ShardCache
from .filecoin import PieceStore
from .http import HttpStore
from .ipfs import IpfsStore
from .local import LocalStore, locator_from_path, path_from_locator
from .registry import open_store, register_store, registered_schemes, store_for

__all__ = [
    "ArweaveStore",
    "HttpStore",
    "IpfsStore",
    "LocalStore",
    "ObjectStat",
    "PieceStore",
    "ShardCache",
    "Store",
    "content_path",
    "locator_from_path",
    "open_store",
    "path_from_locator",
    "register_store",
    "registered_schemes",
    "store_for",
]
