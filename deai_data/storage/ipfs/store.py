"""`ipfs://` store: a shard becomes one UnixFS file (one CID), uploaded as a CAR to a node's RPC API and
read back with every block verified: whole objects as a CAR from a trustless gateway, ranges and
fallbacks block by block (gateway `?format=raw`, then the node's `block/get`).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ...errors import IntegrityError, LimitError, NotFoundError, StorageError
from ..base import Buffer, ExistsByStat, ObjectStat, PutFileByReading, check_range, parse_uri
from ..failover import first_answer
from ..http import HttpStore
from ..store_uri import StoreQuery, env_list
from ..varint import encode_varint
from .car import CarError, car_header, read_car
from .cid import CID, DAG_PB, RAW
from .kubo import KuboClient
from .unixfs import CHUNK_SIZE, FileNode, file_blocks

_CAR = "application/vnd.ipld.car"


def cid_of(locator: str) -> CID:
    parsed = parse_uri(locator)
    text = parsed.netloc or parsed.path.lstrip("/")
    if parsed.scheme != "ipfs":
        raise StorageError("not an IPFS locator", locator=locator, hint="expected ipfs://<CID>")
    try:
        return CID.parse(text)
    except ValueError as exc:
        raise StorageError(f"not an IPFS locator: {exc}", locator=locator) from None


class IpfsStore(ExistsByStat, PutFileByReading):
    """Store on IPFS: `api` is a node's RPC URL (needed to write; also a read fallback), `gateways`
    trustless gateways tried first for reads, in order. `http` is the HTTP client to use (its retries,
    timeouts and session; a new `HttpStore` by default), as httpx injects a transport."""

    schemes: tuple[str, ...] = ("ipfs",)

    def __init__(self, api: str | None = None, gateways: Sequence[str] = (), *, chunk_size: int = CHUNK_SIZE,
                 fetch_threads: int = 8, timeout: float = 30.0, retries: int = 3, backoff: float = 0.25,
                 block_timeout: str = "10s", http: HttpStore | None = None) -> None:
        self.http = http or HttpStore(timeout=timeout, retries=retries, backoff=backoff)  # injectable client
        self.node = KuboClient(api, http=self.http, block_timeout=block_timeout) if api else None
        self.gateways = [g.rstrip("/") for g in gateways]
        if self.node is None and not self.gateways:
            raise StorageError("an IPFS store needs a node API URL or at least one gateway",
                               hint="set DEAI_IPFS_API and/or DEAI_IPFS_GATEWAYS")
        self.chunk_size = chunk_size
        self.fetch_threads = fetch_threads
        self._nodes: dict[CID, FileNode] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IpfsStore(api={self.node.url if self.node else None}, gateways={self.gateways})"

    @property
    def uri(self) -> str:
        return f"ipfs://?api={self.node.url if self.node else ''}"

    @classmethod
    def from_uri(cls, uri: str) -> IpfsStore:
        """`ipfs://?api=URL[&gateway=URL...]`; unset parts from DEAI_IPFS_API / DEAI_IPFS_GATEWAYS."""
        query = StoreQuery(uri)
        return cls(query.value("api", "DEAI_IPFS_API"), query.values("gateway", "DEAI_IPFS_GATEWAYS"))

    # ---- writing ------------------------------------------------------------------------------------
    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        """Import `data` as a UnixFS file (raw leaves) in a CAR; the node pins it. Returns ipfs://<root>."""
        if self.node is None:
            raise StorageError("writing to IPFS needs a node API", hint="pass api=... or set DEAI_IPFS_API")
        root, blocks = file_blocks(data, self.chunk_size)

        def car() -> Iterator[bytes]:
            yield car_header([root])
            for block in blocks:
                cid = block.cid.to_bytes()
                yield encode_varint(len(cid) + len(block.data)) + cid
                yield bytes(block.data)

        pinned = self.node.dag_import(car)
        if str(root) not in pinned:
            raise StorageError(f"the node did not pin {root} (it reported {pinned})", locator=self.node.url)
        return f"ipfs://{root}"

    # ---- blocks -------------------------------------------------------------------------------------
    def _block(self, cid: CID) -> bytes:
        """One block, checked against its CID, from the gateways (`?format=raw`) then the node."""
        sources: list[tuple[str, Callable[[], bytes]]] = [
            (g, functools.partial(self.http.get, f"{g}/ipfs/{cid}?format=raw")) for g in self.gateways]
        if self.node is not None:
            sources.append((self.node.url, functools.partial(self.node.block_get, cid)))

        def checked(source: tuple[str, Callable[[], bytes]]) -> bytes:
            name, fetch = source
            data = fetch()
            if not cid.verify(data):
                raise IntegrityError(f"block {cid} does not match its CID", locator=name,
                                     hint="the gateway or node served altered data; trying others failed too")
            return data

        return first_answer(sources, checked, what=f"block {cid}", locator=f"ipfs://{cid}")

    def _file_node(self, cid: CID) -> FileNode:
        with self._lock:
            node = self._nodes.get(cid)
        if node is None:
            try:
                node = FileNode.decode(self._block(cid))
            except ValueError as exc:
                raise IntegrityError(f"{cid} is not a UnixFS file with raw leaves: {exc}",
                                     locator=f"ipfs://{cid}") from None
            with self._lock:
                if len(self._nodes) > 4096:
                    self._nodes.clear()
                self._nodes[cid] = node
        return node

    def _leaves(self, cid: CID, start: int, end: int, offset: int = 0) -> list[tuple[CID, int]]:
        """(leaf CID, its offset in the file) of every leaf overlapping [start, end)."""
        if cid.codec == RAW:
            return [(cid, offset)]
        if cid.codec != DAG_PB:
            raise IntegrityError(f"{cid} is neither raw nor dag-pb", locator=f"ipfs://{cid}")
        out = []
        position = offset
        node = self._file_node(cid)
        for link, size in zip(node.links, node.blocksizes, strict=True):
            if position < end and position + size > start:
                out += self._leaves(link.cid, start, end, position)
            position += size
        return out

    def size(self, cid: CID) -> int:
        """The file's size: a dag-pb root's `filesize` (the root is verified), a raw block's length (asked
        of the node with `block/stat` where there is one: nothing to download)."""
        if cid.codec != RAW:
            return self._file_node(cid).filesize
        if self.node is not None:
            try:
                return self.node.block_stat(cid)
            except NotFoundError:
                if not self.gateways:
                    raise NotFoundError(f"ipfs://{cid}") from None
        return len(self._block(cid))

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes:
        check_range(start, end)
        cid = cid_of(locator)
        if start == 0:
            for gateway in self.gateways:
                try:
                    return self._car_from(gateway, cid, end)[:end]
                except (StorageError, IntegrityError, LimitError):
                    continue  # a gateway without CAR support, or a bad CAR: the block route checks each block
        if cid.codec == RAW:
            return self._block(cid)[start:end]
        total = self.size(cid)
        end = total if end is None else min(end, total)
        if start >= end:
            return b""
        leaves = self._leaves(cid, start, end)
        with ThreadPoolExecutor(min(self.fetch_threads, len(leaves))) as pool:
            blocks = list(pool.map(lambda leaf: self._block(leaf[0]), leaves))
        out = bytearray()
        for (_, offset), block in zip(leaves, blocks, strict=True):
            lo, hi = max(start - offset, 0), min(end - offset, len(block))
            out += block[lo:hi]
        return bytes(out)

    def _car_from(self, gateway: str, root: CID, size_limit: int | None = None) -> bytes:
        """A whole file from a trustless gateway's CAR: every block verified, only blocks linked from the
        root accepted, every linked block required; a CAR larger than `size_limit` (plus its framing and
        links) is refused unread."""
        response = self.http.request("GET", f"{gateway}/ipfs/{root}?format=car&dag-scope=all", {"Accept": _CAR})
        cap = None if size_limit is None else size_limit + size_limit // 16 + (1 << 20)
        try:
            if _CAR not in response.headers.get("Content-Type", ""):
                raise StorageError("the gateway does not serve CARs", locator=gateway)
            roots, blocks = read_car(self.http.chunks(response, limit=cap))
            if roots[:1] != [root]:
                raise IntegrityError(f"CAR roots {roots} are not {root}", locator=gateway)
            wanted, found = {root}, {}
            for cid, data in blocks:
                if cid not in wanted:
                    raise IntegrityError(f"CAR holds block {cid}, not linked from {root}", locator=gateway)
                found[cid] = data
                if cid.codec == DAG_PB:
                    wanted.update(link.cid for link in FileNode.decode(data).links)
        except CarError as exc:
            raise IntegrityError(f"bad CAR for {root}: {exc}", locator=gateway) from None
        except ValueError as exc:
            raise IntegrityError(f"bad block in the CAR for {root}: {exc}", locator=gateway) from None
        finally:
            response.close()
        missing = wanted - found.keys()
        if missing:
            raise IntegrityError(f"CAR for {root} lacks {len(missing)} linked blocks, e.g. {next(iter(missing))}",
                                 locator=gateway)
        return b"".join(_file_bytes(root, found))

    def stat(self, locator: str) -> ObjectStat:
        return ObjectStat(locator, self.size(cid_of(locator)))


def _file_bytes(cid: CID, blocks: dict[CID, bytes]) -> Iterator[bytes]:
    if cid.codec == RAW:
        yield blocks[cid]
        return
    for link in FileNode.decode(blocks[cid]).links:
        yield from _file_bytes(link.cid, blocks)


def reader_from_env() -> IpfsStore:
    """The shared reader for `ipfs://` locators: DEAI_IPFS_GATEWAYS, then DEAI_IPFS_API as a fallback."""
    api = os.environ.get("DEAI_IPFS_API") or None
    gateways = env_list("DEAI_IPFS_GATEWAYS")
    if not api and not gateways:
        gateways = ["https://trustless-gateway.link"]
    return IpfsStore(api, gateways)

