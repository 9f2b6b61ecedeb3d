"""The DataMarket client: deploy, register signed versions, buy or subscribe, deliver, receive and dispute keys,
settle, refund, withdraw.

Every call is simulated before it is signed, so a contract refusal surfaces as a `MarketError` naming the
contract's custom error. Before paying, and whenever a dataset is opened by id, the on-chain record is
checked against the manifest (hash, content root, seal id, shard count, key commitment, author).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from ..chain.transact import RevertDecoder, Transactor
from ..crypto.key_delivery import (
    Delivery,
    DeliveryContext,
    buyer_key_hash,
    dispute_proof,
    new_purchase_key,
    open_delivery,
    seal_key,
)
from ..crypto.keys import key_commitment
from ..crypto.keystore import DATA_KEY, Keystore
from ..dataset.publish import PublishResult
from ..dataset.reader import Dataset, fetch_manifest
from ..errors import ChainError, DeaiError, DecryptionError, IntegrityError, KeyDeliveryError, MarketError, UsageError
from ..formats.license import canonical_license
from ..formats.manifest import Manifest
from .artifact import artifact
from .defaults import DEFAULT_CHALLENGE_PERIOD, DEFAULT_DELIVERY_WINDOW

PURCHASE_KEY = "purchase-key"
NATIVE = "0x" + "00" * 20
STATUSES = ("none", "pending", "delivered", "settled", "refunded", "subscribed")

HINTS = {
    "AlreadyRegistered": "this author already registered this content here; use its dataset id",
    "NotOwner": "send the registration from the account the author named as owner (or use register_for)",
    "InvalidAuthorSignature": "the manifest's authorship signature is not the author's over this content and owner",
    "UnknownDataset": "check the dataset id and the market address",
    "UnknownPurchase": "check the purchase id and the market address",
    "NotDatasetOwner": "only the dataset token's current owner can do this",
    "SalesArePaused": "the owner paused sales of this dataset (a transfer pauses them until the new owner resumes)",
    "PriceAboveMax": "the price changed; look at `deai-data market show` and buy again",
    "WrongPayment": "send at least the listed price (native currency) or nothing (ERC-20 datasets)",
    "TokenTransferMismatch": "fee-on-transfer and rebasing tokens are not supported as payment tokens",
    "InvalidBuyerKey": "the purchase key is not a secp256k1 point",
    "WrongStatus": "the purchase is not in the state this needs (pending, delivered, settled or refunded)",
    "NotSellerOrAgent": "deliver from the seller's account or a key agent the seller authorised (set-agent)",
    "NotBuyer": "only the buyer's account can do this",
    "WrongBuyerKey": "the delivery was made for another purchase key (a reorg or a replay): deliver again",
    "InvalidDelivery": "the ephemeral key is not a valid point",
    "DeliveryWindowOpen": "the owner may still deliver; refund after the purchase's deadline",
    "DeliveryWindowClosed": "the deadline passed: the buyer can refund; the key can no longer be delivered",
    "ChallengePeriodOpen": "the buyer may still dispute; settle after the challenge period",
    "ChallengePeriodOver": "the challenge period is over: the delivery stands",
    "DeliveryMismatch": "the proof does not describe what was delivered for this purchase",
    "InvalidProof": "the dispute proof does not check out (wrong secret or shared point)",
    "NothingToWithdraw": "this account has no balance in that payment token",
    "NativeTransferFailed": "the account refuses native payments; its balance stays withdrawable",
    "SignatureExpired": "ask the owner for a registration signature with a later deadline",
    "InvalidSignature": "the signature is not the owner's over exactly these terms, nonce and deadline",
    "NonceUsed": "that registration nonce was used or cancelled; sign with another",
    "OutOfRange": "the named value is out of the allowed range",
    "TooLong": "the named field is longer than the contract allows",
    "InvalidParameter": "the named field is empty or out of range",
    "FeeTooHigh": "the protocol fee is capped at 1000 basis points (10 %)",
    "SplitLocked": "the dataset's revenue split was locked: it can never change again",
    "InvalidSplit": "shares must sum to 10000 basis points, at most 16 payees, and only a non-empty split locks",
    "InvalidPayee": "payees must be distinct non-zero addresses, each with a share above zero",
    "InvalidReferrer": "a referrer needs a rate and a rate a referrer, at most 500 basis points",
    "PermitForNativeListing": "permits are for ERC-20 listings; pay native currency with the transaction",
    "NotAuthor": "only the dataset's author (the manifest's signer) sets its royalty",
    "NoSubscriptionPlan": "the owner sells no subscription to this dataset (set-plan); buy the version instead",
    "NotSubscription": "renew one of your own subscriptions to the same dataset",
    "TermOver": "the subscription's term is over: renew it (`deai-data market subscribe ID --renews SUB`)",
    "TermRunning": "a subscription is settled after its term ends",
    "NotCovered": "a subscription covers versions registered in its term that descend from the subscribed one",
    "AlreadyClaimed": "this version was claimed under this subscription already: receive its key",
    "ClaimsOpen": "settle the subscription's claims first (each after its own challenge period)",
}


def _hex32(value: str | bytes) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise MarketError(f"expected 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class Listing:
    """A registered dataset version as the chain records it (`dataset_id` is the ERC-721 token id)."""

    dataset_id: int
    owner: str
    author: str
    manifest_hash: str
    content_root: str
    key_commitment: str
    seal_id: str
    shard_count: int
    payment_token: str | None
    price: int
    delivery_window: int
    challenge_period: int
    supersedes: int | None
    paused: bool
    manifest_uris: tuple[str, ...]
    license_uri: str
    registered_block: int
    key_link: str | None = None
    """Set when this version inherits shards of `supersedes`: how its key opens that version's."""


@dataclass(frozen=True)
class PurchaseInfo:
    """One purchase. `status` is "pending", "delivered", "settled" or "refunded"; `deadline` is the delivery
    deadline while pending and the end of the challenge period once delivered (unix time)."""

    purchase_id: int
    dataset_id: int
    seller: str
    buyer: str
    amount: int
    deadline: int
    status: str
    binding: str
    has_terms: bool = False


@dataclass(frozen=True)
class SubscriptionInfo:
    """One subscription: access to `dataset_id` and every later version of it registered from `start_block` until
    `expires` (unix time). `status` is "subscribed" while the price waits in escrow, then "settled" (paid to the
    seller after the term, once every claim under it settled) or "refunded" (a claim under it was refunded)."""

    subscription_id: int
    dataset_id: int
    seller: str
    subscriber: str
    price: int
    expires: int
    status: str
    start_block: int
    open_claims: int


@dataclass(frozen=True)
class RevenueSplit:
    """Who new sales of a dataset pay: payee address -> basis points (summing to 10,000; empty: the owner), and
    whether the split is locked for good."""

    shares: dict[str, int]
    locked: bool


@dataclass(frozen=True)
class PurchaseTerms:
    """What a purchase is paid out by, fixed when it was made: its split (0: the seller) and referrer's fee."""

    split_id: int
    referrer: str | None
    referrer_bps: int


def check_listing(listing: Listing, manifest: Manifest) -> None:
    """Raise IntegrityError naming the first field where the on-chain record and the manifest differ."""
    if manifest.authorship is None:
        raise IntegrityError(f"dataset {listing.dataset_id}'s manifest is unsigned (version {manifest.version})",
                             hint="a listing must point at a manifest signed by its author")
    pairs = [("manifest_hash", listing.manifest_hash, manifest.hash),
             ("content_root", listing.content_root, manifest.content_root),
             ("seal_id", listing.seal_id, manifest.seal_id),
             ("shard_count", listing.shard_count, len(manifest.shards)),
             ("key_commitment", listing.key_commitment, manifest.key_commitment),
             ("author", listing.author.lower(), manifest.authorship.author),
             ("key_link", listing.key_link, manifest.lineage.key_link if manifest.lineage else None)]
    for name, on_chain, in_manifest in pairs:
        if on_chain != in_manifest:
            raise IntegrityError(f"dataset {listing.dataset_id}: the on-chain {name} ({on_chain}) differs from the "
                                 f"manifest's ({in_manifest})",
                                 hint="the listing copies or misdescribes another dataset; nothing was paid")


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
        self.decoder = RevertDecoder(artifact()["abi"], HINTS, error_type=MarketError)
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
        tx = Transactor(w3, account, RevertDecoder(artifact()["abi"], HINTS, error_type=MarketError))
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

    @property
    def me(self) -> str:
        return self._sender().account.address

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

    def _context(self, purchase_id: int) -> DeliveryContext:
        return DeliveryContext(self.chain_id, self.address, purchase_id)

    # ------------------------------------------------------------------ registration

    def registration(self, published: PublishResult | str, *, price: int, payment_token: str | None = None,
                     delivery_window: int = DEFAULT_DELIVERY_WINDOW,
                     challenge_period: int = DEFAULT_CHALLENGE_PERIOD, license_uri: str | None = None,
                     supersedes: int | None = None,
                     manifest_uris: tuple[str, ...] = ()) -> tuple[dict[str, Any], bytes]:
        """The registration terms for a signed publish result (or manifest URI) as the contract takes them,
        and the author's signature from the manifest."""
        if isinstance(published, PublishResult):
            manifest = published.manifest
            uris = manifest_uris or published.manifest_uris or (published.manifest_uri,)
        else:
            manifest, uri = fetch_manifest(published)
            uris = manifest_uris or (uri,)
        if manifest.authorship is None:
            raise MarketError(f"manifest {manifest.hash} is unsigned: only an author-signed manifest can be sold",
                              hint="publish with author=account (CLI: deai-data publish --sign)")
        if manifest.lineage is not None and not supersedes:
            raise UsageError(f"manifest {manifest.hash} inherits shards of an earlier version: register it with "
                             "supersedes= that version's dataset id", hint="CLI: --supersedes ID")
        authorship = manifest.authorship
        if license_uri:  # what the chain records must be machine-readable, as a new manifest's licence is
            license_uri = canonical_license(license_uri, field="license_uri", error=MarketError)
        registration = {
            "manifestHash": _hex32(manifest.hash),
            "contentRoot": _hex32(manifest.content_root),
            "keyCommitment": _hex32(manifest.key_commitment),
            "sealId": _hex32(manifest.seal_id),
            "shardCount": len(manifest.shards),
            "author": Web3.to_checksum_address(authorship.author),
            "owner": Web3.to_checksum_address(authorship.owner),
            "paymentToken": Web3.to_checksum_address(payment_token or NATIVE),
            "price": int(price),
            "deliveryWindow": int(delivery_window),
            "challengePeriod": int(challenge_period),
            "supersedes": int(supersedes or 0),
            "keyLink": _hex32(manifest.lineage.key_link) if manifest.lineage else bytes(32),
            "manifestURIs": list(uris),
            "licenseURI": license_uri if license_uri is not None else manifest.license,
        }
        return registration, bytes.fromhex(authorship.signature[2:])

    def register(self, published: PublishResult | str, *, price: int, split: dict[str, int] | None = None,
                 lock_split: bool = False, **terms: Any) -> int:
        """Register a signed dataset version for sale from its owner's account; returns its dataset id.

        If the same registration is already on-chain (a relayer or a front-runner sent it first: the token
        is the owner's either way), returns that dataset id. `split` (address -> basis points) is set in the
        next transaction (`set_revenue_split`; sales mined in between pay the owner), locked with `lock_split`."""
        registration, author_signature = self.registration(published, price=price, **terms)
        try:
            receipt = self._send(self.contract.functions.register(registration, author_signature),
                                 "register dataset")
            dataset_id: int = self._event(receipt, "DatasetRegistered")["datasetId"]
        except MarketError as exc:
            if exc.error != "AlreadyRegistered":
                raise
            dataset_id = int(exc.error_args["datasetId"])
            if self.listing(dataset_id).manifest_hash != registration["manifestHash"].hex():
                raise
        if split:
            self.set_revenue_split(dataset_id, split, lock=lock_split)
        return dataset_id

    def sign_registration(self, registration: dict[str, Any], nonce: int, deadline: int) -> bytes:
        """The owner's EIP-712 signature over `registration`, `nonce` (any unused number) and `deadline`, for a
        relayer's `register_for`."""
        owner = self._sender().account
        typed = {
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "Register": [{"name": "registration", "type": "Registration"},
                             {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}],
                "Registration": [{"name": n, "type": t} for n, t in _REGISTRATION_FIELDS],
            },
            "primaryType": "Register",
            "domain": {"name": "DataMarket", "version": "2", "chainId": self.chain_id,
                       "verifyingContract": self.address},
            "message": {"registration": registration, "nonce": nonce, "deadline": deadline},
        }
        return bytes(owner.sign_message(encode_typed_data(full_message=typed)).signature)

    def register_for(self, registration: dict[str, Any], author_signature: bytes, nonce: int, deadline: int,
                     owner_signature: bytes) -> int:
        """Register on the owner's behalf (this account pays the gas); the token goes to the signed owner."""
        fn = self.contract.functions.registerFor(registration, author_signature, nonce, deadline, owner_signature)
        return self._event(self._send(fn, "register dataset for owner"), "DatasetRegistered")["datasetId"]

    def cancel_nonce(self, nonce: int) -> None:
        """Burn a registration nonce, so that a signature using it can never be sent."""
        self._send(self.contract.functions.cancelNonce(nonce), f"cancel nonce {nonce}")

    # ------------------------------------------------------------------ reading

    def listing(self, dataset_id: int) -> Listing:
        """A dataset version's on-chain record, with its manifest URIs and license from the registration event."""
        d = self._view(self.contract.functions.datasetInfo(dataset_id), f"read dataset {dataset_id}")
        block = d[6]
        event = self._logs("DatasetRegistered", block, block, datasetId=dataset_id)[0]["args"]
        owner = self._view(self.contract.functions.ownerOf(dataset_id), f"read owner of {dataset_id}")
        return Listing(
            dataset_id=dataset_id, owner=owner, author=d[14], manifest_hash=d[0].hex(), content_root=d[1].hex(),
            key_commitment=d[2].hex(), seal_id=d[3].hex(), payment_token=None if int(d[4], 16) == 0 else d[4],
            price=d[5], registered_block=block, paused=d[7], shard_count=d[8], delivery_window=d[9],
            challenge_period=d[10], supersedes=d[11] or None, manifest_uris=tuple(event["manifestURIs"]),
            license_uri=event["licenseURI"], key_link=d[15].hex() if any(d[15]) else None,
        )

    def purchase_info(self, purchase_id: int) -> PurchaseInfo:
        p = self._view(self.contract.functions.purchaseInfo(purchase_id), f"read purchase {purchase_id}")
        return PurchaseInfo(purchase_id=purchase_id, seller=p[0], deadline=p[1], status=STATUSES[p[2]],
                            dataset_id=p[3], has_terms=p[4], buyer=p[5], amount=p[6], binding=p[7].hex())

    def purchase_terms(self, purchase_id: int) -> PurchaseTerms:
        split_id, referrer, bps = self._view(self.contract.functions.purchaseTerms(purchase_id),
                                             f"read purchase {purchase_id}'s terms")
        return PurchaseTerms(split_id, None if int(referrer, 16) == 0 else referrer, bps)

    def revenue_split(self, dataset_id: int) -> RevenueSplit:
        payees, locked = self._view(self.contract.functions.revenueSplit(dataset_id), f"read dataset {dataset_id}")
        return RevenueSplit({account: share for account, share in payees}, locked)

    def royalty(self, dataset_id: int, sale_price: int) -> tuple[str | None, int]:
        """ERC-2981: who receives how much of a resale of the dataset's token at `sale_price` (None, 0: none)."""
        receiver, amount = self._view(self.contract.functions.royaltyInfo(dataset_id, sale_price), "read royalty")
        return (None if int(receiver, 16) == 0 else receiver), amount

    def disputes_lost(self, seller: str) -> int:
        """How many disputes `seller` lost (deliveries the contract judged wrong)."""
        return self._view(self.contract.functions.disputesLost(Web3.to_checksum_address(seller)), "read disputes")

    def verify_shard(self, dataset_id: int, shard_hash: str | bytes, index: int, proof: list[bytes]) -> bool:
        """Ask the contract whether a shard hash is shard `index` of a registered dataset."""
        fn = self.contract.functions.verifyShard(dataset_id, _hex32(shard_hash), index, [bytes(p) for p in proof])
        return bool(self._view(fn, "verify shard"))

    def fetch_manifest(self, dataset: int | Listing) -> tuple[Manifest, str]:
        """The dataset's manifest, from the first registered URI that serves the registered hash, checked against
        the whole on-chain record (`check_listing`)."""
        listing = dataset if isinstance(dataset, Listing) else self.listing(dataset)
        failures = []
        for uri in listing.manifest_uris:
            try:
                manifest, found = fetch_manifest(uri, manifest_hash=listing.manifest_hash, trusted=False)
            except DeaiError as exc:
                failures.append(f"{uri}: {exc}")
                continue
            check_listing(listing, manifest)
            self._check_lineage(listing, manifest)
            return manifest, found
        raise MarketError(f"no registered URI of dataset {listing.dataset_id} served its manifest: "
                          f"{'; '.join(failures)}",
                          hint="the owner's storage is unreachable or serves altered data; try later or a mirror")

    def checked_manifest(self, dataset: int | str) -> tuple[Manifest, str]:
        """The manifest of a dataset id, or of a manifest URI, checked against its on-chain record.

        A URI's manifest must be registered here by its author (found by author and content root) with
        exactly its hash."""
        if isinstance(dataset, int):
            return self.fetch_manifest(dataset)
        manifest, uri = fetch_manifest(dataset)
        if manifest.authorship is None:
            raise IntegrityError(f"manifest {manifest.hash} is unsigned, so it cannot be registered",
                                 locator=uri, hint="open it by dataset id, or directly with deai_data.open_dataset")
        fn = self.contract.functions.datasetByContent(Web3.to_checksum_address(manifest.authorship.author),
                                                      _hex32(manifest.content_root))
        dataset_id = self._view(fn, "look up content")
        if dataset_id == 0:
            raise IntegrityError(f"manifest {manifest.hash} is not registered on market {self.address}",
                                 locator=uri, hint="open it by dataset id, or check the market and chain")
        listing = self.listing(dataset_id)
        check_listing(listing, manifest)
        self._check_lineage(listing, manifest)
        return manifest, uri

    def _check_lineage(self, listing: Listing, manifest: Manifest) -> None:
        """The earlier versions a manifest inherits shards from are the ones on-chain down `supersedes`, with
        the registered seal ids, key commitments and key links (what a dispute checks), else IntegrityError."""
        if manifest.lineage is None:
            return
        version = listing
        for depth, generation in enumerate(manifest.lineage.generations, start=1):
            if version.supersedes is None:
                raise IntegrityError(f"dataset {listing.dataset_id}'s manifest inherits from {depth} versions back; "
                                     f"the chain has {depth - 1}", hint="nothing was paid")
            version = self.listing(version.supersedes)
            recorded = (version.seal_id, version.key_commitment, version.key_link)
            claimed = (generation.seal_id, generation.key_commitment, generation.key_link)
            if recorded != claimed and not (generation.key_link is None and recorded[:2] == claimed[:2]):
                raise IntegrityError(f"dataset {listing.dataset_id}: generation {depth} of its manifest's lineage "
                                     f"differs from dataset {version.dataset_id} on-chain",
                                     hint="the manifest points its key at another version; nothing was paid")

    def lineage(self, dataset_id: int) -> list[int]:
        """`dataset_id` and every version that descends from it through `supersedes` (each registered by the owner,
        at that time, of the version it replaces: the contract checks), in registration order."""
        return sorted(self._descendants(dataset_id))

    def _descendants(self, dataset_id: int) -> dict[int, int]:
        """{version: block it was registered in} for `dataset_id` and every version descending from it."""
        registered = self._registered_block(dataset_id)
        family = {dataset_id: registered}
        for log in sorted(self._logs("DatasetRegistered", registered, self.w3.eth.block_number),
                          key=lambda log: log["args"]["datasetId"]):
            if log["args"]["supersedes"] in family:
                family[log["args"]["datasetId"]] = log["blockNumber"]
        return family

    def latest_version(self, dataset_id: int) -> int:
        """The newest version in `dataset_id`'s lineage (the highest id: with two versions replacing one, the one
        registered last)."""
        return self.lineage(dataset_id)[-1]

    def open_dataset(self, dataset: int | str, *, key: bytes | str | None = None, version: str | None = None,
                     **kwargs: Any) -> Dataset:
        """Open a purchased dataset by its on-chain id (or a manifest URI registered here): manifest from the
        chain's URIs, checked against the on-chain record; key from `key` or the keystore (where
        `receive_key` put it). `version="latest"` opens the newest version that descends from the id instead."""
        if version is not None:
            if version != "latest" or not isinstance(dataset, int):
                raise UsageError('version= takes "latest", with a dataset id',
                                 hint="open an earlier version by its own dataset id")
            dataset = self.latest_version(dataset)
        manifest, uri = self.checked_manifest(dataset)
        return Dataset(manifest, uri, key=key, keystore=None if key is not None else self.keystore, **kwargs)

    # ------------------------------------------------------------------ owner controls

    def set_price(self, dataset_id: int, price: int) -> None:
        self._send(self.contract.functions.setPrice(dataset_id, int(price)), f"set price of {dataset_id}")

    def set_paused(self, dataset_id: int, paused: bool) -> None:
        self._send(self.contract.functions.setPaused(dataset_id, paused), f"pause sales of {dataset_id}")

    def set_revenue_split(self, dataset_id: int, shares: dict[str, int] | None, *, lock: bool = False) -> int:
        """Pay new sales of `dataset_id` to `shares` (address -> basis points, summing to 10,000; None or empty:
        the owner again). Sales already made keep their split. `lock`: never changeable again, by anyone.
        Returns the split id purchases record."""
        payees = sorted(((Web3.to_checksum_address(a), int(bps)) for a, bps in (shares or {}).items()),
                        key=lambda item: int(item[0], 16))  # the contract takes payees ascending
        if payees and sum(bps for _, bps in payees) != 10_000:
            raise UsageError(f"the shares sum to {sum(bps for _, bps in payees)} basis points, not 10000")
        fn = self.contract.functions.setRevenueSplit(dataset_id, [a for a, _ in payees], [b for _, b in payees], lock)
        return self._event(self._send(fn, f"set the revenue split of {dataset_id}"), "RevenueSplitSet")["splitId"]

    def set_royalty(self, dataset_id: int, receiver: str | None, bps: int) -> None:
        """Set the ERC-2981 royalty on resales of the dataset's token (the author's account only; 0: none)."""
        fn = self.contract.functions.setRoyalty(dataset_id, Web3.to_checksum_address(receiver or NATIVE), bps)
        self._send(fn, f"set the royalty of {dataset_id}")

    def set_key_agent(self, agent: str, allowed: bool = True) -> None:
        """Allow (or stop) `agent` to deliver keys for purchases this account sells."""
        self._send(self.contract.functions.setKeyAgent(Web3.to_checksum_address(agent), allowed), "set key agent")

    # ------------------------------------------------------------------ buying

    def purchase(self, dataset_id: int, *, max_price: int | None = None, referrer: str | None = None,
                 referrer_bps: int = 0, permit: bool = False) -> PurchaseInfo:
        """Buy access: the listing is checked against its manifest first (nothing is paid on a mismatch),
        then a fresh one-time key pair (secret into the keystore) and the price into escrow. Native currency:
        up to `max_price` is sent and whatever the price is below it comes straight back.

        `referrer`/`referrer_bps`: the front-end this purchase came through takes that share of the price on top
        (escrowed with it, paid at settlement, refunded with it; `max_price` covers both). `permit`: an ERC-20
        listing is paid with an EIP-2612 permit signed here, in one transaction (no approve)."""
        listing = self.listing(dataset_id)
        if permit and listing.payment_token is None:
            raise UsageError(f"dataset {dataset_id} is priced in native currency: a permit is for ERC-20 listings")
        self.fetch_manifest(listing)
        total = _with_referrer_fee(listing.price, referrer_bps)
        limit = total if max_price is None else int(max_price)
        public_key = self._new_purchase_key(dataset_id)
        signed_permit = (0, 0, 0, b"\0" * 32, b"\0" * 32)
        if listing.payment_token is not None and permit:
            signed_permit = self._permit(listing.payment_token, total, limit)
        elif listing.payment_token is not None:
            self._approve(listing.payment_token, total, limit)
        value = limit if listing.payment_token is None else 0
        if referrer is None and not referrer_bps and not permit:
            fn = self.contract.functions.purchase(dataset_id, public_key[:32], public_key[32:], limit)
        else:
            fn = self.contract.functions.purchaseWith(
                dataset_id, public_key[:32], public_key[32:], limit, Web3.to_checksum_address(referrer or NATIVE),
                int(referrer_bps), signed_permit)
        receipt = self._send(fn, f"purchase dataset {dataset_id}", value=value)
        event = self._recorded_purchase(receipt, public_key)
        if value > _with_referrer_fee(event["amount"], referrer_bps):
            self.withdraw()  # the price fell before the purchase was mined: take the difference back
        return self.purchase_info(event["purchaseId"])

    def _new_purchase_key(self, dataset_id: int) -> bytes:
        """A fresh one-time purchase key pair: the secret into the keystore, the public key (x || y) returned."""
        secret, public_key = new_purchase_key()
        meta = {"chain_id": self.chain_id, "market": self.address, "dataset_id": dataset_id}
        self.keystore.put(PURCHASE_KEY, public_key.hex(), secret, meta)
        return bytes(public_key)

    def _recorded_purchase(self, receipt: Any, public_key: bytes) -> dict[str, Any]:
        """The `Purchased` event of a mined purchase or claim, its id and block noted with its key's secret."""
        event = self._event(receipt, "Purchased")
        secret = self.keystore.get(PURCHASE_KEY, public_key.hex())
        meta = {"chain_id": self.chain_id, "market": self.address, "dataset_id": event["datasetId"],
                "purchase_id": event["purchaseId"], "block": receipt["blockNumber"]}
        self.keystore.put(PURCHASE_KEY, public_key.hex(), secret, meta)
        return event

    # ------------------------------------------------------------------ subscriptions

    def set_subscription_plan(self, dataset_id: int, price: int, term: int) -> None:
        """Sell access to `dataset_id` and every later version of it for `term` seconds at `price` (in the
        dataset's payment token; term 0 withdraws the plan). Subscriptions already sold keep their terms."""
        self._send(self.contract.functions.setSubscriptionPlan(dataset_id, int(price), int(term)),
                   f"set the subscription plan of {dataset_id}")

    def subscription_plan(self, dataset_id: int) -> tuple[int, int] | None:
        """(price, term in seconds) of a dataset's subscription plan, or None when it has none."""
        price, term = self._view(self.contract.functions.subscriptionPlans(dataset_id), "read plan")
        return (price, term) if term else None

    def subscribe(self, dataset_id: int, *, max_price: int | None = None,
                  renews: int | None = None) -> SubscriptionInfo:
        """Pay a dataset's subscription price into escrow for its term (from where subscription `renews` ends, if
        later than now). The listing is checked against its manifest first. Claim each new version with `claim`
        (or `claim_new`): the key agent delivers it like a purchase. The price is paid to the seller after the term
        once every claim settled, and refunded in full if any claim is refunded."""
        listing = self.listing(dataset_id)
        plan = self.subscription_plan(dataset_id)
        if plan is None:
            raise MarketError(f"dataset {dataset_id} has no subscription plan", hint=HINTS["NoSubscriptionPlan"])
        self.fetch_manifest(listing)
        limit = plan[0] if max_price is None else int(max_price)
        if listing.payment_token is not None:
            self._approve(listing.payment_token, plan[0], limit)
        value = limit if listing.payment_token is None else 0
        fn = self.contract.functions.subscribe(dataset_id, limit, int(renews or 0))
        event = self._event(self._send(fn, f"subscribe to dataset {dataset_id}", value=value), "Subscribed")
        if value > event["price"]:
            self.withdraw()  # the price fell before the subscription was mined: take the difference back
        return self.subscription(event["subscriptionId"])

    def subscription(self, subscription_id: int) -> SubscriptionInfo:
        """A subscription as the chain records it (MarketError if the id is a purchase of its own)."""
        info = self.purchase_info(subscription_id)
        start_block, open_claims = self._view(self.contract.functions.subscriptions(subscription_id),
                                              f"read subscription {subscription_id}")
        if start_block == 0:
            raise MarketError(f"purchase {subscription_id} is not a subscription", hint=HINTS["NotSubscription"])
        return SubscriptionInfo(subscription_id, info.dataset_id, info.seller, info.buyer, info.amount, info.deadline,
                                info.status, start_block, open_claims)

    def claimable(self, subscription_id: int) -> list[int]:
        """The versions a subscription covers (registered in its term, descending from the subscribed one) that
        it has not claimed yet, oldest first."""
        sub = self.subscription(subscription_id)
        claim_of = self.contract.functions.claimOf
        return [version for version, block in sorted(self._descendants(sub.dataset_id).items())
                if version != sub.dataset_id and block >= sub.start_block
                and self._view(claim_of(subscription_id, version), "read claims") == 0]

    def _registered_block(self, dataset_id: int) -> int:
        """The block a dataset version was registered in."""
        return int(self._view(self.contract.functions.datasetInfo(dataset_id), f"read dataset {dataset_id}")[6])

    def claim(self, subscription_id: int, dataset_id: int) -> PurchaseInfo:
        """Claim a version under a running subscription: a purchase at price 0 with a fresh one-time key, which
        the owner's key agent delivers; `receive_key` then works as for any purchase. The listing is checked
        against its manifest first."""
        self.fetch_manifest(dataset_id)
        public_key = self._new_purchase_key(dataset_id)
        fn = self.contract.functions.claim(subscription_id, dataset_id, public_key[:32], public_key[32:])
        receipt = self._send(fn, f"claim dataset {dataset_id} under subscription {subscription_id}")
        return self.purchase_info(self._recorded_purchase(receipt, public_key)["purchaseId"])

    def claim_new(self, subscription_id: int) -> list[PurchaseInfo]:
        """Claim every version the subscription covers and has not claimed yet (see `claimable`)."""
        return [self.claim(subscription_id, version) for version in self.claimable(subscription_id)]

    def _approve(self, token: str, price: int, limit: int) -> None:
        """Let the market pull up to `limit` of `token`, after checking that this account holds the price."""
        erc20 = self._erc20(token, price)
        owner = self._sender().account.address
        if self._view(erc20.functions.allowance(owner, self.address), f"read the allowance of {token}") < limit:
            self._send(erc20.functions.approve(self.address, limit), f"approve {token}")

    def _erc20(self, token: str, price: int) -> Any:
        """The payment token's contract, once this account is known to hold the price (a token that is no
        contract, or a balance short of the price, is a MarketError before anything is sent)."""
        if not self.w3.eth.get_code(Web3.to_checksum_address(token)):
            raise MarketError(f"the payment token {token} is not a contract on chain {self.chain_id}")
        erc20 = self.w3.eth.contract(address=Web3.to_checksum_address(token), abi=_ERC20_ABI)
        owner = self._sender().account.address
        held = self._view(erc20.functions.balanceOf(owner), f"read the balance of {token}")
        if held < price:
            raise MarketError(f"{owner} holds {held} of the payment token {token}; the price is {price}",
                              hint="get more of the token, then buy again (nothing was sent)")
        return erc20

    def _permit(self, token: str, price: int, limit: int) -> tuple[int, int, int, bytes, bytes]:
        """An EIP-2612 permit for the market to pull up to `limit` of `token`, valid for an hour of chain time
        (the balance is checked first, as for an approval)."""
        erc20 = self._erc20(token, price)
        account = self._sender().account
        name = self._view(erc20.functions.name(), f"read the name of {token}")
        nonce = self._view(erc20.functions.nonces(account.address), f"read the permit nonce of {token}")
        deadline = self.w3.eth.get_block("latest")["timestamp"] + 3600  # chain time: dev chains run ahead
        typed = {
            "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                       {"name": "chainId", "type": "uint256"},
                                       {"name": "verifyingContract", "type": "address"}],
                      "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                                 {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                                 {"name": "deadline", "type": "uint256"}]},
            "primaryType": "Permit",
            "domain": {"name": name, "version": "1", "chainId": self.chain_id, "verifyingContract": erc20.address},
            "message": {"owner": account.address, "spender": self.address, "value": limit, "nonce": nonce,
                        "deadline": deadline},
        }
        signed = account.sign_message(encode_typed_data(full_message=typed))
        return (limit, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))

    def purchase_event(self, info: PurchaseInfo) -> dict[str, Any]:
        """The `Purchased` event of a purchase (its buyer key, block), searched from the dataset's registration."""
        for log in reversed(self._logs("Purchased", self._registered_block(info.dataset_id), self.w3.eth.block_number,
                                       purchaseId=info.purchase_id)):
            key = bytes(log["args"]["buyerKeyX"]) + bytes(log["args"]["buyerKeyY"])
            if info.status != "pending" or buyer_key_hash(key).hex() == info.binding:
                return {**log["args"], "blockNumber": log["blockNumber"], "buyerKey": key}
        raise KeyDeliveryError(f"purchase {info.purchase_id}'s Purchased event was not found",
                               hint="the node may have pruned logs; use an archive RPC")

    def delivery(self, info: PurchaseInfo) -> Delivery:
        """The key delivered for a purchase, from its `KeyDelivered` event."""
        start = self.purchase_event(info)["blockNumber"]
        delivered = self._logs("KeyDelivered", start, self.w3.eth.block_number, purchaseId=info.purchase_id)
        if not delivered:
            raise KeyDeliveryError(f"purchase {info.purchase_id} is delivered but its KeyDelivered event was not "
                                   "found", hint="the node may have pruned logs; use an archive RPC")
        args = delivered[-1]["args"]
        return Delivery(bytes(args["ephemeralX"]), bytes(args["ephemeralY"]), bytes(args["encryptedKey"]))

    def _purchase_secret(self, info: PurchaseInfo) -> bytes:
        return self.keystore.get(PURCHASE_KEY, self.purchase_event(info)["buyerKey"].hex())

    def receive_key(self, purchase_id: int, *, timeout: float = 0.0, poll: float = 1.0,
                    dispute: bool = True) -> bytes:
        """Wait up to `timeout` s for the key, open it, check it against the on-chain key commitment and keep it
        in the keystore under the manifest hash (so `open_dataset` finds it).

        A key that does not match, or (for a version that inherits shards) does not open the earlier versions its
        manifest inherits from, is disputed at once (with `dispute`): the contract recomputes it and refunds the
        whole price, which is withdrawn; KeyDeliveryError says so."""
        info = self._await_delivered(purchase_id, timeout, poll)
        listing = self.listing(info.dataset_id)
        data_key = open_delivery(self.delivery(info), self._purchase_secret(info), self._context(purchase_id))
        wrong = f"does not match dataset {info.dataset_id}'s key commitment" \
            if key_commitment(data_key, bytes.fromhex(listing.seal_id)).hex() != listing.key_commitment \
            else self._misses_lineage(listing, data_key)
        if wrong is not None:
            if not dispute:
                raise KeyDeliveryError(f"the key delivered for purchase {purchase_id} {wrong}",
                                       hint=f"dispute it before the challenge period ends ({info.deadline}): "
                                            f"`deai-data market dispute {purchase_id}`")
            refunded = self.dispute(purchase_id)
            raise KeyDeliveryError(f"the key delivered for purchase {purchase_id} {wrong}: disputed on-chain, the "
                                   f"contract agreed and refunded {refunded} (withdrawn to this account)",
                                   hint="the seller's lost dispute is on record (disputesLost)")
        self.keystore.put(DATA_KEY, listing.manifest_hash, data_key,
                          {"seal_id": listing.seal_id, "market": self.address, "chain_id": self.chain_id,
                           "dataset_id": info.dataset_id, "purchase_id": purchase_id})
        return data_key

    def _await_delivered(self, purchase_id: int, timeout: float, poll: float) -> PurchaseInfo:
        deadline = time.monotonic() + timeout
        while True:
            info = self.purchase_info(purchase_id)
            if info.status in ("delivered", "settled"):
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

    def dispute(self, purchase_id: int, *, withdraw: bool = True, generations: int | None = None) -> int:
        """Prove a delivery wrong: reveal the purchase's one-time secret so the contract recomputes the key.
        Returns the amount refunded (0 if the contract found the key right: the seller is then paid at once).
        With `withdraw`, a refund is pulled to this account. `generations`: how many earlier versions the key
        must also open through its key links (default: as deep as the manifest inherits shards from)."""
        info = self.purchase_info(purchase_id)
        if generations is None:
            generations = self._inherited_generations(info.dataset_id)
        proof = dispute_proof(self.delivery(info), self._purchase_secret(info), generations=generations)
        receipt = self._send(self.contract.functions.dispute(purchase_id, proof.as_call()),
                             f"dispute purchase {purchase_id}")
        if not self._event(receipt, "DisputeResolved")["buyerWon"]:
            return 0
        return self._refunded(receipt, withdraw)

    def _refunded(self, receipt: Any, withdraw: bool) -> int:
        """What a refunding transaction gave back (a claim's refund brings its subscription's price with it);
        with `withdraw`, pulled to this account."""
        refunds = self._events(receipt, "Refunded")
        if withdraw:
            for token in {event["paymentToken"] for event in refunds if event["amount"]}:
                self.withdraw(token)
        return sum(event["amount"] for event in refunds)

    def _inherited_generations(self, dataset_id: int) -> int:
        """The deepest lineage generation the dataset's manifest inherits a shard from (0 when its manifest
        cannot be fetched: the dispute then checks the delivered key alone)."""
        try:
            manifest, _ = self.fetch_manifest(dataset_id)
        except DeaiError:
            return 0
        return _deepest_generation(manifest)

    def _misses_lineage(self, listing: Listing, data_key: bytes) -> str | None:
        """Why a version's key does not open the earlier versions its manifest inherits shards from (None: it
        does, the version inherits nothing, or its manifest cannot be fetched now: reading will tell)."""
        if listing.key_link is None:
            return None
        try:
            manifest, uri = self.fetch_manifest(listing)
            deepest = _deepest_generation(manifest)
            if deepest:
                Dataset(manifest, uri, key=data_key).generation_key(deepest)
        except DecryptionError:
            return "does not open the earlier versions its dataset inherits shards from"
        except DeaiError:
            return None
        return None

    def refund(self, purchase_id: int, *, withdraw: bool = True) -> int:
        """Refund an undelivered purchase after its deadline; with `withdraw`, also pull the money."""
        receipt = self._send(self.contract.functions.refund(purchase_id), f"refund purchase {purchase_id}")
        return self._refunded(receipt, withdraw)

    # ------------------------------------------------------------------ selling

    def deliver_key(self, purchase: int | PurchaseInfo, data_key: bytes | None = None, *,
                    buyer_key: bytes | None = None) -> Any:
        """Encrypt the dataset's key to the buyer's one-time key and deliver it (the payment then waits in escrow
        for the challenge period). The key comes from the keystore by manifest hash unless given; it is checked
        against the on-chain key commitment first, so a wrong key is never delivered. `buyer_key` (x || y, from
        the Purchased event) saves a log search; it must be the key the purchase records."""
        info = purchase if isinstance(purchase, PurchaseInfo) else self.purchase_info(purchase)
        listing = self.listing(info.dataset_id)
        if data_key is None:
            data_key = self.keystore.get(DATA_KEY, listing.manifest_hash)
        if key_commitment(bytes(data_key), bytes.fromhex(listing.seal_id)).hex() != listing.key_commitment:
            raise KeyDeliveryError(f"the key for dataset {info.dataset_id} does not match its key commitment",
                                   hint="refusing to deliver a key that cannot open the data")
        if buyer_key is None or buyer_key_hash(buyer_key).hex() != info.binding:
            buyer_key = self.purchase_event(info)["buyerKey"]
        delivery = seal_key(bytes(data_key), buyer_key, self._context(info.purchase_id))
        fn = self.contract.functions.deliverKey(info.purchase_id, buyer_key_hash(buyer_key), delivery.as_call())
        return self._send(fn, f"deliver key {info.purchase_id}")

    def settle(self, purchase_ids: int | list[int]) -> int:
        """Pay the seller of delivered purchases whose challenge period is over, and of subscriptions whose term is
        over with every claim settled (anyone may); returns how many were settled (others are skipped)."""
        ids = [purchase_ids] if isinstance(purchase_ids, int) else list(purchase_ids)
        if not ids:
            return 0
        receipt = self._send(self.contract.functions.settleMany(ids), f"settle {len(ids)} purchases")
        return len(self._events(receipt, "PurchaseSettled"))

    def withdrawable(self, account: str | None = None, token: str | None = None) -> int:
        who = account or self._sender().account.address
        return self._view(self.contract.functions.withdrawable(who, Web3.to_checksum_address(token or NATIVE)),
                          "read balance")

    def withdraw(self, token: str | None = None, *, to: str | None = None) -> int:
        """Pull this account's whole balance in `token` (None: native currency) to itself or to `to`."""
        asset = Web3.to_checksum_address(token or NATIVE)
        fn = self.contract.functions.withdraw(asset) if to is None else \
            self.contract.functions.withdrawTo(asset, Web3.to_checksum_address(to))
        return self._event(self._send(fn, "withdraw"), "Withdrawn")["amount"]

    def withdraw_fees(self, token: str | None = None) -> int:
        fn = self.contract.functions.withdrawFees(Web3.to_checksum_address(token or NATIVE))
        return self._event(self._send(fn, "withdraw fees"), "FeesWithdrawn")["amount"]

    # ------------------------------------------------------------------ events

    def _events(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        return [dict(decoded["args"]) for decoded in
                getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)
                if decoded["address"] == self.address]

    def _event(self, receipt: Any, name: str) -> dict[str, Any]:
        found = self._events(receipt, name)
        if not found:
            raise ChainError(f"transaction {receipt['transactionHash'].hex()} emitted no {name} event")
        return found[0]

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


def _deepest_generation(manifest: Manifest) -> int:
    """The deepest lineage generation a manifest inherits a shard from (0: none)."""
    return max((e.origin[0] for e in manifest.shards if e.origin is not None), default=0)


def _with_referrer_fee(price: int, referrer_bps: int) -> int:
    """What a buyer pays: the price and the referrer's fee on top (rounded down, as the contract does)."""
    return price + price * int(referrer_bps) // 10_000


_REGISTRATION_FIELDS = (
    ("manifestHash", "bytes32"), ("contentRoot", "bytes32"), ("keyCommitment", "bytes32"), ("sealId", "bytes32"),
    ("shardCount", "uint32"), ("author", "address"), ("owner", "address"), ("paymentToken", "address"),
    ("price", "uint96"), ("deliveryWindow", "uint32"), ("challengePeriod", "uint32"), ("supersedes", "uint256"),
    ("keyLink", "bytes32"), ("manifestURIs", "string[]"), ("licenseURI", "string"),
)

_ERC20_ABI = [
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "allowance", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "name", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "nonces", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
]
