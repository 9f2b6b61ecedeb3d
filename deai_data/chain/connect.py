"""Connecting to a chain: the embedded in-process EVM (web3's EthereumTesterProvider) or any JSON-RPC URL."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import Web3Exception

from ..errors import ChainError

EMBEDDED = "embedded"

# Anvil's published development keys (its default mnemonic): test chains only, never real funds.
_ANVIL_DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdf4074a2bfc",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


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
        raise ChainError(f"no JSON-RPC endpoint answers at {rpc}: {exc}",
                         hint="check the URL and that the node is running") from exc
    return w3


def is_embedded(w3: Web3) -> bool:
    return type(w3.provider).__name__ == "EthereumTesterProvider"


def dev_accounts(w3: Web3) -> list[LocalAccount]:
    """The funded development accounts of the embedded chain or anvil (for the demo and tests only)."""
    if is_embedded(w3):
        keys = [k.to_hex() for k in w3.provider.ethereum_tester.backend.account_keys]
    else:
        keys = list(_ANVIL_DEV_KEYS)
    accounts = [Account.from_key(k) for k in keys]
    known = {a.lower() for a in w3.eth.accounts}
    if not any(a.address.lower() in known for a in accounts):
        raise ChainError("this chain has none of the known development accounts",
                         hint="dev_accounts works on the embedded chain and on anvil only")
    return accounts
