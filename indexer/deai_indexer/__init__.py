"""deai-indexer: the deai-data market's events -> Parquet (hive-partitioned by block range) + a DuckDB catalog."""

from .catalog import build_catalog
from .indexer import Indexer, Progress
from .rpc import RangeTooLarge, RpcClient

__all__ = ["Indexer", "Progress", "RangeTooLarge", "RpcClient", "build_catalog"]
