"""The committed ABI and bytecode of the DataMarket contract (no web3 needed to read them)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def artifact() -> dict[str, Any]:
    """The committed ABI and bytecode of DataMarket (built by `make artifacts` from contracts/)."""
    return json.loads(resources.files("deai_data.market").joinpath("DataMarket.json").read_text())


def market_abi() -> list[dict[str, Any]]:
    """The DataMarket contract's ABI (events included: what the indexer decodes)."""
    return list(artifact()["abi"])
