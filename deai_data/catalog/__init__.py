"""The analysts' side: SQL over the catalog the indexer builds (DuckDB views over Parquet)."""

from .reader import Catalog

__all__ = ["Catalog"]
