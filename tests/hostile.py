"""Helpers for the hostile-input tests: run a call and check that it failed with the expected typed error in
bounded time and bounded memory (peak of Python allocations, measured with tracemalloc around the call)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def bounded(call: Callable[[], Any], expected: type[BaseException] | tuple[type[BaseException], ...], *,
            seconds: float = 10.0, mib: float = 64.0) -> BaseException:
    """The exception `call()` raised; asserts it is `expected`, that it came within `seconds` and that the
    call's allocations peaked below `mib` MiB."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    except BaseException as exc:
        caught = exc
    else:
        caught = None
    finally:
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert caught is not None, f"no error (expected {expected})"
    assert isinstance(caught, expected), f"{type(caught).__name__}: {caught} (expected {expected})"
    assert took < seconds, f"took {took:.1f} s (limit {seconds} s)"
    assert peak < mib * (1 << 20), f"peak allocation {peak / (1 << 20):.0f} MiB (limit {mib} MiB)"
    return caught
