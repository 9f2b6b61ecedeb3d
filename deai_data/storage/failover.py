"""Asking the sources of an object in turn (gateways, nodes, providers): the first good answer wins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from ..errors import FetchRefusedError, IntegrityError, NotFoundError, StorageError

S = TypeVar("S")
T = TypeVar("T")


def first_answer(sources: Iterable[S], call: Callable[[S], T], *, what: str, locator: str | None = None,
                 kind: str = "source") -> T:
    """`call(source)` for each source until one returns. A source that served altered data
    (IntegrityError) is passed over like a failing one, and named if no source does better;
    FetchRefusedError or NotFoundError only when every source says so; else a StorageError naming the last
    failure."""
    errors: list[StorageError | IntegrityError] = []
    for source in sources:
        try:
            return call(source)
        except (StorageError, IntegrityError) as exc:
            errors.append(exc)
    if not errors:
        raise StorageError(f"{what}: no {kind} to ask", locator=locator)
    lied = next((e for e in errors if isinstance(e, IntegrityError)), None)
    if lied is not None:
        raise lied
    if all(isinstance(e, FetchRefusedError) for e in errors):
        raise errors[0]
    if all(isinstance(e, NotFoundError) for e in errors):
        raise NotFoundError(locator) if locator else errors[-1]
    failed = next(e for e in reversed(errors) if not isinstance(e, NotFoundError))
    raise StorageError(f"{what}: every {kind} failed; last: {failed.message}", locator=locator,
                       hint=failed.hint or f"retry later or add another {kind}")
