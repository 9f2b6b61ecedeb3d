"""How work and results show themselves to people: a progress line on a terminal's stderr, a progress bar redrawn in
place in a Jupyter notebook, and Arrow tables (catalog results, records) as HTML tables in notebooks.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any, TextIO


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


# ---- notebooks ----------------------------------------------------------------------------------------------
def _ipython() -> Any:
    """The running IPython shell, or None (IPython is never imported here: only looked for)."""
    module = sys.modules.get("IPython")
    getter = getattr(module, "get_ipython", None)
    return getter() if getter is not None else None


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (which renders HTML), not a terminal."""
    return getattr(_ipython(), "kernel", None) is not None


def arrow_html(table: Any, max_rows: int = 20) -> str:
    """An Arrow table as an HTML table: its first `max_rows` rows (values escaped), its size and schema."""
    shown = table.slice(0, max_rows).to_pylist()
    head = "".join(f"<th>{html.escape(f.name)}<br><small>{html.escape(str(f.type))}</small></th>"
                   for f in table.schema)

    def cell(value: Any) -> str:
        text = value.hex() if isinstance(value, bytes) and len(value) <= 32 else (
            f"<{len(value)} bytes>" if isinstance(value, bytes) else str(value))
        return f"<td>{html.escape(text[:200])}</td>"

    body = "".join("<tr>" + "".join(cell(row[f.name]) for f in table.schema) + "</tr>" for row in shown)
    more = f" (first {max_rows} shown)" if table.num_rows > max_rows else ""
    return (f"<div><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<small>{table.num_rows:,} rows x {table.num_columns} columns{more}</small></div>")


def register_formatters() -> bool:
    """Show Arrow tables as HTML in the running IPython (what `Catalog.sql`, `Dataset.to_arrow` and `take` return);
    True when registered. Called on `import deai_data` inside IPython; Arrow itself has no HTML form."""
    shell = _ipython()
    if shell is None:
        return False
    import pyarrow as pa
    shell.display_formatter.formatters["text/html"].for_type(pa.Table, arrow_html)
    return True


class ProgressBar:
    """A progress bar: an HTML `<progress>` redrawn in place in a notebook, a `ProgressLine` elsewhere. Pass
    `on_publish` as `publish(progress=...)`, `on_verify` as `Dataset.verify(progress=...)`, or call `update`."""

    def __init__(self, label: str = "", total: int | None = None, unit: str = "", *,
                 stream: TextIO | None = None) -> None:
        self.label, self.total, self.unit = label, total, unit
        self._handle: Any = None
        self._line: ProgressLine | None = None
        self._last = 0.0
        self._state = (0, "")
        if in_notebook():
            from IPython.display import HTML, display
            self._html = HTML
            self._handle = display(HTML(self._render(0, "")), display_id=True)
        else:
            self._line = ProgressLine(stream)

    def _render(self, done: int, text: str) -> str:
        bar = (f"<progress value='{done}' max='{self.total}' style='width:50%'></progress>" if self.total
               else "<progress style='width:50%'></progress>")
        of = f" of {self.total:,}" if self.total else ""
        return f"<div>{html.escape(self.label)} {bar} {done:,}{of} {html.escape(self.unit)} {html.escape(text)}</div>"

    def update(self, done: int, text: str = "", *, force: bool = False) -> None:
        """Show `done` (of `total`) and a short text; redrawn at most ten times a second."""
        self._state = (done, text)
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self._handle is not None:
            self._handle.update(self._html(self._render(done, text)))
        elif self._line is not None:
            of = f"/{self.total:,}" if self.total else ""
            self._line.update(f"{self.label} {done:,}{of} {self.unit} {text}".strip(), force=force)

    def on_publish(self, progress: Any) -> None:
        """A `publish(progress=...)` callback: records done, bytes and rate."""
        rate = progress.plaintext_bytes / progress.elapsed / 1e6 if progress.elapsed else 0.0
        self.update(progress.records, f"({progress.shards} shards, {progress.plaintext_bytes / 1e6:,.1f} MB, "
                                      f"{rate:,.0f} MB/s)")

    def on_verify(self, report: Any, checked: int) -> None:
        """A `Dataset.verify(progress=...)` callback: shards checked, errors so far."""
        self.update(checked, f"({len(report.errors)} errors)" if report.errors else "")

    def close(self) -> None:
        """Draw the last state and end the bar."""
        self.update(*self._state, force=True)
        if self._line is not None:
            self._line.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
