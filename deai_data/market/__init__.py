"""The data market: the DataMarket contract's Python client and the owner's key agent."""

from .agent import KeyAgent
from .client import Listing, Market, PurchaseInfo, artifact

__all__ = ["KeyAgent", "Listing", "Market", "PurchaseInfo", "artifact"]
