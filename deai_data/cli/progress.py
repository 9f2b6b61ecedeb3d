"""A small progress line for long CLI work, drawn on stderr only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """`update(text)` redraws one status line at most ten times a second; `close()` draws the last
    update if it was held back, and ends the line."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._width = 0
        self._held: str | None = None

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            self._held = text
            return
        self._last, self._held = now, None
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._held is not None:
            self.update(self._held, force=True)
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
