// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "./helpers/Test.sol";
import {TestToken, FeeOnTransferToken, ReentrantToken, ReentrantReceiver, RefusingReceiver} from "./helpers/Tokens.sol";
import {DataMarket} from "../src/DataMarket.sol";
import {MerkleBuilder} from "./helpers/MerkleBuilder.sol";

/// @notice Shared fixture: a market with a 2.5 % fee, an owner, a buyer, an agent and a stranger.
abstract contract MarketFixture is Test {
    DataMarket internal market;
    TestToken internal usd;

    uint256 internal constant OWNER_KEY = 0xA11CE;
    address internal owner;
    address internal constant BUYER = address(0xB0B);
    address internal constant AGENT = address(0xA6E);
    address internal constant STRANGER = address(0x5757);
    address internal constant TREASURY = address(0x7EA5);
    address internal constant RELAYER = address(0xE1A7);
    uint16 internal constant FEE_BPS = 250;
    uint128 internal constant PRICE = 1 ether;
    uint64 internal constant WINDOW = 1 days;
    bytes32 internal constant BUYER_PK = bytes32(uint256(0xC0FFEE));
    bytes internal constant SEALED = hex"0102030405060708";

    /// @dev Start time. Tests compute times from constants: under via-IR the optimizer may re-read
    /// `block.timestamp` after a `vm.warp`, so a local derived from it is not stable across warps.
    uint256 internal constant T0 = 1_700_000_000;

    uint256 private _rootNonce;

    function setUp() public virtual {
        owner = vm.addr(OWNER_KEY);
        market = new DataMarket(TREASURY, FEE_BPS);
        usd = new TestToken();
        vm.deal(BUYER, 100 ether);
        vm.deal(STRANGER, 100 ether);
        vm.warp(T0);
    }

    function _registration(address token, uint128 price) internal returns (DataMarket.Registration memory r) {
        string[] memory uris = new string[](2);
        uris[0] = "file:///store/objects/sha256/ab/manifest";
        uris[1] = "ar://manifest-mirror";
        r = DataMarket.Registration({
            manifestHash: keccak256(abi.encode("manifest", ++_rootNonce)),
            contentRoot: keccak256(abi.encode("root", _rootNonce)),
            keyCommitment: keccak256(abi.encode("commitment", _rootNonce)),
            shardCount: 3,
            paymentToken: token,
            price: price,
            deliveryWindow: WINDOW,
            previous: 0,
            manifestURIs: uris,
            licenseURI: "https://creativecommons.org/licenses/by/4.0/"
        });
    }

    function _register(address token, uint128 price) internal returns (uint256 id) {
        DataMarket.Registration memory r = _registration(token, price);
        vm.prank(owner);
        id = market.register(r);
    }

    function _buyNative(uint256 id) internal returns (uint256 pid) {
        vm.prank(BUYER);
        pid = market.purchase{value: PRICE}(id, BUYER_PK, PRICE);
    }

    function _fee(uint256 amount) internal pure returns (uint256) {
        return (amount * FEE_BPS) / 10_000;
    }
}

contract RegistrationTest is MarketFixture {
    function test_constructorRejectsHighFeeAndZeroTreasury() public {
        vm.expectRevert(abi.encodeWithSelector(DataMarket.FeeTooHigh.selector, uint16(1001), uint16(1000)));
        new DataMarket(TREASURY, 1001);
        vm.expectRevert(DataMarket.ZeroTreasury.selector);
        new DataMarket(address(0), 0);
    }

    function test_registerMintsAndRecords() public {
        DataMarket.Registration memory r = _registration(address(0), PRICE);
        vm.expectEmit(true, true, true, true, address(market));
        emit DataMarket.DatasetRegistered(
            1, owner, 0, r.manifestHash, r.contentRoot, r.keyCommitment, 3, address(0), PRICE, WINDOW,
            r.manifestURIs, r.licenseURI, owner
        );
        vm.prank(owner);
        uint256 id = market.register(r);
        assertEq(id, 1, "first id");
        assertEq(market.ownerOf(id), owner, "token owner");
        DataMarket.Dataset memory d = market.datasetInfo(id);
        assertEq(d.manifestHash, r.manifestHash, "manifest hash");
        assertEq(d.contentRoot, r.contentRoot, "content root");
        assertEq(d.keyCommitment, r.keyCommitment, "key commitment");
        assertEq(d.price, PRICE, "price");
        assertEq(d.deliveryWindow, WINDOW, "window");
        assertEq(d.registeredBlock, block.number, "registered block");
        assertEq(market.datasetByContentRoot(r.contentRoot), id, "root index");
    }

    function test_registerRejectsBadFields() public {
        DataMarket.Registration memory r = _registration(address(0), PRICE);
        bytes32 saved = r.manifestHash;
        r.manifestHash = 0;
        _expectInvalid(r, "manifestHash");
        r.manifestHash = saved;
        saved = r.contentRoot;
        r.contentRoot = 0;
        _expectInvalid(r, "contentRoot");
        r.contentRoot = saved;
        saved = r.keyCommitment;
        r.keyCommitment = 0;
        _expectInvalid(r, "keyCommitment");
        r.keyCommitment = saved;
        r.shardCount = 0;
        _expectInvalid(r, "shardCount");
        r.shardCount = 1;
        string[] memory none = new string[](0);
        string[] memory uris = r.manifestURIs;
        r.manifestURIs = none;
        _expectInvalid(r, "manifestURIs");
        r.manifestURIs = uris;
        r.deliveryWindow = 10 minutes - 1;
        vm.expectRevert(
            abi.encodeWithSelector(DataMarket.DeliveryWindowOutOfRange.selector, r.deliveryWindow, 10 minutes, 90 days)
        );
        market.register(r);
        r.deliveryWindow = 90 days + 1;
        vm.expectRevert(
            abi.encodeWithSelector(DataMarket.DeliveryWindowOutOfRange.selector, r.deliveryWindow, 10 minutes, 90 days)
        );
        market.register(r);
    }

    function _expectInvalid(DataMarket.Registration memory r, string memory field) private {
        vm.expectRevert(abi.encodeWithSelector(DataMarket.InvalidParameter.selector, field));
        market.register(r);
    }

    function test_contentRootOnlyOnce() public {
        DataMarket.Registration memory r = _registration(address(0), PRICE);
        vm.prank(owner);
        uint256 id = market.register(r);
        r.manifestHash = keccak256("another manifest, same sealed data");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.ContentRootTaken.selector, r.contentRoot, id));
        vm.prank(STRANGER);
        market.register(r);
    }

    function test_newVersionLinksPrevious() public {
        uint256 first = _register(address(0), PRICE);
        DataMarket.Registration memory r = _registration(address(0), 2 ether);
        r.previous = first;
        vm.prank(owner);
        uint256 second = market.register(r);
        assertEq(market.datasetInfo(second).previous, first, "previous recorded");

        r = _registration(address(0), 2 ether);
        r.previous = first;
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotDatasetOwner.selector, first, STRANGER));
        vm.prank(STRANGER);
        market.register(r);

        r.previous = 99;
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownDataset.selector, 99));
        vm.prank(owner);
        market.register(r);
    }

    function _signRegistration(DataMarket.Registration memory r, uint256 key, uint256 nonce, uint256 deadline)
        private
        view
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(
            abi.encode(market.REGISTER_TYPEHASH(), vm.addr(key), market.hashRegistration(r), nonce, deadline)
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", market.domainSeparator(), structHash));
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(rr, s, v);
    }

    function test_registerForWithOwnerSignature() public {
        DataMarket.Registration memory r = _registration(address(0), PRICE);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = _signRegistration(r, OWNER_KEY, 0, deadline);
        vm.prank(RELAYER);
        uint256 id = market.registerFor(r, owner, deadline, sig);
        assertEq(market.ownerOf(id), owner, "owner, not relayer, gets the token");
        assertEq(market.nonces(owner), 1, "nonce used");

        // The same signature cannot be replayed, even for new content.
        r.contentRoot = keccak256("fresh root");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.InvalidSignature.selector, owner));
        vm.prank(RELAYER);
        market.registerFor(r, owner, deadline, sig);
    }

    function test_registerForRejectsExpiredAndForeignSignatures() public {
        DataMarket.Registration memory r = _registration(address(0), PRICE);
        uint256 deadline = T0 + 1 hours;
        bytes memory sig = _signRegistration(r, OWNER_KEY, 0, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.SignatureExpired.selector, deadline));
        market.registerFor(r, owner, deadline, sig);

        vm.warp(deadline - 10);
        bytes memory foreign = _signRegistration(r, 0xBAD, 0, deadline);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.InvalidSignature.selector, owner));
        market.registerFor(r, owner, deadline, foreign);

        // A signature over different terms (price changed by the relayer) does not verify.
        r.price = 0;
        vm.expectRevert(abi.encodeWithSelector(DataMarket.InvalidSignature.selector, owner));
        market.registerFor(r, owner, deadline, sig);
    }

    function test_verifyShardAgainstRoot() public {
        // Three shards: root = H(1 || H(1 || L0 || L1) || L2) with Lx = H(0 || hx).
        bytes32 h0 = keccak256("s0");
        bytes32 h1 = keccak256("s1");
        bytes32 h2 = keccak256("s2");
        bytes32 l0 = sha256(abi.encodePacked(bytes1(0), h0));
        bytes32 l1 = sha256(abi.encodePacked(bytes1(0), h1));
        bytes32 l2 = sha256(abi.encodePacked(bytes1(0), h2));
        bytes32 n01 = sha256(abi.encodePacked(bytes1(0x01), l0, l1));
        bytes32 root = sha256(abi.encodePacked(bytes1(0x01), n01, l2));

        DataMarket.Registration memory r = _registration(address(0), PRICE);
        r.contentRoot = root;
        vm.prank(owner);
        uint256 id = market.register(r);

        bytes32[] memory proof2 = new bytes32[](1);
        proof2[0] = n01;
        assertTrue(market.verifyShard(id, h2, 2, proof2), "last shard");
        bytes32[] memory proof0 = new bytes32[](2);
        proof0[0] = l1;
        proof0[1] = l2;
        assertTrue(market.verifyShard(id, h0, 0, proof0), "first shard");
        assertTrue(!market.verifyShard(id, h1, 0, proof0), "wrong hash");
        assertTrue(!market.verifyShard(id, h0, 1, proof0), "wrong index");
        assertTrue(!market.verifyShard(id, h0, 3, proof0), "index past the end");
        bytes32[] memory longer = new bytes32[](3);
        longer[0] = l1;
        longer[1] = l2;
        longer[2] = l2;
        assertTrue(!market.verifyShard(id, h0, 0, longer), "extra proof element");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownDataset.selector, 42));
        market.verifyShard(42, h0, 0, proof0);
    }

    function test_ownerControls() public {
        uint256 id = _register(address(0), PRICE);
        vm.prank(owner);
        market.setPrice(id, 3 ether);
        assertEq(market.datasetInfo(id).price, 3 ether, "new price");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotDatasetOwner.selector, id, STRANGER));
        vm.prank(STRANGER);
        market.setPrice(id, 0);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownDataset.selector, 77));
        market.setPrice(77, 0);

        vm.prank(owner);
        market.setPaused(id, true);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.SalesArePaused.selector, id));
        vm.prank(BUYER);
        market.purchase{value: 3 ether}(id, BUYER_PK, 3 ether);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotDatasetOwner.selector, id, STRANGER));
        vm.prank(STRANGER);
        market.setPaused(id, false);
        vm.prank(owner);
        market.setPaused(id, false);
        vm.prank(BUYER);
        market.purchase{value: 3 ether}(id, BUYER_PK, 3 ether);

        vm.prank(owner);
        market.setKeyAgent(AGENT, true);
        assertTrue(market.isKeyAgent(owner, AGENT), "agent set");
    }

    function test_datasetInfoOfUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownDataset.selector, 5));
        market.datasetInfo(5);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownPurchase.selector, 5));
        market.purchaseInfo(5);
    }
}

contract PurchaseTest is MarketFixture {
    function test_purchaseEscrowsNative() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        DataMarket.Purchase memory p = market.purchaseInfo(pid);
        assertEq(p.buyer, BUYER, "buyer");
        assertEq(p.amount, PRICE, "amount");
        assertEq(p.deadline, block.timestamp + WINDOW, "deadline");
        assertTrue(p.status == DataMarket.Status.Pending, "pending");
        assertEq(market.escrowed(address(0)), PRICE, "escrowed");
        assertEq(address(market).balance, PRICE, "market balance");
    }

    function test_purchaseReverts() public {
        uint256 id = _register(address(0), PRICE);
        vm.startPrank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.WrongPayment.selector, PRICE, PRICE - 1));
        market.purchase{value: PRICE - 1}(id, BUYER_PK, PRICE);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.PriceAboveMax.selector, id, PRICE, PRICE - 1));
        market.purchase{value: PRICE}(id, BUYER_PK, PRICE - 1);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownDataset.selector, 9));
        market.purchase{value: PRICE}(9, BUYER_PK, PRICE);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.InvalidParameter.selector, "buyerPublicKey"));
        market.purchase{value: PRICE}(id, bytes32(0), PRICE);
        vm.stopPrank();

        uint256 tokenId = _register(address(usd), 100e6);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.WrongPayment.selector, 0, 1));
        vm.prank(BUYER);
        market.purchase{value: 1}(tokenId, BUYER_PK, 100e6);
    }

    function test_purchaseWithErc20() public {
        uint256 id = _register(address(usd), 100e6);
        usd.mint(BUYER, 1_000e6);
        vm.startPrank(BUYER);
        usd.approve(address(market), type(uint256).max);
        uint256 pid = market.purchase(id, BUYER_PK, 100e6);
        vm.stopPrank();
        assertEq(usd.balanceOf(address(market)), 100e6, "tokens escrowed");
        assertEq(market.escrowed(address(usd)), 100e6, "escrow book");
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
        vm.prank(owner);
        market.withdraw(address(usd));
        assertEq(usd.balanceOf(owner), 100e6 - _fee(100e6), "owner paid in tokens");
        market.withdrawFees(address(usd));
        assertEq(usd.balanceOf(TREASURY), _fee(100e6), "treasury paid");
        assertEq(usd.balanceOf(address(market)), 0, "nothing left behind");
    }

    function test_feeOnTransferTokenRefused() public {
        FeeOnTransferToken fot = new FeeOnTransferToken();
        uint256 id = _register(address(fot), 100e6);
        fot.mint(BUYER, 1_000e6);
        vm.startPrank(BUYER);
        fot.approve(address(market), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(DataMarket.TokenTransferMismatch.selector, address(fot), 100e6, 99e6)
        );
        market.purchase(id, BUYER_PK, 100e6);
        vm.stopPrank();
    }

    function test_reentrantTokenCannotReenter() public {
        ReentrantToken bad = new ReentrantToken();
        uint256 id = _register(address(bad), 100);
        bad.mint(BUYER, 1_000);
        vm.prank(BUYER);
        bad.approve(address(market), type(uint256).max);
        bad.arm(market, id);
        vm.prank(BUYER);
        market.purchase(id, BUYER_PK, 100);
        assertTrue(!bad.reentered(), "re-entry blocked");
        assertEq(bytes4(bad.lastError()), bytes4(keccak256("ReentrancyGuardReentrantCall()")), "guard error");
        assertEq(market.purchaseCount(), 1, "one purchase only");
        assertEq(bad.balanceOf(address(market)), 100, "exactly one price escrowed");
    }
}

contract DeliveryTest is MarketFixture {
    function test_ownerDeliversAndIsPaid() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        uint128 fee = uint128(_fee(PRICE));
        vm.expectEmit(true, true, true, true, address(market));
        emit DataMarket.KeyDelivered(pid, id, owner, owner, address(0), PRICE - fee, fee, SEALED);
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
        assertTrue(market.purchaseInfo(pid).status == DataMarket.Status.Delivered, "delivered");
        assertEq(market.escrowed(address(0)), 0, "escrow released");
        assertEq(market.withdrawable(owner, address(0)), PRICE - fee, "owner credit");
        assertEq(market.feesOwed(address(0)), fee, "fee owed");

        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdraw(address(0));
        assertEq(owner.balance - before, PRICE - fee, "owner withdrew");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NothingToWithdraw.selector, owner, address(0)));
        vm.prank(owner);
        market.withdraw(address(0));
        market.withdrawFees(address(0));
        assertEq(TREASURY.balance, fee, "treasury");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NothingToWithdraw.selector, TREASURY, address(0)));
        market.withdrawFees(address(0));
    }

    function test_agentDelivers_strangerCannot() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotOwnerOrAgent.selector, pid, AGENT));
        vm.prank(AGENT);
        market.deliverKey(pid, SEALED);
        vm.prank(owner);
        market.setKeyAgent(AGENT, true);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotOwnerOrAgent.selector, pid, STRANGER));
        vm.prank(STRANGER);
        market.deliverKey(pid, SEALED);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotOwnerOrAgent.selector, pid, BUYER));
        vm.prank(BUYER);
        market.deliverKey(pid, SEALED);
        vm.prank(AGENT);
        market.deliverKey(pid, SEALED);
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "owner, not agent, credited");
        assertEq(market.withdrawable(AGENT, address(0)), 0, "agent gets nothing");
    }

    function test_deliverRevertsOnceSettledOrLate() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.InvalidParameter.selector, "sealedKey"));
        vm.prank(owner);
        market.deliverKey(pid, "");
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotPending.selector, pid, DataMarket.Status.Delivered));
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.UnknownPurchase.selector, 99));
        vm.prank(owner);
        market.deliverKey(99, SEALED);

        uint256 late = _buyNative(id);
        uint64 deadline = market.purchaseInfo(late).deadline;
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.DeliveryWindowClosed.selector, late, deadline));
        vm.prank(owner);
        market.deliverKey(late, SEALED);
    }

    function test_transferMovesFutureRevenue() public {
        uint256 id = _register(address(0), PRICE);
        vm.prank(owner);
        market.setKeyAgent(AGENT, true);
        uint256 first = _buyNative(id);
        uint256 second = _buyNative(id);
        vm.prank(owner);
        market.deliverKey(first, SEALED);
        vm.prank(owner);
        market.transferFrom(owner, STRANGER, id);
        // The old owner's agent no longer speaks for this dataset; the old owner neither.
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotOwnerOrAgent.selector, second, AGENT));
        vm.prank(AGENT);
        market.deliverKey(second, SEALED);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotOwnerOrAgent.selector, second, owner));
        vm.prank(owner);
        market.deliverKey(second, SEALED);
        vm.prank(STRANGER);
        market.deliverKey(second, SEALED);
        uint256 net = PRICE - _fee(PRICE);
        assertEq(market.withdrawable(owner, address(0)), net, "old owner keeps earned revenue");
        assertEq(market.withdrawable(STRANGER, address(0)), net, "new owner gets new revenue");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotDatasetOwner.selector, id, owner));
        vm.prank(owner);
        market.setPrice(id, 0);
    }
}

contract RefundTest is MarketFixture {
    function test_refundAfterWindowOnly() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        uint64 deadline = market.purchaseInfo(pid).deadline;
        vm.expectRevert(abi.encodeWithSelector(DataMarket.DeliveryWindowOpen.selector, pid, deadline));
        vm.prank(BUYER);
        market.refund(pid);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotBuyer.selector, pid, STRANGER));
        vm.prank(STRANGER);
        market.refund(pid);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotBuyer.selector, pid, owner));
        vm.prank(owner);
        market.refund(pid);

        uint256 before = BUYER.balance;
        vm.prank(BUYER);
        market.refund(pid);
        assertEq(market.escrowed(address(0)), 0, "escrow released");
        vm.prank(BUYER);
        market.withdraw(address(0));
        assertEq(BUYER.balance - before, PRICE, "full refund, no fee");
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotPending.selector, pid, DataMarket.Status.Refunded));
        vm.prank(BUYER);
        market.refund(pid);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotPending.selector, pid, DataMarket.Status.Refunded));
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
    }

    function test_noRefundAfterDelivery() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NotPending.selector, pid, DataMarket.Status.Delivered));
        vm.prank(BUYER);
        market.refund(pid);
    }

    function test_reentrantReceiverGetsPaidOnce() public {
        uint256 id = _register(address(0), PRICE);
        ReentrantReceiver r = new ReentrantReceiver(market);
        // An honest buyer's escrow sits beside the attacker's: the attacker must not reach it.
        _buyNative(id);
        uint256 pid = r.buy{value: PRICE}(id, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        r.refundAndWithdraw(pid);
        assertEq(address(r).balance, PRICE, "paid exactly once");
        assertEq(r.reentries(), 1, "receiver tried to re-enter");
        assertTrue(!r.reenteredSucceeded(), "re-entry blocked");
        assertEq(address(market).balance, PRICE, "honest buyer's escrow intact");
        assertEq(market.escrowed(address(0)), PRICE, "escrow book intact");
    }

    function test_refusingReceiverKeepsBalance() public {
        uint256 id = _register(address(0), PRICE);
        RefusingReceiver r = new RefusingReceiver(market);
        uint256 pid = r.buy{value: PRICE}(id, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        r.refund(pid);
        vm.expectRevert(abi.encodeWithSelector(DataMarket.NativeTransferFailed.selector, address(r), PRICE));
        r.withdraw();
        assertEq(market.withdrawable(address(r), address(0)), PRICE, "balance kept for a later try");
    }
}

contract FuzzTest is MarketFixture {
    function testFuzz_feeSplitAddsUp(uint128 price, uint16 feeBps) public {
        feeBps = uint16(bound(feeBps, 0, 1000));
        market = new DataMarket(TREASURY, feeBps);
        uint256 id = _register(address(0), price);
        vm.deal(BUYER, price);
        vm.prank(BUYER);
        uint256 pid = market.purchase{value: price}(id, BUYER_PK, price);
        vm.prank(owner);
        market.deliverKey(pid, SEALED);
        uint256 ownerAmount = market.withdrawable(owner, address(0));
        uint256 fee = market.feesOwed(address(0));
        assertEq(ownerAmount + fee, price, "owner + fee = price");
        assertLe(fee * 10_000, uint256(price) * feeBps, "fee never above the rate");
        assertLe(fee, uint256(price) / 10, "fee never above the cap");
        assertEq(market.escrowed(address(0)), 0, "nothing stuck in escrow");
    }

    function testFuzz_deliveryAndRefundWindows(uint64 window, uint64 elapsed) public {
        window = uint64(bound(window, 10 minutes, 90 days));
        elapsed = uint64(bound(elapsed, 0, 200 days));
        DataMarket.Registration memory r = _registration(address(0), PRICE);
        r.deliveryWindow = window;
        vm.prank(owner);
        uint256 id = market.register(r);
        uint256 pid = _buyNative(id);
        vm.warp(block.timestamp + elapsed);

        bool open = elapsed <= window;
        vm.prank(BUYER);
        try market.refund(pid) {
            assertTrue(!open, "refund only after the window");
        } catch {
            assertTrue(open, "refund refused only while the window is open");
        }
        vm.prank(owner);
        try market.deliverKey(pid, SEALED) {
            assertTrue(open, "delivery only within the window");
        } catch {
            assertTrue(!open, "delivery refused only after the window (or once refunded)");
        }
    }

    function testFuzz_erc20Amounts(uint128 price, uint128 extraBalance) public {
        uint256 id = _register(address(usd), price);
        uint256 balance = uint256(price) + extraBalance;
        usd.mint(BUYER, balance);
        vm.startPrank(BUYER);
        usd.approve(address(market), price);
        uint256 pid = market.purchase(id, BUYER_PK, price);
        vm.stopPrank();
        assertEq(usd.balanceOf(BUYER), extraBalance, "buyer paid exactly the price");
        vm.warp(block.timestamp + WINDOW + 1);
        vm.startPrank(BUYER);
        market.refund(pid);
        if (price != 0) market.withdraw(address(usd));
        vm.stopPrank();
        assertEq(usd.balanceOf(BUYER), balance, "refund is whole");
        assertEq(usd.balanceOf(address(market)), 0, "market empty");
    }

    function testFuzz_priceChangeGuard(uint128 price, uint128 newPrice) public {
        uint256 id = _register(address(0), price);
        vm.prank(owner);
        market.setPrice(id, newPrice);
        vm.deal(BUYER, newPrice);
        vm.prank(BUYER);
        if (newPrice > price) {
            vm.expectRevert(abi.encodeWithSelector(DataMarket.PriceAboveMax.selector, id, newPrice, price));
        }
        market.purchase{value: newPrice}(id, BUYER_PK, price);
    }
}

contract MerkleCrossTest is MarketFixture {
    /// The recursive RFC 9162 builder's proofs verify with the market's iterative verifier, for any size.
    function testFuzz_builderProofsVerify(uint8 size, uint256 indexSeed, bytes32 seed) public {
        MerkleBuilder builder = new MerkleBuilder();
        uint256 n = bound(size, 1, 70);
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            hashes[i] = keccak256(abi.encode(seed, i));
        }
        uint256 index = indexSeed % n;
        bytes32 treeRoot = builder.root(hashes);
        bytes32[] memory path = builder.proof(hashes, index);
        assertTrue(market.verifyInclusion(hashes[index], index, n, path, treeRoot), "proof verifies");
        assertTrue(!market.verifyInclusion(keccak256("other"), index, n, path, treeRoot), "other leaf fails");
    }
}
