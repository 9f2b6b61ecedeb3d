"""Trainer: stream a sealed dataset into a PyTorch DataLoader, train a tiny model, stop midway,
and resume exactly where the first run stopped.

    python examples/train_streaming.py [MANIFEST_URI]

Without an argument it publishes a small generated dataset first (key in the keystore, as for an
owner). Needs the `torch` extra.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import deai_data
from deai_data.torch import StreamingDataLoader, StreamingDataset


def make_dataset(root: Path) -> str:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4096, 8)).astype(np.float32)
    labels = (features.sum(axis=1) > 0).astype(np.int64)
    result = deai_data.publish({"features": features, "label": labels}, store=root / "store",
                               name="toy-classification", shard_size=32 << 10)
    return result.manifest_uri


def train(loader: StreamingDataLoader, model: torch.nn.Module, steps: int | None = None) -> int:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    taken = 0
    for batch in loader:
        loss = torch.nn.functional.cross_entropy(model(batch["features"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        taken += 1
        if steps is not None and taken == steps:
            break
    return taken


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        train_and_resume(argv[1])
        return
    with tempfile.TemporaryDirectory(prefix="deai-train-") as scratch:
        train_and_resume(make_dataset(Path(scratch)))


def train_and_resume(uri: str) -> None:
    model = torch.nn.Linear(8, 2)

    def loader() -> StreamingDataLoader:
        return StreamingDataLoader(StreamingDataset(uri, batch_size=64, batched=True, seed=7))

    first = loader()
    done = train(first, model, steps=20)
    state = json.dumps(first.state_dict())  # what a checkpoint would hold
    print(f"stopped after {done} batches; state {state}")

    resumed = loader()
    resumed.load_state_dict(json.loads(state))
    rest = train(resumed, model)
    print(f"resumed and trained {rest} more batches: {done + rest} in the epoch")

    with torch.no_grad():
        batch = next(iter(loader()))
        accuracy = (model(batch["features"]).argmax(1) == batch["label"]).float().mean().item()
    print(f"accuracy on one batch: {accuracy:.2f}; verified {done + rest} batches of sealed shards")


if __name__ == "__main__":
    main(sys.argv)
