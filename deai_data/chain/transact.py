"""Sending transactions signed by a local account, and turning reverts into the project's typed errors.

Reverts look different per chain kind (eth-tester raises TransactionFailed with the bytes in its
message; JSON-RPC nodes give ContractCustomError/ContractLogicError with hex data): both are decoded
with the contract's ABI into a `ContractError` (or the subclass a client names) with the custom error's name
and arguments.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from ..errors import ChainError, ContractError

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
_TESTER_BYTES = re.compile(r"(b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")")


def _type_of(param: Mapping[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type_of(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


class RevertDecoder:
    """Decodes revert data with the custom errors of an ABI; `hints` say what to do about each error, and
    `error_type` (a ContractError subclass) is what a revert becomes."""

    def __init__(self, abi: list[dict[str, Any]], hints: Mapping[str, str] | None = None, *,
                 error_type: type[ContractError] = ContractError) -> None:
        self.hints = dict(hints or {})
        self.error_type = error_type
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") == "error":
                types = [_type_of(p) for p in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self._errors[selector] = (item["name"], [p["name"] for p in item["inputs"]], types)

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        """(error name, arguments) for revert data, or None when it is not a known error."""
        selector, body = bytes(data[:4]), bytes(data[4:])
        if selector == _ERROR_STRING:
            return "Error", {"message": abi_decode(["string"], body)[0]}
        if selector == _PANIC:
            return "Panic", {"code": abi_decode(["uint256"], body)[0]}
        known = self._errors.get(selector)
        if known is None:
            return None
        name, names, types = known
        values = abi_decode(types, body)
        return name, {n: (v.hex() if isinstance(v, bytes) else v) for n, v in zip(names, values, strict=True)}

    def error(self, exc: Exception, action: str) -> ChainError:
        """The typed error for an exception raised while simulating or sending `action`."""
        data = revert_data(exc)
        if data is None:
            return ChainError(f"{action} failed: {exc}")
        decoded = self.decode(data) if data else None
        if decoded is None:
            return self.error_type(f"{action} reverted without a known reason (data 0x{data.hex()})",
                                   hint="check the contract address and the chain")
        name, args = decoded
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        return self.error_type(f"{action} refused by the contract: {name}({shown})", error=name, args=args,
                               hint=self.hints.get(name))


def revert_data(exc: Exception) -> bytes | None:
    """Revert bytes carried by a web3 or eth-tester exception, or None for a non-revert failure."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, str):
            return bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else b""
        return bytes(data) if isinstance(data, (bytes, bytearray)) else b""
    if type(exc).__name__ == "TransactionFailed":  # eth-tester: "execution reverted: b'...'"
        raw = _tester_revert_bytes(exc)
        if raw is not None:
            return raw
        text = str(exc.args[0]) if exc.args else ""
        match = _TESTER_BYTES.search(text)
        if match:
            return ast.literal_eval(match.group(1))
        return b""
    return None


def _tester_revert_bytes(exc: BaseException) -> bytes | None:
    """The raw revert bytes eth-tester raised, before web3's tester provider re-raised them as text: it decodes
    any payload as Error(string), which turns a custom error whose first argument is a string into that
    string. The original exception is the re-raised one's `__context__`."""
    seen: BaseException | None = exc.__context__
    for _ in range(4):
        if seen is None:
            return None
        first = seen.args[0] if seen.args else None
        if isinstance(first, BaseException) and first.args:
            first = first.args[0]
        if isinstance(first, (bytes, bytearray)):
            return bytes(first)
        seen = seen.__context__
    return None


class Transactor:
    """Signs with a local account and sends; estimates gas first so a revert surfaces with its reason."""

    def __init__(self, w3: Web3, account: LocalAccount, decoder: RevertDecoder, *,
                 receipt_timeout: float = 120.0) -> None:
        self.w3 = w3
        self.account = account
        self.decoder = decoder
        self.receipt_timeout = receipt_timeout
        self._chain_id = w3.eth.chain_id

    def send(self, fn: Any, action: str, *, value: int = 0) -> Any:
        """Simulate, sign, send and wait for the receipt of a contract call; returns the receipt."""
        params = {"from": self.account.address, "value": value}
        try:
            gas = fn.estimate_gas(params)
            tx = fn.build_transaction({**params, "gas": gas + gas // 5 + 10_000, "chainId": self._chain_id,
                                       "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")})
        except Exception as exc:
            raise self.decoder.error(exc, action) from None
        return self.send_raw(tx, action)

    def send_raw(self, tx: dict[str, Any], action: str) -> Any:
        signed = self.account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
        except TimeExhausted as exc:
            raise ChainError(f"{action}: no receipt within {self.receipt_timeout:.0f} s",
                             hint="the node may be congested; the transaction may still be mined") from exc
        except (OSError, Web3Exception, ValueError) as exc:
            raise self.decoder.error(exc, action) from None
        if receipt["status"] != 1:
            raise ChainError(f"{action}: transaction {tx_hash.hex()} reverted on-chain",
                             hint="the state changed between simulation and inclusion; retry")
        return receipt
