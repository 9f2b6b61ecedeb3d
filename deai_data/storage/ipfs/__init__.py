"""IPFS backend: CIDs, UnixFS files with raw leaves, CAR v1, the Kubo RPC API, and the `ipfs://` store
with every block verified."""

from .car import CarError, read_car, write_car
from .cid import CID
from .kubo import KuboClient
from .store import IpfsStore, cid_of
from .unixfs import file_blocks, file_cid

__all__ = ["CID", "CarError", "IpfsStore", "KuboClient", "cid_of", "file_blocks", "file_cid", "read_car",
           "write_car"]
