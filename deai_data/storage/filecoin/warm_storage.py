"""EIP-712 authorisations for FilecoinWarmStorageService (Filecoin Onchain Cloud): the client signs what
a PDP storage provider may do with its data set (create it, add pieces, schedule removals, delete it),
and the provider submits the signature on chain inside `extraData`. Encoding only: nothing here sends
a transaction. Types follow the published Synapse SDK (its reference digests are in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data

from ..ipfs.cid import CID

DOMAIN_NAME = "FilecoinWarmStorageService"
DOMAIN_VERSION = "1"
TYPES: dict[str, list[dict[str, str]]] = {
    "CreateDataSet": [{"name": "clientDataSetId", "type": "uint256"}, {"name": "withCDN", "type": "bool"},
                      {"name": "payee", "type": "address"}],
    "Cid": [{"name": "data", "type": "bytes"}],
    "AddPieces": [{"name": "clientDataSetId", "type": "uint256"}, {"name": "firstAdded", "type": "uint256"},
                  {"name": "pieceData", "type": "Cid[]"}],
    "SchedulePieceRemovals": [{"name": "clientDataSetId", "type": "uint256"},
                              {"name": "pieceIds", "type": "uint256[]"}],
    "DeleteDataSet": [{"name": "clientDataSetId", "type": "uint256"}],
}
_DEPENDENCIES = {"AddPieces": ["Cid"]}


@dataclass(frozen=True)
class Authorisation:
    """An EIP-712 signature and the digest it signs."""

    digest: bytes
    signature: bytes


class WarmStorageAuth:
    """Signs FilecoinWarmStorageService requests with an eth-account `account` for one contract/chain."""

    def __init__(self, account: Any, service_contract: str, chain_id: int) -> None:
        self.account = account
        self.domain = {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                       "verifyingContract": service_contract}

    def _message(self, primary: str, message: dict[str, Any]) -> Any:
        types = {primary: TYPES[primary], **{d: TYPES[d] for d in _DEPENDENCIES.get(primary, [])}}
        return encode_typed_data(domain_data=self.domain, message_types=types, message_data=message)

    def _sign(self, primary: str, message: dict[str, Any]) -> Authorisation:
        signed = self.account.sign_message(self._message(primary, message))
        return Authorisation(bytes(signed.message_hash), bytes(signed.signature))

    def create_data_set(self, client_data_set_id: int, payee: str, with_cdn: bool = False) -> Authorisation:
        return self._sign("CreateDataSet", {"clientDataSetId": client_data_set_id, "withCDN": with_cdn,
                                            "payee": payee})

    def add_pieces(self, client_data_set_id: int, first_added: int, pieces: Sequence[CID | bytes]) -> Authorisation:
        data = [{"data": p.to_bytes() if isinstance(p, CID) else bytes(p)} for p in pieces]
        return self._sign("AddPieces", {"clientDataSetId": client_data_set_id, "firstAdded": first_added,
                                        "pieceData": data})

    def schedule_piece_removals(self, client_data_set_id: int, piece_ids: Sequence[int]) -> Authorisation:
        return self._sign("SchedulePieceRemovals", {"clientDataSetId": client_data_set_id,
                                                    "pieceIds": list(piece_ids)})

    def delete_data_set(self, client_data_set_id: int) -> Authorisation:
        return self._sign("DeleteDataSet", {"clientDataSetId": client_data_set_id})


def create_data_set_extra_data(payer: str, with_cdn: bool, signature: bytes, metadata: str = "") -> bytes:
    """`extraData` of a data-set creation: abi.encode(string metadata, address payer, bool withCDN, bytes sig)."""
    return abi_encode(["string", "address", "bool", "bytes"], [metadata, payer, with_cdn, signature])


def add_pieces_extra_data(signature: bytes, metadata: str = "") -> bytes:
    """`extraData` of adding pieces: abi.encode(bytes signature, string metadata)."""
    return abi_encode(["bytes", "string"], [signature, metadata])
