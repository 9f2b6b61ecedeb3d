"""Settings of a network store URI (`ar://?gateway=...&wallet=...`): each part from the URI's query,
else from an environment variable, else a default."""

from __future__ import annotations

import os
from urllib.parse import parse_qs

from ..errors import StorageError
from .base import parse_uri


def env_list(variable: str) -> list[str]:
    """A comma-separated environment variable as a list (empty when unset)."""
    return [part.strip() for part in os.environ.get(variable, "").split(",") if part.strip()]


class StoreQuery:
    """The query of `uri`, read part by part."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._query = parse_qs(parse_uri(uri).query)

    def values(self, name: str, env: str | None = None) -> list[str]:
        """Every `name=` of the query, else the comma-separated `env` variable."""
        return self._query.get(name) or (env_list(env) if env else [])

    def value(self, name: str, env: str | None = None, default: str | None = None) -> str | None:
        """The first `name=` of the query, else the `env` variable, else `default`."""
        found = self._query.get(name) or [os.environ.get(env, "") if env else ""]
        return found[0] or default

    def integer(self, name: str, default: int) -> int:
        text = self.value(name)
        try:
            return default if text is None else int(text)
        except ValueError:
            raise StorageError(f"{name} must be an integer, not {text!r}", locator=self.uri) from None
