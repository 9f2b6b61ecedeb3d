// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDataMarket} from "./IDataMarket.sol";
import {KeyDelivery} from "./libraries/KeyDelivery.sol";

/// @title DeliveryJudge: recovers the key a disputed delivery carried, for the market that calls it.
/// @notice The dispute's elliptic-curve checks, kept out of the market's runtime code (EIP-170 caps it at 24,576
/// bytes). Stateless: each market deploys its own in its constructor and calls it read-only.
contract DeliveryJudge {
    /// @notice The data key delivered for purchase `purchaseId` of the calling market, once the proof's secret
    /// and shared point check out (KeyDelivery.recoverKey); reverts with `InvalidProof(name)` otherwise.
    function recoverKey(uint256 purchaseId, IDataMarket.DisputeProof calldata proof) external view returns (bytes32) {
        IDataMarket.Delivery calldata delivery = proof.delivery;
        return KeyDelivery.recoverKey(
            msg.sender,
            purchaseId,
            proof.buyerKeyX,
            proof.buyerKeyY,
            delivery.ephemeralX,
            delivery.ephemeralY,
            delivery.encryptedKey,
            proof.buyerSecret,
            proof.sharedX,
            proof.sharedY
        );
    }
}
