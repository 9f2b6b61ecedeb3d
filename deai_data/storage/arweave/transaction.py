"""Arweave transactions, format 2: tags, deep-hash signing, JSON for `POST /tx`, checks of what a
gateway returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import IntegrityError
from .deep_hash import deep_hash
from .merkle import Buffer, ChunkedData, b64url, unb64url
from .wallet import Wallet, address_of, verify

Tag = tuple[str, str]


def encode_tags(tags: list[Tag]) -> list[dict[str, str]]:
    return [{"name": b64url(n.encode()), "value": b64url(v.encode())} for n, v in tags]


def decode_tags(raw: list[dict[str, str]]) -> list[Tag]:
    return [(unb64url(t["name"]).decode("utf-8", "replace"), unb64url(t["value"]).decode("utf-8", "replace"))
            for t in raw]


@dataclass(frozen=True)
class Transaction:
    """A format-2 transaction header. `data` is carried only when small enough to go inline."""

    owner: bytes
    last_tx: str
    reward: int
    data_root: bytes = b""
    data_size: int = 0
    tags: tuple[Tag, ...] = ()
    target: bytes = b""
    quantity: int = 0
    signature: bytes = b""
    data: bytes = field(default=b"", repr=False)

    @property
    def id(self) -> str:
        return b64url(hashlib.sha256(self.signature).digest()) if self.signature else ""

    @property
    def owner_address(self) -> str:
        return address_of(self.owner)

    def signature_data(self) -> bytes:
        return deep_hash([
            b"2", self.owner, self.target, str(self.quantity).encode(), str(self.reward).encode(),
            unb64url(self.last_tx), [[n.encode(), v.encode()] for n, v in self.tags],
            str(self.data_size).encode(), self.data_root,
        ])

    def signed(self, wallet: Wallet) -> Transaction:
        if wallet.owner != self.owner:
            raise ValueError("the wallet is not this transaction's owner")
        return replace(self, signature=wallet.sign(self.signature_data()))

    def verify(self) -> bool:
        return bool(self.signature) and verify(self.owner, self.signature_data(), self.signature)

    def to_json(self, *, with_data: bool) -> dict[str, Any]:
        return {
            "format": 2, "id": self.id, "last_tx": self.last_tx, "owner": b64url(self.owner),
            "tags": encode_tags(list(self.tags)), "target": b64url(self.target), "quantity": str(self.quantity),
            "data": b64url(self.data) if with_data else "", "data_size": str(self.data_size),
            "data_root": b64url(self.data_root), "reward": str(self.reward), "signature": b64url(self.signature),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Transaction:
        """Parse a transaction header as a gateway returns it; checks its id and signature."""
        try:
            tx = cls(owner=unb64url(doc["owner"]), last_tx=doc["last_tx"], reward=int(doc["reward"]),
                     data_root=unb64url(doc.get("data_root", "")), data_size=int(doc.get("data_size", 0)),
                     tags=tuple(decode_tags(doc.get("tags", []))), target=unb64url(doc.get("target", "")),
                     quantity=int(doc.get("quantity", 0)), signature=unb64url(doc["signature"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise IntegrityError(f"malformed transaction header: {exc}") from None
        if doc.get("id") not in (None, tx.id):
            raise IntegrityError(f"transaction id {doc.get('id')} does not match its signature (id {tx.id})")
        return tx


def new_transaction(wallet: Wallet, data: Buffer, chunks: ChunkedData, *, tags: list[Tag], reward: int, anchor: str,
                    inline: bool) -> Transaction:
    """A signed transaction for `data` (cut into `chunks`); the data rides in the header when `inline`."""
    root = chunks.data_root if len(data) else b""  # arweave-js leaves an empty payload without a root
    tx = Transaction(owner=wallet.owner, last_tx=anchor, reward=reward, data_root=root, data_size=chunks.data_size,
                     tags=tuple(tags), data=bytes(data) if inline else b"")
    return tx.signed(wallet)
