"""Manifest authorship: the author's EIP-712 signature over what identifies the content (seal id, content
root, key commitment, shard count) and the account that is to own the listing. The market verifies it at
registration (domain "deai-data manifest" version "2", no chain binding) and mints to that owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from ..errors import ManifestError

# eth_abi, eth_keys and eth_utils load on first use (~0.3 s): reading a manifest does not need them.
DOMAIN_NAME = "deai-data manifest"
DOMAIN_VERSION = "2"
AUTHORSHIP_TYPE = "Authorship(bytes32 sealId,bytes32 contentRoot,bytes32 keyCommitment,uint32 shardCount,address owner)"
MAX_SIGNATURE_SIZE = 1024  # ERC-1271 wallets may sign with more than 65 bytes; nothing needs more


@dataclass(frozen=True)
class Authorship:
    """Who wrote a dataset version and which account is to own its listing, with the author's signature.

    Addresses are lowercase 0x-hex (canonical in the manifest); the signature is 0x-hex.
    """

    author: str
    owner: str
    signature: str

    def to_dict(self) -> dict[str, str]:
        return {"author": self.author, "owner": self.owner, "signature": self.signature}


def is_address(value: Any) -> bool:
    """A lowercase 0x-prefixed 20-byte hex address (the manifest's canonical spelling)."""
    return isinstance(value, str) and len(value) == 42 and value.startswith("0x") and \
        all(c in "0123456789abcdef" for c in value[2:])


@cache
def domain_separator() -> bytes:
    """EIP-712 domain separator of authorship: name and version only (no chain, no contract)."""
    from eth_abi import encode as abi_encode
    from eth_utils import keccak
    return keccak(abi_encode(["bytes32", "bytes32", "bytes32"],
                             [keccak(text="EIP712Domain(string name,string version)"), keccak(text=DOMAIN_NAME),
                              keccak(text=DOMAIN_VERSION)]))


def authorship_digest(seal_id: str, content_root: str, key_commitment: str, shard_count: int, owner: str) -> bytes:
    """The EIP-712 digest the author signs (equal to `RegistrationRules.authorshipDigest` on-chain)."""
    from eth_abi import encode as abi_encode
    from eth_utils import keccak
    struct_hash = keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "bytes32", "uint32", "address"],
        [keccak(text=AUTHORSHIP_TYPE), bytes.fromhex(seal_id), bytes.fromhex(content_root),
         bytes.fromhex(key_commitment), shard_count, owner]))
    return keccak(b"\x19\x01" + domain_separator() + struct_hash)


def sign_authorship(account: Any, seal_id: str, content_root: str, key_commitment: str, shard_count: int,
                    owner: str | None = None) -> Authorship:
    """Sign as `account` (an eth-account LocalAccount); the listing is to be owned by `owner` (default: the
    author)."""
    author = account.address.lower()
    owner = (owner or author).lower()
    if not is_address(owner):
        raise ManifestError("must be a 0x-prefixed 20-byte address", field="authorship.owner")
    digest = authorship_digest(seal_id, content_root, key_commitment, shard_count, owner)
    signed = account.unsafe_sign_hash(digest)
    return Authorship(author, owner, "0x" + bytes(signed.signature).hex())


def recover_author(authorship: Authorship, seal_id: str, content_root: str, key_commitment: str,
                   shard_count: int) -> str | None:
    """The address whose ECDSA signature `authorship.signature` is over this content and owner (lowercase), or
    None when it is not a 65-byte ECDSA signature (a contract wallet's: only the chain can check it)."""
    from eth_keys import KeyAPI
    from eth_keys.exceptions import BadSignature, ValidationError

    raw = bytes.fromhex(authorship.signature[2:])
    if len(raw) != 65:
        return None
    digest = authorship_digest(seal_id, content_root, key_commitment, shard_count, authorship.owner)
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    try:
        key = KeyAPI.Signature(vrs=(v, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")))
        return key.recover_public_key_from_msg_hash(digest).to_checksum_address().lower()
    except (BadSignature, ValidationError, ValueError):
        return None
