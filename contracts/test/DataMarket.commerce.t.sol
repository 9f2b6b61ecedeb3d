// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "./helpers/Test.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IDataMarket} from "../src/IDataMarket.sol";
import {MarketFixture} from "./DataMarket.t.sol";

/// @notice Revenue splits, front-end (referrer) fees, EIP-2612 permits and ERC-2981 royalties, each attacked:
/// a split changed after a sale, a locked split changed by the token's next owner, a fee above the cap, a permit
/// front-run, a royalty set by the owner instead of the author.
contract CommerceTest is MarketFixture {
    address internal constant ALICE = address(0xA1);
    address internal constant BOB = address(0xB2);
    address internal constant CAROL = address(0xC3);
    address internal constant FRONTEND = address(0xF0);
    uint16 internal constant REF_BPS = 200;
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    function _split(uint256 id, address[] memory payees, uint16[] memory shares, bool lock) internal {
        vm.prank(owner);
        market.setRevenueSplit(id, payees, shares, lock);
    }

    function _three() internal pure returns (address[] memory payees, uint16[] memory shares) {
        payees = new address[](3);
        shares = new uint16[](3);
        (payees[0], payees[1], payees[2]) = (ALICE, BOB, CAROL);
        (shares[0], shares[1], shares[2]) = (5_001, 3_333, 1_666);
    }

    function _one(address payee) internal pure returns (address[] memory payees, uint16[] memory shares) {
        payees = new address[](1);
        shares = new uint16[](1);
        payees[0] = payee;
        shares[0] = 10_000;
    }

    function _noPermit() internal pure returns (IDataMarket.Permit memory p) {}

    function _buyVia(uint256 id, uint96 price, uint256 secret) internal returns (uint256 pid) {
        (bytes32 x, bytes32 y) = _buyerKey(secret);
        uint256 total = price + (uint256(price) * REF_BPS) / 10_000;
        vm.prank(BUYER);
        pid = market.purchaseWith{value: total}(id, x, y, uint96(total), FRONTEND, REF_BPS, _noPermit());
    }

    function _deliverAndSettle(uint256 pid) internal {
        _deliverAs(owner, pid, DATA_KEY);
        vm.warp(block.timestamp + CHALLENGE + 1);
        market.settle(pid);
    }

    // ------------------------------------------------------------------ revenue splits

    function test_splitPaysEachPayeeItsShareAndTheRemainderToTheFirst() public {
        uint96 price = 1 ether + 7; // not divisible: the rounding remainder must land somewhere, once
        uint256 id = _register(address(0), price);
        (address[] memory payees, uint16[] memory shares) = _three();
        _split(id, payees, shares, false);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        uint256 pid = market.purchase{value: price}(id, x, y, price);
        assertTrue(market.purchaseInfo(pid).hasTerms, "the split is recorded with the purchase");
        _deliverAndSettle(pid);

        uint256 proceeds = price - _fee(price);
        uint256 bob = (proceeds * 3_333) / 10_000;
        uint256 carol = (proceeds * 1_666) / 10_000;
        assertEq(market.withdrawable(BOB, address(0)), bob, "bob");
        assertEq(market.withdrawable(CAROL, address(0)), carol, "carol");
        assertEq(market.withdrawable(ALICE, address(0)), proceeds - bob - carol, "alice takes the remainder");
        assertEq(market.withdrawable(owner, address(0)), 0, "the owner is not a payee");
        assertEq(market.escrowed(address(0)), 0, "nothing left in escrow");
        vm.prank(BOB);
        market.withdraw(address(0));
        assertEq(BOB.balance, bob, "bob pulled his share");
        vm.prank(BOB);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NothingToWithdraw.selector, BOB, address(0)));
        market.withdraw(address(0));
    }

    function test_aChangedSplitPaysOnlyLaterSales() public {
        uint256 id = _register(address(0), PRICE);
        (address[] memory toAlice, uint16[] memory all) = _one(ALICE);
        _split(id, toAlice, all, false);
        uint256 first = _buyNative(id);
        (address[] memory toBob,) = _one(BOB);
        _split(id, toBob, all, false); // after the first sale: must not take it from alice
        uint256 second = _buyNative(id);
        _deliverAs(owner, first, DATA_KEY);
        _deliverAs(owner, second, DATA_KEY);
        vm.warp(block.timestamp + CHALLENGE + 1);
        market.settle(first);
        market.settle(second);
        assertEq(market.withdrawable(ALICE, address(0)), PRICE - _fee(PRICE), "the first sale went to alice");
        assertEq(market.withdrawable(BOB, address(0)), PRICE - _fee(PRICE), "the second to bob");
        assertEq(market.purchaseTerms(first).splitId + 1, market.purchaseTerms(second).splitId, "split ids");
    }

    function test_aLockedSplitBindsEveryLaterOwner() public {
        uint256 id = _register(address(0), PRICE);
        (address[] memory payees, uint16[] memory shares) = _three();
        _split(id, payees, shares, true);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SplitLocked.selector, id));
        market.setRevenueSplit(id, new address[](0), new uint16[](0), false);
        vm.prank(owner);
        market.transferFrom(owner, stranger, id);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SplitLocked.selector, id));
        market.setRevenueSplit(id, new address[](0), new uint16[](0), false);
        (IDataMarket.Payee[] memory split, bool locked) = market.revenueSplit(id);
        assertTrue(locked, "locked");
        assertEq(split.length, 3, "still three payees");
        assertEq(split[0].account, ALICE, "alice first");
    }

    function test_badSplitsRefused() public {
        uint256 id = _register(address(0), PRICE);
        (address[] memory payees, uint16[] memory shares) = _three();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotDatasetOwner.selector, id, stranger));
        market.setRevenueSplit(id, payees, shares, false);

        _expectRevert(id, payees, new uint16[](2), abi.encodeWithSelector(IDataMarket.InvalidSplit.selector, 3));
        shares[2] = 1_667;
        _expectRevert(id, payees, shares, abi.encodeWithSelector(IDataMarket.InvalidSplit.selector, 3));
        (shares[1], shares[2]) = (4_999, 0);
        _expectRevert(id, payees, shares, abi.encodeWithSelector(IDataMarket.InvalidPayee.selector, 2));
        (shares[1], shares[2]) = (3_333, 1_666);
        payees[2] = ALICE; // a duplicate: payees must ascend
        _expectRevert(id, payees, shares, abi.encodeWithSelector(IDataMarket.InvalidPayee.selector, 2));
        (payees[0], payees[2]) = (address(0), CAROL);
        _expectRevert(id, payees, shares, abi.encodeWithSelector(IDataMarket.InvalidPayee.selector, 0));
        vm.prank(owner); // nothing to lock
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidSplit.selector, 0));
        market.setRevenueSplit(id, new address[](0), new uint16[](0), true);
        bytes memory tooMany = abi.encodeWithSelector(IDataMarket.InvalidSplit.selector, 17);
        _expectRevert(id, new address[](17), new uint16[](17), tooMany);
    }

    function _expectRevert(uint256 id, address[] memory payees, uint16[] memory shares, bytes memory err) private {
        vm.prank(owner);
        vm.expectRevert(err);
        market.setRevenueSplit(id, payees, shares, false);
    }

    function test_anEmptySplitPaysTheOwnerAgain() public {
        uint256 id = _register(address(0), PRICE);
        (address[] memory toAlice, uint16[] memory all) = _one(ALICE);
        _split(id, toAlice, all, false);
        _split(id, new address[](0), new uint16[](0), false);
        uint256 pid = _buyNative(id);
        assertTrue(!market.purchaseInfo(pid).hasTerms, "no terms: the plain path");
        _deliverAndSettle(pid);
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "owner paid");
    }

    // ------------------------------------------------------------------ referrer fees

    function test_referrerFeeIsEscrowedOnTopAndPaidAtSettlement() public {
        uint256 id = _register(address(0), PRICE);
        uint256 fee = (uint256(PRICE) * REF_BPS) / 10_000;
        uint256 pid = _buyVia(id, PRICE, BUYER_SECRET);
        assertEq(market.escrowed(address(0)), PRICE + fee, "price and fee escrowed");
        IDataMarket.PurchaseTerms memory terms = market.purchaseTerms(pid);
        assertEq(terms.referrer, FRONTEND, "referrer recorded");
        assertEq(terms.referrerBps, REF_BPS, "rate recorded");
        _deliverAndSettle(pid);
        assertEq(market.withdrawable(FRONTEND, address(0)), fee, "front-end paid");
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "owner's proceeds untouched");
        assertEq(market.escrowed(address(0)), 0, "escrow empty");
    }

    function test_aWonDisputeRefundsTheReferrerFeeToo() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyVia(id, PRICE, BUYER_SECRET);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, pid, keccak256("a wrong key"));
        vm.prank(BUYER);
        assertTrue(market.dispute(pid, proof), "buyer won");
        assertEq(market.withdrawable(BUYER, address(0)), PRICE + (uint256(PRICE) * REF_BPS) / 10_000, "all back");
        assertEq(market.withdrawable(FRONTEND, address(0)), 0, "no fee for a wrong delivery");
    }

    function test_referrerTermsChecked() public {
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        uint16 over = market.MAX_REFERRER_BPS() + 1;
        vm.startPrank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidReferrer.selector, FRONTEND, over));
        market.purchaseWith{value: 2 ether}(id, x, y, 2 ether, FRONTEND, over, _noPermit());
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidReferrer.selector, address(0), REF_BPS));
        market.purchaseWith{value: 2 ether}(id, x, y, 2 ether, address(0), REF_BPS, _noPermit());
        // maxPrice covers the price but not the fee on top: nothing is paid
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.PriceAboveMax.selector, id, PRICE, PRICE));
        market.purchaseWith{value: 2 ether}(id, x, y, PRICE, FRONTEND, REF_BPS, _noPermit());
        vm.stopPrank();
        assertEq(market.purchaseCount(), 0, "no purchase");
    }

    // ------------------------------------------------------------------ EIP-2612 permits

    function _permit(uint256 key, uint256 value, uint256 deadline) internal view returns (IDataMarket.Permit memory p) {
        address holder = vm.addr(key);
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, holder, address(market), value, usd.nonces(holder), deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", usd.DOMAIN_SEPARATOR(), structHash));
        (p.v, p.r, p.s) = vm.sign(key, digest);
        (p.value, p.deadline) = (value, deadline);
    }

    function test_permitPaysInOneTransactionEvenWhenFrontRun() public {
        uint256 id = _register(address(usd), 100e6);
        address holder = vm.addr(STRANGER_KEY);
        usd.mint(holder, 1_000e6);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        IDataMarket.Permit memory permit = _permit(STRANGER_KEY, 100e6, T0 + 1 hours);
        vm.prank(holder);
        uint256 pid = market.purchaseWith(id, x, y, 100e6, address(0), 0, permit);
        assertEq(market.purchaseInfo(pid).buyer, holder, "bought without an approve transaction");
        assertEq(usd.balanceOf(address(market)), 100e6, "escrowed");

        // An observer sends the next permit first: the purchase still goes through on the allowance it set.
        permit = _permit(STRANGER_KEY, 100e6, T0 + 1 hours);
        usd.permit(holder, address(market), permit.value, permit.deadline, permit.v, permit.r, permit.s);
        vm.prank(holder);
        market.purchaseWith(id, x, y, 100e6, address(0), 0, permit);
        assertEq(usd.balanceOf(address(market)), 200e6, "second purchase escrowed");
        // A permit with a broken signature gives no allowance: the transfer is refused.
        permit.v ^= 1;
        vm.prank(holder);
        bytes4 short = bytes4(keccak256("ERC20InsufficientAllowance(address,uint256,uint256)"));
        vm.expectRevert(abi.encodeWithSelector(short, address(market), 0, 100e6));
        market.purchaseWith(id, x, y, 100e6, address(0), 0, permit);
    }

    function test_permitOnANativeListingRefused() public {
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        IDataMarket.Permit memory permit;
        permit.deadline = 1;
        vm.prank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.PermitForNativeListing.selector, id));
        market.purchaseWith{value: PRICE}(id, x, y, PRICE, address(0), 0, permit);
    }

    // ------------------------------------------------------------------ ERC-2981 royalties

    function test_royaltyIsTheAuthorsToSetAndCapped() public {
        uint256 id = _register(address(0), PRICE);
        assertTrue(market.supportsInterface(type(IERC2981).interfaceId), "ERC-2981");
        assertTrue(market.supportsInterface(0x80ac58cd), "still ERC-721");
        vm.prank(owner);
        market.transferFrom(owner, stranger, id);
        vm.prank(stranger); // the token's new owner cannot take the author's royalty away
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotAuthor.selector, id, stranger));
        market.setRoyalty(id, stranger, 0);
        vm.prank(owner); // the author (also the first owner here)
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OutOfRange.selector, "royaltyBps", 1_001, 0, 1_000));
        market.setRoyalty(id, ALICE, 1_001);
        vm.prank(owner);
        market.setRoyalty(id, ALICE, 500);
        (address receiver, uint256 amount) = market.royaltyInfo(id, 10 ether);
        assertEq(receiver, ALICE, "receiver");
        assertEq(amount, 0.5 ether, "5 %");
        vm.prank(owner);
        market.setRoyalty(id, address(0), 0);
        (receiver, amount) = market.royaltyInfo(id, 10 ether);
        assertEq(amount, 0, "removed");
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownDataset.selector, 99));
        market.setRoyalty(99, ALICE, 1);
    }

    // ------------------------------------------------------------------ fuzz

    /// Any split, price, protocol fee and referrer rate: every wei of escrow goes to exactly one place.
    function testFuzz_splitAndFeesAddUp(uint96 price, uint16 a, uint16 b, uint16 referrerBps) public {
        price = uint96(bound(price, 0, type(uint96).max / 2));
        a = uint16(bound(a, 1, 9_998));
        b = uint16(bound(b, 1, 9_999 - a));
        referrerBps = uint16(bound(referrerBps, 1, market.MAX_REFERRER_BPS()));
        uint256 id = _register(address(0), price);
        (address[] memory payees, uint16[] memory shares) = _three();
        (shares[0], shares[1], shares[2]) = (a, b, 10_000 - a - b);
        _split(id, payees, shares, false);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        uint256 total = price + (uint256(price) * referrerBps) / 10_000;
        vm.deal(BUYER, total);
        vm.prank(BUYER);
        uint256 pid = market.purchaseWith{value: total}(id, x, y, uint96(total), FRONTEND, referrerBps, _noPermit());
        _deliverAndSettle(pid);
        uint256 paid = market.feesOwed(address(0)) + market.withdrawable(FRONTEND, address(0));
        for (uint256 i = 0; i < 3; ++i) {
            uint256 share = market.withdrawable(payees[i], address(0));
            paid += share;
            if (i > 0) assertLe(share * 10_000, (uint256(price) - _fee(price)) * shares[i], "never above its share");
        }
        assertEq(paid, total, "payees + fees = what the buyer paid");
        assertEq(market.escrowed(address(0)), 0, "nothing stuck");
        assertEq(address(market).balance, total, "the market holds it until pulled");
    }
}
