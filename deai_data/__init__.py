"""deai-data: publish sealed, verifiable datasets to decentralised storage and read them back.

The public API is re-exported here; everything else is private by convention.
"""

from .crypto.keystore import Keystore
from .dataset.publish import PublishProgress, PublishResult, publish
from .dataset.reader import Dataset, VerifyReport, open_dataset
from .dataset.sources import folder, parquet
from .errors import (
    DeaiError,
    DecryptionError,
    IntegrityError,
    KeystoreError,
    ManifestError,
    NotFoundError,
    PublishError,
    SourceError,
    StorageError,
    UnsupportedLocatorError,
)
from .formats.manifest import Manifest, ShardEntry
from .storage import HttpStore, LocalStore, Store, register_store

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DeaiError",
    "DecryptionError",
    "HttpStore",
    "IntegrityError",
    "Keystore",
    "KeystoreError",
    "LocalStore",
    "Manifest",
    "ManifestError",
    "NotFoundError",
    "PublishError",
    "PublishProgress",
    "PublishResult",
    "ShardEntry",
    "SourceError",
    "StorageError",
    "Store",
    "UnsupportedLocatorError",
    "VerifyReport",
    "folder",
    "open_dataset",
    "parquet",
    "publish",
    "register_store",
]
