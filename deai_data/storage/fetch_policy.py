"""Where untrusted URIs may make deai-data connect: only allowed schemes, and no private network address or
local file unless enabled. Stops request forgery through a registration, a manifest's locators or a redirect.

Policy: `FetchPolicy()` (public network only) unless `DEAI_FETCH_ALLOW` (comma-separated `private`, `files`)
or `configure(...)` says otherwise. Addresses are checked when the socket connects (no DNS-rebinding gap).
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from urllib3 import connection as urllib3_connection
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import create_connection

from ..errors import FetchRefusedError
from .base import parse_uri

NETWORK_SCHEMES = frozenset({"http", "https", "ar", "ipfs", "piece", "s3"})  # s3: the reader's own endpoint
ALLOW_ENV = "DEAI_FETCH_ALLOW"


@dataclass(frozen=True)
class FetchPolicy:
    """What an untrusted URI may reach: `schemes` (None: any a store is registered for); loopback and private
    addresses only with `private_networks` (link-local, multicast and reserved ones never); `file:` only with
    `local_files`."""

    schemes: frozenset[str] | None = NETWORK_SCHEMES
    private_networks: bool = False
    local_files: bool = False

    def allows_address(self, address: str) -> bool:
        """Public addresses always; loopback and private ranges with `private_networks`; link-local (cloud
        metadata services), multicast, unspecified and reserved ones never."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            return False
        return ip.is_global or self.private_networks

    def check(self, uri: str) -> None:
        """Raise FetchRefusedError unless `uri` may be fetched (literal IP hosts are checked here; names
        when the connection is made)."""
        scheme = parse_uri(uri).scheme.lower() if "://" in uri else "file"
        if scheme == "file":
            if not self.local_files:
                raise FetchRefusedError(uri, "local files")
            return
        if self.schemes is not None and scheme not in self.schemes:
            raise FetchRefusedError(uri, f"the {scheme}: scheme")
        host = parse_uri(uri).hostname
        if scheme in ("http", "https") and host:
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                return
            if not self.allows_address(str(literal)):
                raise FetchRefusedError(uri, f"the non-public address {host}")

    def widened_for(self, origin: str) -> FetchPolicy:
        """This policy plus what `origin` itself is: a manifest read from a local file may point at local
        files and private hosts, one read from a private host at private hosts, a public one at neither."""
        scheme = parse_uri(origin).scheme.lower() if "://" in origin else "file"
        if scheme == "file":
            return replace(self, private_networks=True, local_files=True)
        host = parse_uri(origin).hostname or ""
        if scheme in ("http", "https") and host and not _is_public_host(host):
            return replace(self, private_networks=True)
        return self


OPEN = FetchPolicy(schemes=None, private_networks=True, local_files=True)  # for what the caller names itself


def _is_public_host(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_global
                   for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return True  # unresolvable: treat as public (the strictest reading)


def _from_env() -> FetchPolicy:
    allowed = {part.strip() for part in os.environ.get(ALLOW_ENV, "").split(",") if part.strip()}
    return FetchPolicy(private_networks=bool(allowed & {"private", "all"}),
                       local_files=bool(allowed & {"files", "all"}))


_configured: FetchPolicy | None = None
_active: contextvars.ContextVar[FetchPolicy | None] = contextvars.ContextVar("deai_fetch_policy", default=None)


def configured() -> FetchPolicy:
    """The process-wide policy for untrusted URIs: `configure(...)`'s, else from DEAI_FETCH_ALLOW."""
    return _configured if _configured is not None else _from_env()


def configure(policy: FetchPolicy | None) -> None:
    """Set the process-wide policy (None: back to DEAI_FETCH_ALLOW)."""
    global _configured
    _configured = policy


def current() -> FetchPolicy:
    """The policy in force for the fetch under way: set by `applied(...)`, else the configured one."""
    return _active.get() or configured()


@contextmanager
def applied(policy: FetchPolicy) -> Iterator[None]:
    """Fetch under `policy` inside the block (this thread)."""
    token = _active.set(policy)
    try:
        yield
    finally:
        _active.reset(token)


# ---- connections that check the address they connect to ------------------------------------------------

def _vetted_connection(conn: HTTPConnection) -> socket.socket:
    policy = current()
    try:
        infos = socket.getaddrinfo(conn._dns_host, conn.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise urllib3_connection.NameResolutionError(conn.host, conn, exc) from exc
    allowed = [info for info in infos if policy.allows_address(str(info[4][0]))]
    if not allowed:
        raise FetchRefusedError(f"{conn.host}:{conn.port}", "an address that is not public "
                                f"({', '.join(sorted({str(i[4][0]) for i in infos}))})")
    last: OSError | None = None
    for *_, address in allowed:
        try:
            return create_connection((str(address[0]), conn.port), conn.timeout, source_address=conn.source_address,
                                     socket_options=conn.socket_options)
        except OSError as exc:
            last = exc
    raise urllib3_connection.NewConnectionError(conn, f"Failed to establish a new connection: {last}") from last


class _VettedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _vetted_connection(self)


class _VettedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _vetted_connection(self)


class _VettedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


def vet_connections(pool_manager: Any) -> None:
    """Make a urllib3 PoolManager check, at connect time, every address against the current policy."""
    pool_manager.pool_classes_by_scheme = {"http": _VettedHTTPPool, "https": _VettedHTTPSPool}
    pool_manager.key_fn_by_scheme = dict(pool_manager.key_fn_by_scheme)
