// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice RFC 9162 Merkle Tree Hash and audit paths built recursively from the RFC's definition
/// (split at the largest power of two below n), independently of the Python side's level-by-level
/// construction: Python checks these roots and proofs, and the market checks Python's.
contract MerkleBuilder {
    function leafHash(bytes32 shardHash) public pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), shardHash));
    }

    function root(bytes32[] memory shardHashes) public pure returns (bytes32) {
        if (shardHashes.length == 0) return sha256("");
        return _mth(shardHashes, 0, shardHashes.length);
    }

    /// @notice PATH(m, D[n]) of RFC 9162 section 2.1.3.1: siblings from the leaf up.
    function proof(bytes32[] memory shardHashes, uint256 index) public pure returns (bytes32[] memory path) {
        require(index < shardHashes.length, "index out of range");
        bytes32[] memory reversed = new bytes32[](64);
        uint256 depth = 0;
        uint256 start = 0;
        uint256 n = shardHashes.length;
        uint256 m = index;
        // Walk down from the root, recording the sibling subtree at each split.
        while (n > 1) {
            uint256 k = _split(n);
            if (m < k) {
                reversed[depth++] = _mth(shardHashes, start + k, n - k);
                n = k;
            } else {
                reversed[depth++] = _mth(shardHashes, start, k);
                start += k;
                m -= k;
                n -= k;
            }
        }
        path = new bytes32[](depth);
        for (uint256 i = 0; i < depth; ++i) {
            path[i] = reversed[depth - 1 - i];
        }
    }

    function _mth(bytes32[] memory hashes, uint256 start, uint256 n) private pure returns (bytes32) {
        if (n == 1) return leafHash(hashes[start]);
        uint256 k = _split(n);
        return sha256(abi.encodePacked(bytes1(0x01), _mth(hashes, start, k), _mth(hashes, start + k, n - k)));
    }

    /// @dev The largest power of two strictly below n (n > 1).
    function _split(uint256 n) private pure returns (uint256 k) {
        k = 1;
        while (k << 1 < n) k <<= 1;
    }
}
