"""Arweave backend: wallets, format-2 transactions, chunk proofs, ANS-104 bundles, gateways, `ar://` store.

A small client of our own on `cryptography` + `requests` (docs/arweave.md says why).
"""

from .ans104 import DataItem, build_bundle, parse_bundle, sign_data_item
from .gateway import GatewayClient, TxStatus
from .merkle import chunk_payload, data_root, validate_path
from .store import ArweaveObject, ArweaveStore, load_wallet, tx_id_of
from .transaction import Transaction
from .wallet import Wallet

__all__ = [
    "ArweaveObject",
    "ArweaveStore",
    "DataItem",
    "GatewayClient",
    "Transaction",
    "TxStatus",
    "Wallet",
    "build_bundle",
    "chunk_payload",
    "data_root",
    "load_wallet",
    "parse_bundle",
    "sign_data_item",
    "tx_id_of",
    "validate_path",
]
