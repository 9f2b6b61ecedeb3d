"""Stores for the Ray tests, shipped to the workers by value (cloudpickle)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from deai_data import LocalStore


class DiesOnceStore(LocalStore):
    """A real LocalStore whose worker process SIGKILLs itself in its first put of shard `index` (the first time
    only: `marker` remembers), so that Ray retries the task on another worker."""

    def __init__(self, root: str | Path, marker: str | Path, index: int) -> None:
        super().__init__(root)
        self.marker = str(marker)
        self.index = index

    def put(self, data, *, sha256=None, labels=None):
        if (labels or {}).get("Shard-Index") == str(self.index):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().put(data, sha256=sha256, labels=labels)
