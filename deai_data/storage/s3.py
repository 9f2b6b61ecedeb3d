"""`s3://` store: S3-compatible object storage (AWS, MinIO, R2, Ceph...) through boto3, content-addressed
like LocalStore (`<prefix>/objects/sha256/<2 hex>/<64 hex>`), multipart for large objects, ranged reads.

The endpoint is the reader's own setting (`endpoint=` or DEAI_S3_ENDPOINT), never taken from a manifest:
locators name a bucket and a key only, so a hostile manifest cannot send a request (or its signature) to a
server of its choosing. Bytes read are verified by the dataset reader like any other store's.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import LimitError, NotFoundError, StorageError, UsageError
from ..formats import limits
from .base import Buffer, ExistsByStat, ObjectStat, check_range, content_path, parse_uri, sha256_file
from .store_uri import StoreQuery

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's smallest part (all but the last)
ENDPOINT_ENV = "DEAI_S3_ENDPOINT"
REGION_ENV = "DEAI_S3_REGION"


def split_locator(locator: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`."""
    parsed = parse_uri(locator)
    key = parsed.path.lstrip("/")
    if parsed.scheme.lower() != "s3" or not parsed.netloc or not key:
        raise StorageError("not an S3 locator", locator=locator, hint="expected s3://BUCKET/KEY")
    return parsed.netloc, key


class _ViewReader(io.RawIOBase):
    """A read-only file over a buffer, for boto3's uploads: parts are read from `data`, never a whole copy."""

    def __init__(self, data: Buffer) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._pos:self._pos + len(buffer)]
        memoryview(buffer)[:len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class S3Store(ExistsByStat):
    """Store in an S3 bucket under `prefix`; reads any `s3://BUCKET/KEY` locator through the same endpoint.

    `endpoint` is the service URL (None: AWS, or DEAI_S3_ENDPOINT / boto3's own AWS_ENDPOINT_URL);
    credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID..., profiles, instance roles). Objects of
    `part_size` or more go up in parts of that size, `threads` at a time; every call is retried by botocore
    (`retries` attempts, standard mode: exponential backoff with jitter on throttling and 5xx)."""

    schemes: tuple[str, ...] = ("s3",)

    def __init__(self, bucket: str | None = None, prefix: str = "", *, endpoint: str | None = None,
                 region: str | None = None, part_size: int = 64 * MiB, threads: int = 8, retries: int = 5,
                 timeout: float = 60.0, client: Any = None) -> None:
        if part_size < MIN_PART:
            raise UsageError(f"part_size must be at least {MIN_PART} bytes (S3's smallest part)")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or None
        self.region = region or os.environ.get(REGION_ENV) or None
        self.part_size, self.threads = part_size, threads
        self._client = client
        self._config = (retries, timeout)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint!r})"

    @property
    def uri(self) -> str:
        query = f"?endpoint={quote(self.endpoint, safe=':/')}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{query}"

    @classmethod
    def from_uri(cls, uri: str) -> S3Store:
        """`s3://BUCKET[/PREFIX][?endpoint=URL&region=R&part_size=BYTES]`; unset parts from DEAI_S3_ENDPOINT,
        DEAI_S3_REGION."""
        parsed, query = parse_uri(uri), StoreQuery(uri)
        if not parsed.netloc:
            raise StorageError("an S3 store needs a bucket", locator=uri, hint="s3://BUCKET/PREFIX?endpoint=URL")
        return cls(parsed.netloc, parsed.path, endpoint=query.value("endpoint", ENDPOINT_ENV),
                   region=query.value("region", REGION_ENV), part_size=query.integer("part_size", 64 * MiB))

    @property
    def client(self) -> Any:
        """The boto3 client (thread-safe), made on first use."""
        with self._lock:
            if self._client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError:
                    raise StorageError("the s3:// store needs boto3",
                                       hint="pip install 'deai-data[s3]'") from None
                retries, timeout = self._config
                config = Config(retries={"max_attempts": retries, "mode": "standard"}, connect_timeout=10,
                                read_timeout=timeout, max_pool_connections=max(10, self.threads * 2))
                self._client = boto3.session.Session().client("s3", endpoint_url=self.endpoint,
                                                              region_name=self.region, config=config)
            return self._client

    # ---- writing ------------------------------------------------------------------------------------
    def _key(self, sha256: str) -> str:
        return f"{self.prefix}/{content_path(sha256)}" if self.prefix else content_path(sha256)

    def _target(self, sha256: str) -> tuple[str, str]:
        if self.bucket is None:
            raise UsageError("this S3 store reads only: open one with a bucket to write (s3://BUCKET/PREFIX)")
        key = self._key(sha256)
        return key, f"s3://{self.bucket}/{key}"

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        """Upload `data` under its SHA-256 (skipped when an object of that size is there); returns the locator."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        key, locator = self._target(digest)
        size = memoryview(data).nbytes
        if self._has(locator, size):
            return locator
        self._upload(_ViewReader(data), key, labels)
        return locator

    def put_file(self, path: str | Path, *, sha256: str | None = None,
                 labels: Mapping[str, str] | None = None) -> str:
        """Upload a local file (streamed, in parts when large) under its SHA-256; returns the locator."""
        try:
            if sha256 is None:
                sha256 = sha256_file(path).hexdigest()
            size = os.stat(path).st_size
            key, locator = self._target(sha256)
            if self._has(locator, size):
                return locator
            with open(path, "rb") as fh:
                self._upload(fh, key, labels)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from None
        return locator

    def _upload(self, source: Any, key: str, labels: Mapping[str, str] | None) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size,
                                max_concurrency=self.threads, use_threads=self.threads > 1)
        extra = {"Metadata": {name.lower(): value for name, value in labels.items()}} if labels else None
        self._call(f"s3://{self.bucket}/{key}", self.client.upload_fileobj, source, self.bucket, key,
                   ExtraArgs=extra, Config=config)

    def _has(self, locator: str, size: int) -> bool:
        try:
            return self.stat(locator).size == size
        except NotFoundError:
            return False

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of the object (fewer when it is shorter), never more than asked for: a server
        that ignores the range is read only as far as needed. Without `end`, at most the `response_bytes`
        limit."""
        check_range(start, end)
        bucket, key = split_locator(locator)
        if end is not None and end == start:
            return b""
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self._call(locator, self.client.get_object, Bucket=bucket, Key=key, Range=wanted)
        except StorageError as exc:
            if "InvalidRange" in exc.message:  # start at or past the end
                return b""
            raise
        body = response["Body"]
        try:
            length, first = int(response.get("ContentLength", 0)), _served_from(response)
            if first < start:  # the whole object came back: skip to `start` without keeping it
                _discard(body, start - first)
                length -= start - first
            cap = limits.current().response_bytes if end is None else end - start
            if end is None and length > cap:
                raise LimitError(f"{locator} is {length} bytes, more than can be read without a size",
                                 limit="response_bytes")
            return body.read(min(length, cap))  # one read of at most what was asked for
        except (OSError, ValueError) as exc:  # urllib3's protocol and read-timeout errors while streaming
            raise StorageError(f"S3: reading the body failed: {exc}", locator=locator) from None
        finally:
            body.close()

    def stat(self, locator: str) -> ObjectStat:
        bucket, key = split_locator(locator)
        head = self._call(locator, self.client.head_object, Bucket=bucket, Key=key)
        return ObjectStat(locator, int(head["ContentLength"]))

    def _call(self, locator: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """`method(...)` with botocore's errors as NotFoundError / StorageError (after its own retries)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(*args, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                raise NotFoundError(locator) from None
            raise StorageError(f"S3 {code or status}: {error.get('Message', '')}".strip(), locator=locator,
                               hint="check the bucket, the credentials and the endpoint") from None
        except (BotoCoreError, ValueError) as exc:  # connection, timeout, credentials, malformed answers
            raise StorageError(f"S3: {exc}", locator=locator,
                               hint=f"check the endpoint ({self.endpoint or 'AWS'}) and the credentials") from None


def _served_from(response: dict[str, Any]) -> int:
    """Where the body starts in the object: the first byte of its Content-Range (`bytes a-b/n`), or 0 when the
    server sent the whole object."""
    served = response.get("ContentRange")
    return int(served.split(" ", 1)[1].split("-", 1)[0]) if served else 0


def _discard(body: Any, count: int) -> None:
    while count > 0:
        chunk = body.read(min(count, 8 * MiB))
        if not chunk:
            return
        count -= len(chunk)


def reader_from_env() -> S3Store:
    """The shared reader for `s3://` locators: DEAI_S3_ENDPOINT (or AWS_ENDPOINT_URL), DEAI_S3_REGION."""
    return S3Store()
