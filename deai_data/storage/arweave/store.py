"""`ar://` store: publish sealed shards and manifests to Arweave, read them back through any gateway.

Large objects become one transaction each, uploaded by chunks with their proofs; small ones can be
batched as ANS-104 data items in one bundle transaction (`bundle_items_up_to`), or posted one by one
to a bundling service (`bundler`). Every upload is resumable (see upload_state.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...errors import IntegrityError, NotFoundError, StorageError
from ...home import deai_home
from ...version import __version__
from ..base import Buffer, ExistsByStat, ObjectStat, PutFileByReading, check_range, parse_uri
from ..store_uri import StoreQuery, env_list
from .ans104 import BUNDLE_TAGS, DataItem, build_bundle, sign_data_item
from .gateway import DEFAULT_GATEWAY, GatewayClient, TxStatus
from .merkle import ChunkedData, b64url, chunk_payload
from .transaction import Tag, Transaction, new_transaction
from .upload_state import UploadState
from .wallet import Wallet

APP_NAME = "deai-data"
_FIND_QUERY = """query($tags: [TagFilter!], $first: Int, $after: String) {
  transactions(tags: $tags, first: $first, after: $after, sort: HEIGHT_ASC) {
    pageInfo { hasNextPage }
    edges { cursor node { id tags { name value } data { size } block { height } } }
  }
}"""
_ONE_QUERY = "query($id: ID!) { transaction(id: $id) { id data { size } block { height } } }"


def tx_id_of(locator: str) -> str:
    """The transaction or data-item id in `ar://<id>`."""
    parsed = parse_uri(locator)
    tx_id = parsed.netloc or parsed.path.lstrip("/")
    if parsed.scheme != "ar" or len(tx_id) != 43:
        raise StorageError("not an Arweave locator", locator=locator, hint="expected ar://<43-character id>")
    return tx_id


@dataclass(frozen=True)
class ArweaveObject:
    """An object found through GraphQL."""

    id: str
    tags: dict[str, str]
    size: int
    block_height: int | None

    @property
    def locator(self) -> str:
        return f"ar://{self.id}"


class ArweaveStore(ExistsByStat, PutFileByReading):
    """Store on Arweave through one or more gateways (failover in order).

    `wallet` pays for uploads (not needed to read). `chunk_concurrency` chunks are sent at once (use 1
    for arlocal, which orders chunks by arrival). `bundle_items_up_to` > 0 batches objects up to that
    size as ANS-104 items, sent as one bundle on `flush()` or when `bundle_max_bytes` are queued.
    `bundler` (a URL) sends every object as a signed data item to that bundling service instead.
    """

    schemes: tuple[str, ...] = ("ar",)

    def __init__(self, gateways: str | Sequence[str] = DEFAULT_GATEWAY, wallet: Wallet | None = None, *,
                 chunk_concurrency: int = 4, bundle_items_up_to: int = 0, bundle_max_bytes: int = 8 << 20,
                 bundler: str | None = None, state_dir: str | Path | None = None, verify_data_root: bool = True,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 0.25) -> None:
        self.gateway = GatewayClient(gateways, timeout=timeout, retries=retries, backoff=backoff)
        self.wallet = wallet
        self.chunk_concurrency = max(1, chunk_concurrency)
        self.bundle_items_up_to = bundle_items_up_to
        self.bundle_max_bytes = bundle_max_bytes
        self.bundler = bundler.rstrip("/") if bundler else None
        self.state_dir = Path(state_dir) if state_dir else deai_home() / "arweave-uploads"
        self.verify_data_root = verify_data_root
        self._headers: dict[str, Transaction | None] = {}
        self._pending: dict[str, DataItem] = {}
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ArweaveStore({self.gateway.gateways}, wallet={self.wallet!r})"

    @property
    def uri(self) -> str:
        """Identity of this store for publish journals: the first gateway and the paying wallet."""
        return f"ar://?gateway={self.gateway.gateways[0]}&address={self.wallet.address if self.wallet else ''}"

    @classmethod
    def from_uri(cls, uri: str) -> ArweaveStore:
        """A store from `ar://?gateway=URL[&gateway=URL2][&wallet=PATH|keystore:NAME][&bundler=URL]
        [&bundle=BYTES][&concurrency=N]`; unset parts come from DEAI_ARWEAVE_GATEWAYS and
        DEAI_ARWEAVE_WALLET."""
        query = StoreQuery(uri)
        wallet_spec = query.value("wallet", "DEAI_ARWEAVE_WALLET")
        return cls(query.values("gateway") or _env_gateways(), load_wallet(wallet_spec) if wallet_spec else None,
                   bundler=query.value("bundler"), bundle_items_up_to=query.integer("bundle", 0),
                   chunk_concurrency=query.integer("concurrency", 4))

    # ---- writing ------------------------------------------------------------------------------------
    def _tags(self, sha256: str, labels: Mapping[str, str] | None) -> list[Tag]:
        tags = [("App-Name", APP_NAME), ("App-Version", __version__),
                ("Content-Type", "application/octet-stream"), ("Content-SHA256", sha256)]
        return tags + [(str(k), str(v)) for k, v in (labels or {}).items()]

    def _require_wallet(self) -> Wallet:
        if self.wallet is None:
            raise StorageError("uploading to Arweave needs a wallet",
                               hint="pass wallet=..., or set DEAI_ARWEAVE_WALLET to a JWK file or keystore:NAME")
        return self.wallet

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        """Upload `data`; returns `ar://<id>` (a transaction or, when bundled, a data item)."""
        wallet = self._require_wallet()
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        tags = self._tags(sha256, labels)
        if self.bundler:
            return self._post_to_bundler(sign_data_item(wallet, data, tags))
        if 0 < len(data) <= self.bundle_items_up_to:
            return self._queue(sign_data_item(wallet, data, tags))
        return f"ar://{self.upload(data, tags, sha256=sha256)}"

    def upload(self, data: Buffer, tags: list[Tag], *, sha256: str | None = None) -> str:
        """Upload `data` as one transaction with `tags`, resuming an interrupted upload of the same
        bytes; returns the transaction id. Re-uploading bytes already uploaded costs one request."""
        wallet = self._require_wallet()
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        state = UploadState.for_upload(self.state_dir, self.gateway.gateways[0], wallet.address, sha256)
        if state.done_id and self._known(state.done_id):
            return state.done_id
        chunks = chunk_payload(data)
        inline = len(chunks.chunks) <= 1
        tx = Transaction.from_json(state.tx) if state.tx else None
        if tx is None or tx.data_root != chunks.data_root or not self._known(tx.id):
            tx = self._post_header(wallet, data, tags, chunks, inline, state)
        if not inline:
            self._send_chunks(data, chunks, state)
        state.finish(tx.id)
        return tx.id

    def _post_header(self, wallet: Wallet, data: Buffer, tags: list[Tag], chunks: ChunkedData, inline: bool,
                     state: UploadState) -> Transaction:
        reward = self.gateway.price(len(data))
        tx = new_transaction(wallet, data, chunks, tags=tags, reward=reward, anchor=self.gateway.anchor(),
                             inline=inline)
        state.start(tx.to_json(with_data=False))
        try:
            self.gateway.post_transaction(tx, with_data=inline)
        except StorageError as exc:
            raise self._explain_refusal(exc, wallet, reward) from exc
        return tx

    def _explain_refusal(self, exc: StorageError, wallet: Wallet, reward: int) -> StorageError:
        try:
            balance = self.gateway.balance(wallet.address)
        except StorageError:
            return exc
        if balance < reward:
            return StorageError(f"wallet {wallet.address} holds {balance} winston; this upload costs {reward}",
                                hint="fund the wallet (nothing was charged), then publish again")
        return exc

    def _send_chunks(self, data: Buffer, chunks: ChunkedData, state: UploadState) -> None:
        view = memoryview(data)
        root, size = b64url(chunks.data_root), str(chunks.data_size)

        def send(index: int) -> None:
            chunk = chunks.chunks[index]
            self.gateway.post_chunk({"data_root": root, "data_size": size, "data_path": b64url(chunks.proofs[index]),
                                     "offset": str(chunks.offset(index)), "chunk": b64url(view[chunk.start:chunk.end])},
                                    first_only=True)
            state.chunk_sent(index)

        todo = [i for i in range(len(chunks.chunks)) if i not in state.chunks_sent]
        # with one worker the chunks go out in order, one at a time (what arlocal needs)
        with ThreadPoolExecutor(self.chunk_concurrency, thread_name_prefix="deai-ar-chunk") as pool:
            for future in [pool.submit(send, i) for i in todo]:
                future.result()

    def _known(self, tx_id: str) -> bool:
        try:
            self.gateway.status(tx_id)
        except NotFoundError:
            return False
        return True

    # ---- bundles --------------------------------------------------------------------------------------
    def _queue(self, item: DataItem) -> str:
        with self._pending_lock:
            self._pending[item.id] = item
            full = sum(len(i.raw) for i in self._pending.values()) >= self.bundle_max_bytes
        if full:
            self.flush()
        return f"ar://{item.id}"

    def flush(self) -> str | None:
        """Send the queued data items as one ANS-104 bundle; returns the bundle's transaction id."""
        with self._pending_lock:
            items = list(self._pending.values())
            if not items:
                return None
            bundle = build_bundle(items)
            tx_id = self.upload(bundle, [*BUNDLE_TAGS, ("App-Name", APP_NAME), ("App-Version", __version__)])
            for item in items:
                del self._pending[item.id]
        return tx_id

    def _post_to_bundler(self, item: DataItem) -> str:
        response = self.gateway.http.request("POST", f"{self.bundler}/tx", {"Content-Type": "application/octet-stream"},
                                             body=item.raw)
        try:
            answer = self.gateway.http.json(response, limit=1 << 16)
        except StorageError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if answer.get("id") != item.id:
            raise StorageError(f"the bundler answered id {answer.get('id')!r} for data item {item.id}",
                               locator=self.bundler, hint="the bundler did not accept the item; try another")
        return f"ar://{item.id}"

    # ---- reading --------------------------------------------------------------------------------------
    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes:
        check_range(start, end)
        tx_id = tx_id_of(locator)
        pending = self._pending.get(tx_id)
        if pending is not None:
            return pending.fields().data[start:end].tobytes()
        whole = start == 0 and self.verify_data_root

        def check_whole(url: str, data: bytes) -> None:
            if end is None or len(data) < end:  # the whole object came back (the caller asked for more)
                self._check_whole(tx_id, url, data)

        try:
            check = check_whole if whole else None
            return self.gateway.data(tx_id, start, end, check)
        except NotFoundError:
            raise NotFoundError(locator, hint="not on any gateway yet: a fresh upload can take minutes to "
                                              "propagate; check the id and the gateways") from None

    def _header(self, tx_id: str) -> Transaction | None:
        """The signed header of a layer-1 transaction (cached); None for a data item, which has none."""
        if tx_id not in self._headers:
            try:
                header: Transaction | None = self.gateway.transaction(tx_id)
            except NotFoundError:
                header = None
            if len(self._headers) > 4096:
                self._headers.clear()
            self._headers[tx_id] = header
        return self._headers[tx_id]

    def _check_whole(self, tx_id: str, url: str, data: bytes) -> None:
        """Reject a whole object whose bytes do not hash to the `data_root` its owner signed."""
        header = self._header(tx_id)
        if header is None:
            return  # a data item: checked by the reader against the manifest
        if len(data) != header.data_size or (data and chunk_payload(data).data_root != header.data_root):
            raise IntegrityError(f"{len(data)} bytes that do not match the signed data_root "
                                 f"{b64url(header.data_root)} ({header.data_size} bytes)", locator=url)

    def verified_get(self, locator: str) -> bytes:
        """A transaction's whole data, every chunk proven against its signed `data_root`."""
        return self.gateway.verified_data(tx_id_of(locator))

    def stat(self, locator: str) -> ObjectStat:
        tx_id = tx_id_of(locator)
        pending = self._pending.get(tx_id)
        if pending is not None:
            return ObjectStat(locator, len(pending.fields().data))
        found = self.gateway.graphql(_ONE_QUERY, {"id": tx_id}).get("transaction")
        if not found:
            raise NotFoundError(locator)
        return ObjectStat(locator, int(found["data"]["size"]))

    def status(self, locator: str) -> TxStatus:
        """Pending or confirmed, with the confirmation depth (data items: through their bundle)."""
        tx_id = tx_id_of(locator)
        found = self.gateway.graphql(_ONE_QUERY, {"id": tx_id}).get("transaction")
        if not found:
            raise NotFoundError(locator)
        block = found.get("block")
        if not block:
            return TxStatus(tx_id, "pending")
        height = self.gateway.height()
        return TxStatus(tx_id, "confirmed", int(block["height"]), max(0, height - int(block["height"]) + 1))

    def find(self, tags: Mapping[str, str | Sequence[str]], *, page_size: int = 100) -> Iterator[ArweaveObject]:
        """Every object carrying all `tags` (a value or a list of accepted values), oldest first."""
        filters = [{"name": k, "values": [v] if isinstance(v, str) else list(v)} for k, v in tags.items()]
        after = None
        while True:
            page = self.gateway.graphql(_FIND_QUERY, {"tags": filters, "first": page_size, "after": after})
            edges = page["transactions"]["edges"]
            for edge in edges:
                node = edge["node"]
                block = node.get("block")
                yield ArweaveObject(node["id"], {t["name"]: t["value"] for t in node["tags"]},
                                    int(node["data"]["size"]), int(block["height"]) if block else None)
            if not edges or not page["transactions"]["pageInfo"]["hasNextPage"]:
                return
            after = edges[-1]["cursor"]

    def estimate(self, size: int) -> int:
        """What storing `size` bytes costs now, in winston (1 AR = 10^12 winston)."""
        return self.gateway.price(size)


def _env_gateways() -> list[str]:
    return env_list("DEAI_ARWEAVE_GATEWAYS") or [DEFAULT_GATEWAY]


WALLET_KIND = "arweave-wallet"


def load_wallet(spec: str) -> Wallet:
    """A wallet from `keystore:NAME` (encrypted in the deai-data keystore) or a JWK file path."""
    if spec.startswith("keystore:"):
        from ...crypto.keystore import Keystore  # the keystore asks for its passphrase only when used
        return Wallet.from_jwk(Keystore().get(WALLET_KIND, spec.removeprefix("keystore:")))
    return Wallet.load(spec)


def reader_from_env() -> ArweaveStore:
    """The shared reader for `ar://` locators: gateways from DEAI_ARWEAVE_GATEWAYS (default arweave.net)."""
    return ArweaveStore(_env_gateways())

