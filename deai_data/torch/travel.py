"""How a batch travels from a DataLoader worker to the main process. Large values go by shared memory (a
handle, no copy); small ones inline through the worker's pipe, which here costs about a tenth of passing a
shared-memory handle (the handle's file descriptor goes over a socket of its own, per tensor)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

INLINE_BYTES = 1 << 20  # below this a value is copied through the pipe; from it on it goes by shared memory


class Parcel(dict):
    """A batch (a dict) on its way out of a worker; it arrives as a plain dict."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, ([(name, _inline(value)) for name, value in self.items()],))


def parcel(batch: Any) -> Any:
    """`batch` ready to leave a worker: a dict becomes a Parcel, anything else goes as torch sends it."""
    return Parcel(batch) if type(batch) is dict else batch


class _InlineTensor:
    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __reduce__(self) -> tuple[Any, ...]:
        array = self.tensor.numpy()
        return (_tensor, (array.tobytes(), array.dtype.str, array.shape))


def _inline(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.device.type == "cpu" and not value.requires_grad \
            and value.nbytes < INLINE_BYTES and value.dtype != torch.bfloat16:
        return _InlineTensor(value.contiguous())
    return value


def _tensor(data: bytes, dtype: str, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(data, np.dtype(dtype)).reshape(shape).copy())
