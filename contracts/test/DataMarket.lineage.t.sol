// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDataMarket} from "../src/IDataMarket.sol";
import {KeyDelivery} from "../src/libraries/KeyDelivery.sol";
import {MarketFixture} from "./DataMarket.t.sol";

/// @notice Versions that inherit earlier shards through key links, attacked: a link that does not lead to the
/// earlier version's key (at once or deeper down the lineage), a link without a version to lead to, and a
/// buyer who asks the contract to walk past the lineage's end.
contract LineageTest is MarketFixture {
    bytes32 internal constant K1 = keccak256("version 1 key");
    bytes32 internal constant K2 = keccak256("version 2 key");
    bytes32 internal constant K3 = keccak256("version 3 key");

    /// @dev The link that makes `key` open the version keyed `earlier`: keccak256(label, key) XOR earlier.
    function _link(bytes32 key, bytes32 earlier) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes32("deai-data/v3/key-link"), key)) ^ earlier;
    }

    function _version(bytes32 key, uint256 supersedes, bytes32 keyLink) internal returns (uint256 id) {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.keyCommitment = KeyDelivery.commitment(key, r.sealId);
        r.supersedes = supersedes;
        r.keyLink = keyLink;
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        id = market.register(r, sig);
    }

    /// @dev Buy `id`, deliver `key` honestly, and dispute asking for `generations` linked keys.
    function _disputeLinked(uint256 id, bytes32 key, uint256 generations) internal returns (bool buyerWon) {
        uint256 pid = _buyNative(id);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, pid, key);
        proof.generations = generations;
        vm.prank(BUYER);
        buyerWon = market.dispute(pid, proof);
    }

    function test_honestLinksHoldThroughTheWholeLineage() public {
        uint256 v1 = _version(K1, 0, 0);
        uint256 v2 = _version(K2, v1, _link(K2, K1));
        uint256 v3 = _version(K3, v2, _link(K3, K2));
        assertEq(market.datasetInfo(v3).keyLink, _link(K3, K2), "link stored");
        assertTrue(!_disputeLinked(v3, K3, 2), "both links open their versions: the seller is paid");
        // asking past the lineage's first version stops there instead of reverting or refunding
        assertTrue(!_disputeLinked(v3, K3, 50), "the walk ends at the version without a link");
    }

    function test_aBrokenLinkRefundsTheBuyer() public {
        uint256 v1 = _version(K1, 0, 0);
        uint256 v2 = _version(K2, v1, _link(K2, keccak256("not the version 1 key")));
        assertTrue(!_disputeLinked(v2, K2, 0), "the version's own key is right: generations 0 pays the seller");
        assertTrue(_disputeLinked(v2, K2, 1), "the link misses version 1's commitment: refunded");
        assertEq(market.disputesLost(owner), 1, "counted against the seller");
    }

    function test_aBrokenLinkDeeperDownIsFoundWhenTheBuyerWalksThatFar() public {
        uint256 v1 = _version(K1, 0, 0);
        uint256 v2 = _version(K2, v1, _link(K2, keccak256("not the version 1 key")));
        uint256 v3 = _version(K3, v2, _link(K3, K2));
        assertTrue(!_disputeLinked(v3, K3, 1), "version 2 opens");
        assertTrue(_disputeLinked(v3, K3, 2), "version 1 does not: refunded");
    }

    function test_aWrongDeliveredKeyLosesBeforeAnyLinkIsWalked() public {
        uint256 v1 = _version(K1, 0, 0);
        uint256 v2 = _version(K2, v1, _link(K2, K1));
        assertTrue(_disputeLinked(v2, keccak256("garbage"), 1), "wrong key: refunded");
    }

    function test_aLinkNeedsAnEarlierVersion() public {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.keyLink = _link(K2, K1);
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidParameter.selector, "keyLink"));
        vm.prank(owner);
        market.register(r, sig);
    }

    /// A relayer cannot swap the link the owner signed (registerFor's EIP-712 registration covers it).
    function test_aRelayerCannotSwapTheSignedLink() public {
        uint256 v1 = _version(K1, 0, 0);
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.keyCommitment = KeyDelivery.commitment(K2, r.sealId);
        r.supersedes = v1;
        r.keyLink = _link(K2, K1);
        bytes memory authorSig = _authorSign(r, OWNER_KEY);
        bytes memory ownerSig = _signRegistration(r, OWNER_KEY, 1, T0 + 1 hours);
        r.keyLink = _link(K2, keccak256("not the version 1 key"));
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidSignature.selector, owner));
        vm.prank(RELAYER);
        market.registerFor(r, authorSig, 1, T0 + 1 hours, ownerSig);
        r.keyLink = _link(K2, K1);
        vm.prank(RELAYER);
        uint256 v2 = market.registerFor(r, authorSig, 1, T0 + 1 hours, ownerSig);
        assertEq(market.datasetInfo(v2).keyLink, _link(K2, K1), "the signed link");
    }

    /// Any key and any earlier key: the link built from them leads back, and nothing else does.
    function testFuzz_linkLeadsToExactlyTheEarlierKey(bytes32 key, bytes32 earlier, bytes32 other) public pure {
        vm.assume(other != earlier);
        assertEq(KeyDelivery.linkedKey(key, _link(key, earlier)), earlier, "leads back");
        assertTrue(KeyDelivery.linkedKey(key, _link(key, other)) != earlier, "another link leads elsewhere");
    }
}
