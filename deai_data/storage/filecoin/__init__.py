"""Filecoin backend: commP and PieceCIDs, the PDP provider API, FilecoinWarmStorageService EIP-712
authorisations (loaded on first use: they import eth-account), and the `piece://` store."""

from typing import Any

from .commp import Piece, padded_piece_size, piece_of, piece_of_file
from .pdp import PdpClient, PendingTransaction
from .store import PieceStore, parse_piece_locator

_WARM_STORAGE = ("WarmStorageAuth", "add_pieces_extra_data", "create_data_set_extra_data")


def __getattr__(name: str) -> Any:
    if name in _WARM_STORAGE:
        from . import warm_storage
        return getattr(warm_storage, name)
    raise AttributeError(name)


__all__ = ["PdpClient", "PendingTransaction", "Piece", "PieceStore", "padded_piece_size", "parse_piece_locator",
           "piece_of", "piece_of_file", *_WARM_STORAGE]
