"""The data market: the DataMarket contract's Python client and the owner's key agent.

The client and the agent import web3 (about a second): they load on first use, so that reading the
committed ABI (`artifact()`, e.g. by the indexer) does not pay for them.
"""

from typing import TYPE_CHECKING, Any

from .artifact import artifact, market_abi

if TYPE_CHECKING:
    from .agent import KeyAgent
    from .client import Listing, Market, PurchaseInfo, PurchaseTerms, RevenueSplit, SubscriptionInfo

_LAZY = {"KeyAgent": "agent", "Listing": "client", "Market": "client", "PurchaseInfo": "client",
         "PurchaseTerms": "client", "RevenueSplit": "client", "SubscriptionInfo": "client"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["KeyAgent", "Listing", "Market", "PurchaseInfo", "PurchaseTerms", "RevenueSplit", "SubscriptionInfo",
           "artifact", "market_abi"]
