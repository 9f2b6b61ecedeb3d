"""Is an object still stored where a manifest says? The cheapest check each backend offers (a stat, a HEAD,
Arweave's confirmations, a provider's piece lookup), or, asked for, a streamed SHA-256 of the whole object.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ..errors import FetchRefusedError, IntegrityError, NotFoundError
from .base import Confirming
from .registry import store_for

STATES = ("available", "pending", "missing", "wrong_size", "corrupt", "unreachable", "refused")
"""`available`: served with the size the manifest says (and, when hashed, the right SHA-256); `pending`: an
Arweave transaction not yet in a block; `missing`: the backend says there is no such object; `wrong_size` /
`corrupt`: served, but not the object the manifest names; `unreachable`: the check failed (network, timeout,
an error answer); `refused`: the fetch policy does not allow the locator."""
FETCHABLE = ("available", "pending")
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Observation:
    """What one check of one object found. `hashed` is True when the whole object was read and its SHA-256
    compared (`corrupt` when it differed), False when only its presence and size were checked."""

    locator: str
    backend: str
    state: str
    size: int | None = None
    confirmations: int | None = None
    hashed: bool = False
    seconds: float = 0.0
    detail: str = ""

    @property
    def fetchable(self) -> bool:
        return self.state in FETCHABLE


def _streamed_sha256(locator: str, size: int) -> str:
    """SHA-256 of `[0, size)` read in 8 MiB ranges: memory stays bounded whatever the object's size."""
    store = store_for(locator)
    digest = hashlib.sha256()
    for start in range(0, size, _CHUNK):
        end = min(size, start + _CHUNK)
        chunk = store.get(locator, start, end)
        if len(chunk) != end - start:
            raise IntegrityError(f"asked for {end - start} bytes at {start}, got {len(chunk)}", locator=locator)
        digest.update(chunk)
    return digest.hexdigest()


def backend_of(locator: str) -> str:
    """The backend a locator names (its scheme; `file` for a bare path), even for a malformed URI."""
    return locator.split("://", 1)[0].lower() if "://" in locator else "file"


def _why(exc: BaseException) -> str:
    """A short reason in our words: the error's class and its first line, never a whole server answer."""
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def probe_object(locator: str, size: int, *, sha256: str | None = None) -> Observation:
    """Check one object the manifest says is `size` bytes at `locator` (with `sha256`: read it whole, in
    bounded memory, and compare). Never raises for what a backend answers: the answer is the state.
    Apply the fetch policy around the call (`fetch_policy.applied`) for untrusted locators."""
    from . import fetch_policy

    backend = backend_of(locator)
    started = time.monotonic()

    def seen(state: str, size: int | None = None, confirmations: int | None = None, hashed: bool = False,
             detail: str = "") -> Observation:
        return Observation(locator, backend, state, size, confirmations, hashed,
                           round(time.monotonic() - started, 4), detail)

    confirmations = None
    try:
        fetch_policy.current().check(locator)
        store = store_for(locator)
        if isinstance(store, Confirming):
            status = store.status(locator)
            if not status.confirmed:
                return seen("pending", confirmations=0, detail="not yet in a block")
            confirmations = status.confirmations
        served = store.stat(locator).size
        if served != size:
            return seen("wrong_size", size=served, confirmations=confirmations,
                        detail=f"served {served} bytes, the manifest says {size}")
        if sha256 is not None and _streamed_sha256(locator, size) != sha256:
            return seen("corrupt", size=served, confirmations=confirmations, hashed=True,
                        detail="the bytes served do not hash to the manifest's SHA-256")
        return seen("available", size=served, confirmations=confirmations, hashed=sha256 is not None)
    except FetchRefusedError:
        return seen("refused", detail="refused by the fetch policy")
    except NotFoundError:
        return seen("missing", detail="no such object")
    except IntegrityError as exc:
        return seen("corrupt", hashed=True, detail=_why(exc))
    except Exception as exc:  # a backend's failure, expected (DeaiError) or not, is an observation, not a crash
        return seen("unreachable", detail=_why(exc))
