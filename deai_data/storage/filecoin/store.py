"""`piece://` store: objects kept as Filecoin pieces by PDP storage providers.

A locator is `piece://<PieceCIDv2>?provider=<url>`: the PieceCID names (and sizes) the bytes, the
provider says where to fetch them. Writing uploads to the first provider and waits until it has parked
the piece; adding pieces to a paid data set is a separate, signed step (warm_storage.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, quote

from ...errors import NotFoundError, StorageError
from ..base import Buffer, ObjectStat, PutFileByReading, check_range, parse_uri
from ..failover import first_answer
from ..http import HttpStore
from ..store_uri import StoreQuery, env_list
from .commp import Piece
from .pdp import PdpClient, origin


def parse_piece_locator(locator: str) -> tuple[str, str | None]:
    """(PieceCIDv2, provider URL or None) of `piece://<cid>?provider=<url>`."""
    parsed = parse_uri(locator)
    if parsed.scheme != "piece" or not parsed.netloc:
        raise StorageError("not a piece locator", locator=locator, hint="expected piece://<PieceCIDv2>?provider=<url>")
    try:
        Piece.from_cid(parsed.netloc)
    except ValueError as exc:
        raise StorageError(f"not a piece locator: {exc}", locator=locator) from None
    providers = parse_qs(parsed.query).get("provider")
    return parsed.netloc, (providers[0] if providers else None)


def parse_tokens(text: str) -> dict[str, str]:
    """`https://sp1.example=TOKEN,https://sp2.example=TOKEN2` -> {origin: token}."""
    tokens = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        url, sep, token = part.rpartition("=")
        if not sep or not url or not token:
            raise StorageError(f"DEAI_PDP_TOKENS entry {part.split('=')[0]!r}... is not ORIGIN=TOKEN")
        tokens[origin(url)] = token
    return tokens


def _tokens_from_env(providers: Sequence[str]) -> dict[str, str]:
    """DEAI_PDP_TOKENS (ORIGIN=TOKEN, ...); a lone DEAI_PDP_TOKEN belongs to the first provider only."""
    tokens = parse_tokens(os.environ.get("DEAI_PDP_TOKENS", ""))
    single = os.environ.get("DEAI_PDP_TOKEN")
    if single and providers:
        tokens.setdefault(origin(providers[0]), single)
    return tokens


class PieceStore(PutFileByReading):
    """Store on PDP providers: writes go to `providers[0]`; reads use the locator's provider, then these.

    `tokens` maps a provider's origin to its bearer token: each token goes to its own provider only. A
    provider named by a locator (a manifest: untrusted) must pass the fetch policy and gets no token unless
    it is a configured origin."""

    schemes: tuple[str, ...] = ("piece",)

    def __init__(self, providers: Sequence[str] = (), *, tokens: Mapping[str, str] | None = None,
                 wait_timeout: float = 300.0, timeout: float = 60.0, retries: int = 3) -> None:
        self.http = HttpStore(timeout=timeout, retries=retries)
        self.untrusted_http = HttpStore(timeout=timeout, retries=retries, untrusted=True)
        self.providers = [p.rstrip("/") for p in providers]
        self.tokens = {origin(url): token for url, token in (tokens or {}).items()}
        self.wait_timeout = wait_timeout

    def __repr__(self) -> str:
        return f"PieceStore({self.providers})"

    @property
    def uri(self) -> str:
        return f"piece://?provider={self.providers[0] if self.providers else ''}"

    @classmethod
    def from_uri(cls, uri: str) -> PieceStore:
        """`piece://?provider=URL[&provider=URL2]`, else DEAI_PDP_PROVIDERS (comma-separated)."""
        providers = StoreQuery(uri).values("provider", "DEAI_PDP_PROVIDERS")
        return cls(providers, tokens=_tokens_from_env(providers))

    def _client(self, url: str) -> PdpClient:
        configured = url in self.providers
        return PdpClient(url, http=self.http if configured else self.untrusted_http,
                         token=self.tokens.get(origin(url)))

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        if not self.providers:
            raise StorageError("no PDP provider to upload to", hint="pass providers=[...] or set DEAI_PDP_PROVIDERS")
        client = self._client(self.providers[0])
        piece = client.upload_piece(data)
        client.wait_for_piece(str(piece.cid), timeout=self.wait_timeout)
        return f"piece://{piece.cid}?provider={quote(client.url, safe=':/')}"

    def _sources(self, locator: str) -> tuple[str, list[str]]:
        cid, provider = parse_piece_locator(locator)
        urls = ([provider.rstrip("/")] if provider else []) + [p for p in self.providers if p != provider]
        if not urls:
            raise StorageError("no provider to read the piece from", locator=locator,
                               hint="the locator names none: configure DEAI_PDP_PROVIDERS")
        return cid, urls

    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes:
        check_range(start, end)
        cid, urls = self._sources(locator)
        return first_answer(urls, lambda url: self._client(url).download_piece(cid, start, end),
                            what=f"piece {cid}", locator=locator, kind="provider")

    def exists(self, locator: str) -> bool:
        cid, urls = self._sources(locator)
        return any(self._client(url).has_piece(cid) for url in urls)

    def stat(self, locator: str) -> ObjectStat:
        if not self.exists(locator):
            raise NotFoundError(locator)
        return ObjectStat(locator, Piece.from_cid(parse_piece_locator(locator)[0]).payload_size)


def reader_from_env() -> PieceStore:
    providers = env_list("DEAI_PDP_PROVIDERS")
    return PieceStore(providers, tokens=_tokens_from_env(providers))
