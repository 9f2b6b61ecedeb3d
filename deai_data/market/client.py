"""The DataMarket client: deploy, register a published dataset, buy, deliver and receive keys, refund, withdraw.

Every call is simulated before it is signed, so a contract refusal surfaces as a `MarketError` naming the
contract's custom error, on the embedded chain and on any JSON-RPC node alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from ..chain.transact import RevertDecoder, Transactor
from ..crypto.key_delivery import delivery_info, new_purchase_key, open_sealed_key, seal_key
from ..crypto.keys import key_commitment
from ..crypto.keystore import DATA_KEY, Keystore
from ..dataset.publish import PublishResult
from ..dataset.reader import Dataset, fetch_manifest
from ..errors import ChainError, DeaiError, IntegrityError, KeyDeliveryError, MarketError
from ..formats.manifest import Manifest
from .artifact import artifact

PURCHASE_KEY = "purchase-key"
NATIVE = "0x" + "00" * 20
STATUSES = ("none", "pending", "delivered", "refunded")
DEFAULT_DELIVERY_WINDOW = 24 * 3600

HINTS = {
    "ContentRootTaken": "this sealed data is already registered; publish (re-seal) a new version to sell it",
    "UnknownDataset": "check the dataset id and the market address",
    "UnknownPurchase": "check the purchase id and the market address",
    "NotDatasetOwner": "only the dataset token's current owner can do this",
    "SalesArePaused": "the owner paused sales of this dataset",
    "PriceAboveMax": "the price changed; look at `deai-data market show` and buy again",
    "WrongPayment": "pay exactly the listed price (native currency) or nothing (ERC-20 datasets)",
    "TokenTransferMismatch": "fee-on-transfer and rebasing tokens are not supported as payment tokens",
    "NotPending": "this purchase was already delivered or refunded",
    "NotOwnerOrAgent": "run the key agent with the owner's account or one the owner authorised (set-agent)",
    "NotBuyer": "only the buyer's account can refund a purchase",
    "DeliveryWindowOpen": "the owner may still deliver; refund after the purchase's deadline",
    "DeliveryWindowClosed": "the deadline passed: the buyer can refund; the key can no longer be delivered",
    "NothingToWithdraw": "this account has no balance in that payment token",
    "NativeTransferFailed": "the account refuses native payments; its balance stays withdrawable",
    "SignatureExpired": "ask the owner for a registration signature with a later deadline",
    "InvalidSignature": "the signature is not the owner's over exactly these terms and the owner's current nonce",
    "DeliveryWindowOutOfRange": "choose a delivery window between 10 minutes and 90 days",
    "InvalidParameter": "the named field is empty or out of range",
    "FeeTooHigh": "the protocol fee is capped at 1000 basis points (10 %)",
}


@cache
def _hex32(value: str | bytes) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class Listing:
    """A registered dataset version as the chain records it."""

    dataset_id: int
    owner: str
    manifest_hash: str
    content_root: str
    key_commitment: str
    shard_count: int
    payment_token: str | None
    price: int
    delivery_window: int
    previous: int | None
    paused: bool
    manifest_uris: tuple[str, ...]
    license_uri: str
    registered_block: int


@dataclass(frozen=True)
class PurchaseInfo:
    """One purchase: its escrowed amount, deadline and status ("pending", "delivered" or "refunded")."""

    purchase_id: int
    dataset_id: int
    buyer: str
    amount: int
    deadline: int
    status: str
    purchased_block: int


class Market:
    """A DataMarket contract at `address`, used from `account` (None: read-only)."""

    def __init__(self, w3: Web3, address: str, account: LocalAccount | None = None, *,
                 keystore: Keystore | None = None, log_chunk: int = 2_000) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=artifact()["abi"])
        self.account = account
        self._keystore = keystore
        self.log_chunk = log_chunk
        self.decoder = RevertDecoder(artifact()["abi"], HINTS)
        self.chain_id = w3.eth.chain_id
        self._tx = Transactor(w3, account, self.decoder) if account is not None else None

    def __repr__(self) -> str:
        return f"Market({self.address} on chain {self.chain_id})"

    # ------------------------------------------------------------------ setup

    @classmethod
    def deploy(cls, w3: Web3, account: LocalAccount, *, treasury: str | None = None, fee_bps: int = 0,
               keystore: Keystore | None = None) -> Market:
        """Deploy a new market; fees (capped at 10 % by the contract) go to `treasury` (default: deployer)."""
        factory = w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
        tx = Transactor(w3, account, RevertDecoder(artifact()["abi"], HINTS))
        receipt = tx.send(factory.constructor(treasury or account.address, fee_bps), "deploy DataMarket")
        return cls(w3, receipt["contractAddress"], account, keystore=keystore)

    def using(self, account: LocalAccount) -> Market:
        """The same market used from another account (sharing the keystore)."""
        return Market(self.w3, self.address, account, keystore=self._keystore, log_chunk=self.log_chunk)

    @property
    def keystore(self) -> Keystore:
        if self._keystore is None:
            self._keystore = Keystore()
        return self._keystore

    def _sender(self) -> Transactor:
        if self._tx is None:
            raise ChainError("this Market has no account: it can only read",
                             hint="pass account= (deai_data.chain.load_account())")
        return self._tx

    def _send(self, fn: Any, action: str, *, value: int = 0) -> Any:
        return self._sender().send(fn, action, value=value)

    def _view(self, fn: Any, action: str) -> Any:
        try:
            return fn.call()
        except Exception as exc:
            raise self.decoder.error(exc, action) from None

    # ------------------------------------------------------------------ registration

    def registration(self, published: PublishResult | str, *, price: int, payment_token: str | None = None,
                     delivery_window: int = DEFAULT_DELIVERY_WINDOW, license_uri: str | None = None,
                     previous: int | None = None, manifest_uris: tuple[str, ...] = ()) -> dict[str, Any]:
        """The registration terms for a publish result (or a manifest URI), as the contract takes them."""
        if isinstance(published, PublishResult):
            manifest, manifest_hash = published.manifest, published.manifest_hash
            uris = manifest_uris or published.manifest_uris or (published.manifest_uri,)
        else:
            manifest, uri = fetch_manifest(published)
            manifest_hash = manifest.hash
            uris = manifest_uris or (uri,)
        return {
            "manifestHash": _hex32(manifest_hash),
            "contentRoot": _hex32(manifest.content_root),
            "keyCommitment": _hex32(manifest.key_commitment),
            "shardCount": len(manifest.shards),
            "paymentToken": Web3.to_checksum_address(payment_token or NATIVE),
            "price": int(price),
            "deliveryWindow": int(delivery_window),
            "previous": int(previous or 0),
            "manifestURIs": list(uris),
            "licenseURI": license_uri if license_uri is not None else manifest.license,
        }

    def register(self, published: PublishResult | str, *, price: int, **terms: Any) -> int:
        """Register a published dataset version for sale; returns its dataset id (the ERC-721 token id)."""
        reg = self.registration(published, price=price, **terms)
        receipt = self._send(self.contract.functions.register(reg), "register dataset")
        return self._event(receipt, "DatasetRegistered")["datasetId"]

    def sign_registration(self, registration: dict[str, Any], deadline: int) -> bytes:
        """The owner's EIP-712 signature over `registration`, for a relayer's `register_for`."""
        owner = self._sender().account
        nonce = self._view(self.contract.functions.nonces(owner.address), "read nonce")
        message = {"owner": owner.address, "registration": registration, "nonce": nonce, "deadline": deadline}
        typed = {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "Register": [{"name": "owner", "type": "address"}, {"name": "registration", "type": "Registration"},
                             {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}],
                "Registration": [{"name": n, "type": t} for n, t in _REGISTRATION_FIELDS],
            },
            "primaryType": "Register",
            "domain": {"name": "DataMarket", "version": "1", "chainId": self.chain_id,
                       "verifyingContract": self.address},
            "message": message,
        }
        return bytes(owner.sign_message(encode_typed_data(full_message=typed)).signature)

    def register_for(self, registration: dict[str, Any], owner: str, deadline: int, signature: bytes) -> int:
        """Register on the owner's behalf (this account pays the gas); the token goes to `owner`."""
        fn = self.contract.functions.registerFor(registration, Web3.to_checksum_address(owner), deadline, signature)
        return self._event(self._send(fn, "register dataset for owner"), "DatasetRegistered")["datasetId"]

    # ------------------------------------------------------------------ reading

    def listing(self, dataset_id: int) -> Listing:
        """A dataset version's on-chain record, with its manifest URIs and license from the registration event."""
        d = self._view(self.contract.functions.datasetInfo(dataset_id), f"read dataset {dataset_id}")
        block = d[8]
        event = self._logs("DatasetRegistered", block, block, datasetId=dataset_id)[0]["args"]
        owner = self._view(self.contract.functions.ownerOf(dataset_id), f"read owner of {dataset_id}")
        return Listing(
            dataset_id=dataset_id, owner=owner, manifest_hash=d[0].hex(), content_root=d[1].hex(),
            key_commitment=d[2].hex(), payment_token=None if int(d[3], 16) == 0 else d[3],
            delivery_window=d[4], shard_count=d[5], price=d[6], previous=d[7] or None, registered_block=block,
            paused=d[9], manifest_uris=tuple(event["manifestURIs"]), license_uri=event["licenseURI"],
        )

    def purchase_info(self, purchase_id: int) -> PurchaseInfo:
        p = self._view(self.contract.functions.purchaseInfo(purchase_id), f"read purchase {purchase_id}")
        return PurchaseInfo(purchase_id=purchase_id, buyer=p[0], deadline=p[1], status=STATUSES[p[2]],
                            amount=p[3], dataset_id=p[4], purchased_block=p[5])

    def verify_shard(self, dataset_id: int, shard_hash: str | bytes, index: int, proof: list[bytes]) -> bool:
        """Ask the contract whether a shard hash is shard `index` of a registered dataset."""
        fn = self.contract.functions.verifyShard(dataset_id, _hex32(shard_hash), index, [bytes(p) for p in proof])
        return bool(self._view(fn, "verify shard"))

    def fetch_manifest(self, dataset: int | Listing) -> tuple[Manifest, str]:
        """The dataset's manifest, from the first of its registered URIs that serves the registered hash."""
        listing = dataset if isinstance(dataset, Listing) else self.listing(dataset)
        failures = []
        for uri in listing.manifest_uris:
            try:
                return fetch_manifest(uri, manifest_hash=listing.manifest_hash)
            except DeaiError as exc:
                failures.append(f"{uri}: {exc}")
        raise MarketError(f"no registered URI of dataset {listing.dataset_id} served its manifest: "
                          f"{'; '.join(failures)}",
                          hint="the owner's storage is unreachable or serves altered data; try later or a mirror")

    def checked_manifest(self, dataset: int | str) -> tuple[Manifest, str]:
        """The manifest of a dataset id, or of a manifest URI, checked against the hash registered on-chain.

        A URI's manifest must be registered here (found by its content root) with exactly its hash."""
        if isinstance(dataset, int):
            return self.fetch_manifest(dataset)
        manifest, uri = fetch_manifest(dataset)
        fn = self.contract.functions.datasetByContentRoot(_hex32(manifest.content_root))
        dataset_id = self._view(fn, "look up content root")
        if dataset_id == 0 or self.listing(dataset_id).manifest_hash != manifest.hash:
            raise IntegrityError(f"manifest {manifest.hash} is not registered on market {self.address}",
                                 locator=uri, hint="open it by dataset id, or check the market and chain")
        return manifest, uri

    def open_dataset(self, dataset: int | str, *, key: bytes | str | None = None, **kwargs: Any) -> Dataset:
        """Open a purchased dataset by its on-chain id (or a manifest URI registered here): manifest from the
        chain's URIs, checked against the registered hash; key from `key` or the keystore (where
        `receive_key` put it)."""
        manifest, uri = self.checked_manifest(dataset)
        return Dataset(manifest, uri, key=key, keystore=None if key is not None else self.keystore, **kwargs)

    # ------------------------------------------------------------------ owner controls

    def set_price(self, dataset_id: int, price: int) -> None:
        self._send(self.contract.functions.setPrice(dataset_id, int(price)), f"set price of {dataset_id}")

    def set_paused(self, dataset_id: int, paused: bool) -> None:
        self._send(self.contract.functions.setPaused(dataset_id, paused), f"pause sales of {dataset_id}")

    def set_key_agent(self, agent: str, allowed: bool = True) -> None:
        """Allow (or stop) `agent` to deliver keys for every dataset this account owns."""
        self._send(self.contract.functions.setKeyAgent(Web3.to_checksum_address(agent), allowed), "set key agent")

    # ------------------------------------------------------------------ buying

    def purchase(self, dataset_id: int, *, max_price: int | None = None) -> PurchaseInfo:
        """Buy access: a fresh X25519 key pair (private key into the keystore), price into escrow."""
        listing = self.listing(dataset_id)
        limit = listing.price if max_price is None else int(max_price)
        private_key, public_key = new_purchase_key()
        self.keystore.put(PURCHASE_KEY, public_key.hex(), private_key,
                          {"chain_id": self.chain_id, "market": self.address, "dataset_id": dataset_id})
        if listing.payment_token is not None:
            self._approve(listing.payment_token, listing.price)
        value = listing.price if listing.payment_token is None else 0
        fn = self.contract.functions.purchase(dataset_id, public_key, limit)
        receipt = self._send(fn, f"purchase dataset {dataset_id}", value=value)
        return self.purchase_info(self._event(receipt, "Purchased")["purchaseId"])

    def _approve(self, token: str, amount: int) -> None:
        erc20 = self.w3.eth.contract(address=Web3.to_checksum_address(token), abi=_ERC20_ABI)
        owner = self._sender().account.address
        if erc20.functions.allowance(owner, self.address).call() < amount:
            self._send(erc20.functions.approve(self.address, amount), f"approve {token}")

    def receive_key(self, purchase_id: int, *, timeout: float = 0.0, poll: float = 1.0) -> bytes:
        """Wait up to `timeout` s for the key, unseal it, check it against the on-chain key commitment, and
        keep it in the keystore under the manifest hash (so `open_dataset` finds it)."""
        info = self._await_settled(purchase_id, timeout, poll)
        delivered = self._logs("KeyDelivered", info.purchased_block, self.w3.eth.block_number,
                               purchaseId=purchase_id)
        if not delivered:
            raise KeyDeliveryError(f"purchase {purchase_id} is delivered but its KeyDelivered event was not found",
                                   hint="the node may have pruned logs; use an archive RPC")
        sealed = bytes(delivered[-1]["args"]["sealedKey"])
        private_key = self.keystore.get(PURCHASE_KEY, self._buyer_public_key(info).hex())
        data_key = open_sealed_key(sealed, private_key, delivery_info(self.chain_id, self.address, purchase_id))
        listing = self.listing(info.dataset_id)
        manifest, _ = self.fetch_manifest(listing)
        if key_commitment(data_key, bytes.fromhex(manifest.dataset_id)).hex() != listing.key_commitment:
            raise KeyDeliveryError(
                f"the key delivered for purchase {purchase_id} does not match dataset {info.dataset_id}'s "
                "registered key commitment: it cannot open the data",
                hint="the owner delivered a wrong key. The contract released the escrow on delivery (it cannot "
                     "check sealed keys), so this is a claim against the owner: the purchase's KeyDelivered event "
                     "and its key (`deai-data keys export PUBLIC_KEY --kind purchase-key`) are the evidence. "
                     "Purchases whose key never came are refunded with `deai-data market refund PURCHASE_ID` "
                     "after the deadline")
        self.keystore.put(DATA_KEY, listing.manifest_hash, data_key,
                          {"name": manifest.name, "dataset_id": manifest.dataset_id,
                           "market": self.address, "chain_id": self.chain_id, "purchase_id": purchase_id})
        return data_key

    def _await_settled(self, purchase_id: int, timeout: float, poll: float) -> PurchaseInfo:
        deadline = time.monotonic() + timeout
        while True:
            info = self.purchase_info(purchase_id)
            if info.status == "delivered":
                return info
            if info.status == "refunded":
                raise KeyDeliveryError(f"purchase {purchase_id} was refunded; no key will come")
            if time.monotonic() >= deadline:
                now = self.w3.eth.get_block("latest")["timestamp"]
                when = ("the deadline passed: refund it with `deai-data market refund "
                        f"{purchase_id}`") if now > info.deadline else \
                    f"the owner has until {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(info.deadline))}"
                raise KeyDeliveryError(f"the key for purchase {purchase_id} has not been delivered yet", hint=when)
            time.sleep(poll)

    def _buyer_public_key(self, info: PurchaseInfo) -> bytes:
        logs = self._logs("Purchased", info.purchased_block, info.purchased_block, purchaseId=info.purchase_id)
        return bytes(logs[0]["args"]["buyerPublicKey"])

    def refund(self, purchase_id: int, *, withdraw: bool = True) -> int:
        """Refund an undelivered purchase after its deadline; with `withdraw`, also pull the money."""
        receipt = self._send(self.contract.functions.refund(purchase_id), f"refund purchase {purchase_id}")
        event = self._event(receipt, "Refunded")
        if withdraw and event["amount"]:
            self.withdraw(event["paymentToken"])
        return event["amount"]

    # ------------------------------------------------------------------ selling

    def deliver_key(self, purchase: int | PurchaseInfo, data_key: bytes | None = None) -> Any:
        """Seal the dataset's key to the buyer's public key and deliver it (releases the escrow).

        `purchase` is a purchase id or its already-read `PurchaseInfo`. The key comes from the keystore by
        manifest hash unless given; it is checked against the on-chain key commitment first, so a wrong
        key is never delivered.
        """
        info = purchase if isinstance(purchase, PurchaseInfo) else self.purchase_info(purchase)
        purchase_id = info.purchase_id
        listing = self.listing(info.dataset_id)
        if data_key is None:
            data_key = self.keystore.get(DATA_KEY, listing.manifest_hash)
        entry = self.keystore.entry(DATA_KEY, listing.manifest_hash)
        dataset_id = entry.meta.get("dataset_id") if entry else None
        if dataset_id is None:
            dataset_id = self.fetch_manifest(listing)[0].dataset_id
        if key_commitment(bytes(data_key), bytes.fromhex(dataset_id)).hex() != listing.key_commitment:
            raise KeyDeliveryError(f"the key for dataset {info.dataset_id} does not match its key commitment",
                                   hint="refusing to deliver a key that cannot open the data")
        sealed = seal_key(data_key, self._buyer_public_key(info),
                          delivery_info(self.chain_id, self.address, purchase_id))
        return self._send(self.contract.functions.deliverKey(purchase_id, sealed), f"deliver key {purchase_id}")

    def withdrawable(self, account: str | None = None, token: str | None = None) -> int:
        who = account or self._sender().account.address
        return self._view(self.contract.functions.withdrawable(who, Web3.to_checksum_address(token or NATIVE)),
                          "read balance")

    def withdraw(self, token: str | None = None) -> int:
        """Pull this account's whole balance in `token` (None: native currency); returns the amount."""
        fn = self.contract.functions.withdraw(Web3.to_checksum_address(token or NATIVE))
        return self._event(self._send(fn, "withdraw"), "Withdrawn")["amount"]

    def withdraw_fees(self, token: str | None = None) -> int:
        fn = self.contract.functions.withdrawFees(Web3.to_checksum_address(token or NATIVE))
        return self._event(self._send(fn, "withdraw fees"), "FeesWithdrawn")["amount"]

    # ------------------------------------------------------------------ events

    def _event(self, receipt: Any, name: str) -> dict[str, Any]:
        for decoded in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD):
            if decoded["address"] == self.address:
                return dict(decoded["args"])
        raise ChainError(f"transaction {receipt['transactionHash'].hex()} emitted no {name} event")

    def _logs(self, name: str, from_block: int, to_block: int, **filters: Any) -> list[Any]:
        """Decoded `name` events in [from_block, to_block], fetched in chunks of `log_chunk` blocks."""
        event = getattr(self.contract.events, name)()
        found: list[Any] = []
        start = from_block
        while start <= to_block:
            end = min(to_block, start + self.log_chunk - 1)
            found.extend(event.get_logs(from_block=start, to_block=end, argument_filters=filters or None))
            start = end + 1
        return found

    def events(self, name: str, from_block: int, to_block: int | None = None, **filters: Any) -> list[Any]:
        """Decoded events of one kind in a block range (inclusive), optionally filtered by indexed fields."""
        return self._logs(name, from_block, self.w3.eth.block_number if to_block is None else to_block, **filters)


_REGISTRATION_FIELDS = (
    ("manifestHash", "bytes32"), ("contentRoot", "bytes32"), ("keyCommitment", "bytes32"),
    ("shardCount", "uint32"), ("paymentToken", "address"), ("price", "uint128"), ("deliveryWindow", "uint64"),
    ("previous", "uint256"), ("manifestURIs", "string[]"), ("licenseURI", "string"),
)

_ERC20_ABI = [
    {"type": "function", "name": "allowance", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]
