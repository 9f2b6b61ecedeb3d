"""PyTorch integration (the `torch` extra): a streaming, verified, resumable IterableDataset."""

from .blobs import Blobs
from .dataset import StreamingDataLoader, StreamingDataset, decode_image, to_torch

__all__ = ["Blobs", "StreamingDataLoader", "StreamingDataset", "decode_image", "to_torch"]
