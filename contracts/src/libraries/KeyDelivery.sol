// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Secp256k1} from "./Secp256k1.sol";

/// @title KeyDelivery: the verifiable key delivery of deai-data (hashed ECDH on secp256k1).
/// @notice A buyer with one-time key pair (b, B = b*G) receives (R = r*G, c = key XOR pad) where
/// pad = SHA-256(LABEL, chainid, market, purchaseId, keccak256(B), R.x, (r*B).x). Revealing b lets anyone,
/// this contract included, recompute the key and compare HMAC-SHA256(key, COMMITMENT_LABEL || sealId)
/// with the registered key commitment. docs/market.md gives the security argument.
library KeyDelivery {
    /// @dev "deai-data/v2/key-delivery", right-padded to 32 bytes.
    bytes32 internal constant DELIVERY_LABEL = "deai-data/v2/key-delivery";
    /// @dev The key commitment's label (unchanged since manifest version 1).
    bytes27 internal constant COMMITMENT_LABEL = "deai-data/v1/key-commitment";
    /// @dev "deai-data/v3/key-link", right-padded to 32 bytes.
    bytes32 internal constant KEY_LINK_LABEL = "deai-data/v3/key-link";
    bytes32 private constant IPAD = 0x3636363636363636363636363636363636363636363636363636363636363636;
    bytes32 private constant OPAD = 0x5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c;

    /// @notice True when the ephemeral point can be delivered: on the curve, with x below the group order
    /// (so that `ecrecover` can later multiply it; a seller draws again in the 2^-127 case it is not).
    function isValidEphemeral(bytes32 x, bytes32 y) internal pure returns (bool) {
        return uint256(x) != 0 && uint256(x) < Secp256k1.N && Secp256k1.isOnCurve(uint256(x), uint256(y));
    }

    /// @notice The one-time pad the data key was XORed with for a purchase on `market`.
    function pad(address market, uint256 purchaseId, bytes32 buyerKeyHash, bytes32 ephemeralX, bytes32 sharedX)
        internal
        view
        returns (bytes32)
    {
        return sha256(abi.encode(DELIVERY_LABEL, block.chainid, market, purchaseId, buyerKeyHash, ephemeralX, sharedX));
    }

    /// @notice HMAC-SHA256(key, COMMITMENT_LABEL || sealId) with the SHA-256 precompile (a 32-byte key is
    /// zero-padded to the 64-byte block).
    function commitment(bytes32 key, bytes32 sealId) internal pure returns (bytes32) {
        bytes32 inner = sha256(abi.encodePacked(key ^ IPAD, IPAD, COMMITMENT_LABEL, sealId));
        return sha256(abi.encodePacked(key ^ OPAD, OPAD, inner));
    }

    /// @notice The data key of the version a linked version inherits shards of:
    /// keccak256(KEY_LINK_LABEL, key) XOR keyLink. Knowing the earlier key tells nothing of the later one.
    function linkedKey(bytes32 key, bytes32 keyLink) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(KEY_LINK_LABEL, key)) ^ keyLink;
    }

    /// @notice Check a buyer's secret against its public key and the shared point against the delivery, then
    /// return the key delivered for purchase `purchaseId` on `market`. Reverts with the name of the first check
    /// that fails.
    function recoverKey(
        address market,
        uint256 purchaseId,
        bytes32 buyerKeyX,
        bytes32 buyerKeyY,
        bytes32 ephemeralX,
        bytes32 ephemeralY,
        bytes32 encryptedKey,
        bytes32 buyerSecret,
        bytes32 sharedX,
        bytes32 sharedY
    ) internal view returns (bytes32 key) {
        uint256 b = uint256(buyerSecret);
        address buyerKey = Secp256k1.toAddress(uint256(buyerKeyX), uint256(buyerKeyY));
        if (Secp256k1.mulAddress(b, Secp256k1.GX, false) != buyerKey) revert InvalidProof("buyerSecret");
        address shared = Secp256k1.mulAddress(b, uint256(ephemeralX), uint256(ephemeralY) & 1 == 1);
        if (shared == address(0) || shared != Secp256k1.toAddress(uint256(sharedX), uint256(sharedY))) {
            revert InvalidProof("sharedPoint");
        }
        bytes32 buyerKeyHash = keccak256(abi.encodePacked(buyerKeyX, buyerKeyY));
        return encryptedKey ^ pad(market, purchaseId, buyerKeyHash, ephemeralX, sharedX);
    }

    error InvalidProof(string name);
}
