"""deai-data: publish sealed, verifiable datasets to decentralised storage and read them back.

The public API is re-exported here; everything else is private by convention.
"""

from typing import TYPE_CHECKING, Any

from .catalog import mirror as catalog_mirror
from .catalog import schema as catalog_schema
from .cli.entry import run_command
from .crypto.keystore import Keystore
from .dataset.publish import PublishProgress, PublishResult, publish
from .dataset.reader import Dataset, VerifyReport, fetch_manifest, open_dataset
from .dataset.sources import folder, parquet
from .dataset.storage_check import StorageReport, check_storage
from .display import ProgressBar, register_formatters
from .errors import (
    CatalogError,
    ChainError,
    ContractError,
    DeaiError,
    DecryptionError,
    FetchRefusedError,
    IntegrityError,
    KeyDeliveryError,
    KeystoreError,
    LimitError,
    ManifestError,
    MarketError,
    NotFoundError,
    PublishError,
    SourceError,
    StorageError,
    UnsupportedLocatorError,
    UsageError,
    network_reason,
)
from .formats.license import License, license_reference, parse_license
from .formats.limits import Limits
from .formats.manifest import Manifest, ShardEntry
from .storage import HttpStore, LocalStore, Store, StoreReader, fetch_policy, register_store, staging, store_for
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .catalog import Catalog
    from .chain import connect, load_account
    from .market import KeyAgent, Listing, Market, PurchaseInfo, market_abi


# The market and chain parts import web3 (about a second), the catalog DuckDB: they load on first use,
# so that reading and training never pay for them.
_LAZY = {"Catalog": "catalog", "Market": "market", "KeyAgent": "market", "Listing": "market", "PurchaseInfo": "market",
         "market_abi": "market", "connect": "chain", "load_account": "chain"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'deai_data' has no attribute {name!r}")


register_formatters()  # in IPython: Arrow tables (catalog results, records) shown as HTML tables

__all__ = [
    "Catalog",
    "CatalogError",
    "ChainError",
    "ContractError",
    "Dataset",
    "DeaiError",
    "DecryptionError",
    "FetchRefusedError",
    "HttpStore",
    "IntegrityError",
    "KeyAgent",
    "KeyDeliveryError",
    "Keystore",
    "KeystoreError",
    "License",
    "LimitError",
    "Limits",
    "Listing",
    "LocalStore",
    "Manifest",
    "ManifestError",
    "Market",
    "MarketError",
    "NotFoundError",
    "ProgressBar",
    "PublishError",
    "PublishProgress",
    "PublishResult",
    "PurchaseInfo",
    "ShardEntry",
    "SourceError",
    "StorageError",
    "StorageReport",
    "Store",
    "StoreReader",
    "UnsupportedLocatorError",
    "UsageError",
    "VerifyReport",
    "catalog_mirror",
    "catalog_schema",
    "check_storage",
    "connect",
    "fetch_manifest",
    "fetch_policy",
    "folder",
    "license_reference",
    "load_account",
    "market_abi",
    "network_reason",
    "open_dataset",
    "parquet",
    "parse_license",
    "publish",
    "register_store",
    "run_command",
    "staging",
    "store_for",
]
