"""The one exception hierarchy of deai-data: every failure the SDK raises is a `DeaiError`.

Each error names what failed (dataset, shard, segment, locator, field) and says what to do next.
"""

from __future__ import annotations

from collections.abc import Iterator


class DeaiError(Exception):
    """Base class of every error raised by deai-data."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class UsageError(DeaiError, ValueError):
    """A call or command was given an argument it cannot take (also a ValueError, as Python expects)."""

    exit_code = 2


class FormatError(DeaiError, ValueError):
    """Bytes that are not what their format requires (a CID, CBOR, dag-pb, CAR, ANS-104 item, varint, piece
    CID): parsers of untrusted bytes raise this and nothing else (also a ValueError)."""

    exit_code = 3


class IntegrityError(DeaiError):
    """Bytes from a store do not match what the manifest (or the AEAD tag) says they must be.

    Nothing from the failed object or segment is ever returned.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        shard: int | None = None,
        segment: int | None = None,
        locator: str | None = None,
        hint: str | None = "the store or gateway returned altered data; try another mirror",
    ) -> None:
        self.dataset = dataset
        self.shard = shard
        self.segment = segment
        self.locator = locator
        where = []
        if dataset is not None:
            where.append(f"dataset {dataset}")
        if shard is not None:
            where.append(f"shard {shard}")
        if segment is not None:
            where.append(f"segment {segment}")
        if locator is not None:
            where.append(f"from {locator}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)


class DecryptionError(DeaiError):
    """The key given does not open the data: it does not match the dataset's key commitment."""

    exit_code = 4


class ManifestError(DeaiError):
    """A manifest is malformed, not canonical, or inconsistent; `field` names the bad field."""

    exit_code = 5

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        self.field = field
        text = f"manifest field {field!r}: {message}" if field else f"manifest: {message}"
        super().__init__(text, hint=hint or "the manifest is corrupt or was not written by deai-data")


class StorageError(DeaiError):
    """A store could not complete a request (I/O error, timeout, HTTP 5xx after retries)."""

    exit_code = 6

    def __init__(self, message: str, *, locator: str | None = None, hint: str | None = None) -> None:
        self.locator = locator
        text = f"{locator}: {message}" if locator else message
        super().__init__(text, hint=hint)


class NotFoundError(StorageError):
    """No object exists at a locator."""

    exit_code = 7

    def __init__(self, locator: str, *, hint: str | None = None) -> None:
        super().__init__(
            "object not found",
            locator=locator,
            hint=hint or "check the locator, or that the object was uploaded to this store",
        )


class FetchRefusedError(StorageError):
    """The fetch policy refuses a URI: a scheme, a non-public address or a local file that an untrusted source
    (the chain, a manifest, a redirect) named."""

    def __init__(self, locator: str, what: str) -> None:
        super().__init__(f"refused to fetch {what}", locator=locator,
                         hint="an untrusted source named it; allow it on purpose with DEAI_FETCH_ALLOW=private,files "
                              "or deai_data.storage.fetch_policy.configure(...)")


class UnsupportedLocatorError(StorageError):
    """No store is registered for a locator's URI scheme."""

    exit_code = 2


class KeystoreError(DeaiError):
    """The keystore cannot be opened or has no entry for a key."""

    exit_code = 8


class SourceError(DeaiError):
    """A publish source cannot be read or turned into Arrow records."""

    exit_code = 9


class PublishError(DeaiError):
    """A publish could not be completed or resumed."""

    exit_code = 10


class ChainError(DeaiError):
    """The chain could not be reached, or a transaction failed for a reason other than a contract check."""

    exit_code = 11


class ContractError(ChainError):
    """A contract refused a call (it reverted); `error` is its custom error name, `error_args` the values."""

    exit_code = 12

    def __init__(self, message: str, *, error: str | None = None, args: dict | None = None,
                 hint: str | None = None) -> None:
        self.error = error
        self.error_args = dict(args or {})
        super().__init__(message, hint=hint)


class MarketError(ContractError):
    """The market refused: its contract reverted, or the market client refused before sending."""


class KeyDeliveryError(DeaiError):
    """A delivered key is missing or does not match the dataset's key commitment (then it was disputed)."""

    exit_code = 13


class CatalogError(DeaiError):
    """The analysts' catalog cannot be opened, or a query on it failed."""

    exit_code = 14


class LimitError(DeaiError):
    """An input declares more than a configured limit allows (docs/security.md lists them); `limit` names it."""

    exit_code = 15

    def __init__(self, message: str, *, limit: str, hint: str | None = None) -> None:
        self.limit = limit
        super().__init__(f"limit {limit}: {message}", hint=hint or "the input is hostile or corrupt; if it is "
                         "genuine, raise the limit with deai_data.formats.limits.configure(...)")


def nested_exceptions(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception wrapped inside it (causes, contexts, and the `reason` or arguments HTTP libraries
    wrap theirs in), outermost first, each once."""
    pending, seen = [exc], set()
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        nested = [getattr(error, "reason", None), error.__cause__, error.__context__, *error.args]
        pending += [n for n in nested if isinstance(n, BaseException)]


def network_reason(exc: BaseException) -> str:
    """What went wrong on the network, in a few words ("connection refused", "timed out", "name or service not
    known"), dug out of the layers an HTTP library wraps around it; else the exception's first 200 characters."""
    for error in nested_exceptions(exc):
        if isinstance(error, TimeoutError) or type(error).__name__ in ("ReadTimeoutError", "ConnectTimeoutError"):
            return "timed out"
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower()
    return f"{type(exc).__name__}: {str(exc)[:200]}"
