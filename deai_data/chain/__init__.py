"""EVM access: connecting to a chain, loading accounts, sending transactions and decoding reverts.

Knows no market: the market client (deai_data.market) builds on it.
"""

from .accounts import load_account, save_account
from .connect import connect, dev_accounts, dev_advance_time
from .transact import RevertDecoder, Transactor

__all__ = ["RevertDecoder", "Transactor", "connect", "dev_accounts", "dev_advance_time", "load_account", "save_account"]
