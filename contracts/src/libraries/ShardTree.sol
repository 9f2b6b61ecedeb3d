// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title ShardTree: inclusion proofs in deai-data's content root (an RFC 9162 Merkle tree over the sealed
/// shards' SHA-256: leaves SHA-256(0x00 || shardHash), nodes SHA-256(0x01 || left || right), a lone last
/// node moving up unchanged).
library ShardTree {
    /// @notice True when `proof` shows `shardHash` is leaf `index` of a tree of `size` leaves with root `root`.
    function verify(bytes32 shardHash, uint256 index, uint256 size, bytes32[] calldata proof, bytes32 root)
        internal
        pure
        returns (bool)
    {
        if (index >= size) return false;
        bytes32 node = sha256(abi.encodePacked(bytes1(0x00), shardHash));
        uint256 used = 0;
        while (size > 1) {
            if (index & 1 == 1) {
                if (used == proof.length) return false;
                node = sha256(abi.encodePacked(bytes1(0x01), proof[used++], node));
            } else if (index + 1 < size) {
                if (used == proof.length) return false;
                node = sha256(abi.encodePacked(bytes1(0x01), node, proof[used++]));
            }
            index >>= 1;
            size = (size + 1) >> 1;
        }
        return used == proof.length && node == root;
    }
}
