"""An Arweave upload in its own process, SIGKILLed after N chunks were sent (used by the resume test).

usage: arweave_upload_child.py GATEWAY JWK_FILE STATE_DIR DATA_FILE N
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from deai_data.storage.arweave import ArweaveStore, Wallet
from deai_data.storage.arweave.upload_state import UploadState


def main() -> None:
    gateway, jwk, state_dir, data_file, n = sys.argv[1:6]
    original = UploadState.chunk_sent

    def chunk_sent(self: UploadState, index: int) -> None:
        original(self, index)
        if len(self.chunks_sent) >= int(n):
            os.kill(os.getpid(), signal.SIGKILL)

    UploadState.chunk_sent = chunk_sent  # type: ignore[method-assign]
    store = ArweaveStore([gateway], Wallet.load(jwk), chunk_concurrency=1, state_dir=state_dir)
    print(store.put(Path(data_file).read_bytes()))


if __name__ == "__main__":
    main()
