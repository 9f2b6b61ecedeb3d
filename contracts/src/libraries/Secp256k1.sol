// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Secp256k1: point checks and scalar multiplication checked with `ecrecover`.
/// @notice `ecrecover(0, v, r = Q.x, s = k * Q.x mod n)` returns the address of k*Q (Q the curve point with
/// x-coordinate Q.x and y-parity v - 27), for about 3,000 gas: the EVM cannot multiply points, but it can
/// confirm that a claimed point is k*Q by comparing addresses (keccak256 of the 64-byte point, last 20 bytes).
library Secp256k1 {
    /// @dev The field prime p.
    uint256 internal constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;
    /// @dev The group order n.
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    /// @dev The generator's x-coordinate; its y-coordinate is even.
    uint256 internal constant GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798;

    /// @notice True when (x, y) is an affine point of the curve y^2 = x^3 + 7 over F_p.
    function isOnCurve(uint256 x, uint256 y) internal pure returns (bool) {
        if (x >= P || y >= P) return false;
        return mulmod(y, y, P) == addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
    }

    /// @notice The Ethereum address of the point (x, y): what `ecrecover` returns for it.
    function toAddress(uint256 x, uint256 y) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(x, y)))));
    }

    /// @notice The address of k*Q, where Q has x-coordinate `qx` (< n) and y-parity `qyOdd`; address(0) if
    /// k is not in [1, n-1] or the inputs are not a point.
    function mulAddress(uint256 k, uint256 qx, bool qyOdd) internal pure returns (address) {
        if (k == 0 || k >= N || qx == 0 || qx >= N) return address(0);
        return ecrecover(bytes32(0), qyOdd ? 28 : 27, bytes32(qx), bytes32(mulmod(k, qx, N)));
    }
}
