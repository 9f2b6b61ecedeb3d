"""Connecting to a chain: the embedded in-process EVM (web3's EthereumTesterProvider) or any JSON-RPC URL."""

from __future__ import annotations

from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import Web3Exception

from ..errors import ChainError, network_reason

EMBEDDED = "embedded"

# Anvil's (and Hardhat's) published development mnemonic: test chains only, never real funds.
ANVIL_DEV_MNEMONIC = "test test test test test test test test test test test junk"

def connect(rpc: str | None = None, *, timeout: float = 30.0) -> Web3:
    """A connected Web3: `None` or "embedded" gives a fresh in-process chain; otherwise an HTTP JSON-RPC URL."""
    if rpc in (None, EMBEDDED):
        try:
            from web3 import EthereumTesterProvider
            w3 = Web3(EthereumTesterProvider())
        except Exception as exc:  # eth-tester or py-evm missing
            raise ChainError("the embedded chain needs eth-tester and py-evm",
                             hint="pip install 'deai-data[embedded-chain]' or pass an RPC URL") from exc
        return w3
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - the first request proves the endpoint answers
    except (OSError, Web3Exception, ValueError) as exc:
        raise ChainError(f"no JSON-RPC endpoint answers at {rpc}: {network_reason(exc)}",
                         hint="check the URL and that the node is running") from exc
    return w3


def anvil_dev_accounts(count: int = 10) -> list[LocalAccount]:
    """The accounts anvil funds by default, derived from its published mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(ANVIL_DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def is_embedded(w3: Web3) -> bool:
    return type(w3.provider).__name__ == "EthereumTesterProvider"


def dev_accounts(w3: Web3) -> list[LocalAccount]:
    """The funded development accounts of the embedded chain or anvil (for the demo and tests only)."""
    if is_embedded(w3):
        tester = cast(Any, w3.provider).ethereum_tester
        accounts = [Account.from_key(k.to_hex()) for k in tester.backend.account_keys]
    else:
        accounts = anvil_dev_accounts()
    known = {a.lower() for a in w3.eth.accounts}
    if not any(a.address.lower() in known for a in accounts):
        raise ChainError("this chain has none of the known development accounts",
                         hint="dev_accounts works on the embedded chain and on anvil only")
    return accounts


def dev_advance_time(w3: Web3, seconds: int) -> None:
    """Move a development chain's clock forward and mine a block at the new time (embedded chain or anvil)."""
    now = w3.eth.get_block("latest")["timestamp"]
    provider = cast(Any, w3.provider)
    if is_embedded(w3):
        provider.ethereum_tester.time_travel(now + seconds)
        provider.ethereum_tester.mine_blocks(1)
    else:
        provider.make_request("evm_increaseTime", [seconds])
        provider.make_request("evm_mine", [])

