// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "./Test.sol";
import {IDataMarket} from "../../src/IDataMarket.sol";

/// @notice Builds key deliveries and dispute proofs from first principles, for the unit and invariant tests:
/// the points come from forge's own secp256k1 (`createWallet`), the pad from docs/market.md's definition, so
/// the contract's `KeyDelivery` library is checked against an independent construction.
library DeliveryBuilder {
    /// @notice The order of secp256k1's group.
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice The delivery of `key` for purchase `pid` of `market` to the buyer key b*G with ephemeral secret
    /// r (`proof.delivery`), the buyer key's hash, and the buyer's dispute proof.
    function build(address market, uint256 pid, uint256 b, uint256 r, bytes32 key)
        internal
        returns (bytes32 keyHash, IDataMarket.DisputeProof memory proof)
    {
        Vm.Wallet memory buyerKey = VM.createWallet(b);
        Vm.Wallet memory ephemeral = VM.createWallet(r);
        Vm.Wallet memory shared = VM.createWallet(mulmod(r, b, N));
        keyHash = keccak256(abi.encodePacked(buyerKey.publicKeyX, buyerKey.publicKeyY));
        bytes32 pad = sha256(
            abi.encode(
                bytes32("deai-data/v2/key-delivery"),
                block.chainid,
                market,
                pid,
                keyHash,
                ephemeral.publicKeyX,
                shared.publicKeyX
            )
        );
        proof = IDataMarket.DisputeProof(
            bytes32(buyerKey.publicKeyX),
            bytes32(buyerKey.publicKeyY),
            IDataMarket.Delivery(bytes32(ephemeral.publicKeyX), bytes32(ephemeral.publicKeyY), key ^ pad),
            bytes32(b),
            bytes32(shared.publicKeyX),
            bytes32(shared.publicKeyY),
            0
        );
    }
}
