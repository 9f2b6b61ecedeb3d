"""PyTorch integration (the `torch` extra): a streaming, verified, resumable IterableDataset."""

from .dataset import StreamingDataLoader, StreamingDataset, decode_image, to_torch

__all__ = ["StreamingDataLoader", "StreamingDataset", "decode_image", "to_torch"]
