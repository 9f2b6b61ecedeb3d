"""Where deai-data keeps local state: `$DEAI_HOME`, default `~/.deai-data` (keystore, journals)."""

from __future__ import annotations

import os
from pathlib import Path


def deai_home() -> Path:
    home = os.environ.get("DEAI_HOME")
    return Path(home).expanduser() if home else Path.home() / ".deai-data"
