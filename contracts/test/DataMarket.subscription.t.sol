// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDataMarket} from "../src/IDataMarket.sol";
import {FeeOnTransferToken} from "./helpers/Tokens.sol";
import {MarketFixture} from "./DataMarket.t.sol";

/// @notice Subscriptions (access for a term to every version registered in it), attacked from both sides: a
/// subscriber claiming versions outside the term or the lineage, twice, or someone else's; an owner pausing sales
/// to block claims, leaving a claim undelivered or delivering a wrong key, or settling before the claims are.
contract SubscriptionTest is MarketFixture {
    uint96 internal constant PLAN_PRICE = 3 ether;
    uint32 internal constant TERM = 30 days;

    function _plan(uint256 id) internal {
        vm.prank(owner);
        market.setSubscriptionPlan(id, PLAN_PRICE, TERM);
    }

    function _subscribe(uint256 id, uint256 renews) internal returns (uint256 sid) {
        vm.prank(BUYER);
        sid = market.subscribe{value: PLAN_PRICE}(id, PLAN_PRICE, renews);
    }

    function _version(uint256 supersedes) internal returns (uint256 id) {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.supersedes = supersedes;
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        id = market.register(r, sig);
    }

    function _claim(uint256 sid, uint256 id) internal returns (uint256 pid) {
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        pid = market.claim(sid, id, x, y);
    }

    /// A subscription to v1 with v2 registered in the term: the usual start of every test.
    function _subscribedWithNewVersion() internal returns (uint256 v1, uint256 sid, uint256 v2) {
        v1 = _register(address(0), PRICE);
        _plan(v1);
        sid = _subscribe(v1, 0);
        vm.roll(block.number + 1);
        v2 = _version(v1);
    }

    function test_eachNewVersionIsClaimedFreeAndTheOwnerIsPaidAfterTheTerm() public {
        (uint256 v1, uint256 sid, uint256 v2) = _subscribedWithNewVersion();
        IDataMarket.Purchase memory s = market.purchaseInfo(sid);
        assertEq(uint8(s.status), uint8(IDataMarket.Status.Subscribed), "subscribed");
        assertEq(s.deadline, T0 + TERM, "the term ends 30 days on");
        assertEq(market.escrowed(address(0)), PLAN_PRICE, "price escrowed");
        uint256 v3 = _version(v2);

        uint256 c2 = _claim(sid, v2);
        uint256 c3 = _claim(sid, v3); // two generations down from the subscribed version
        assertEq(market.purchaseInfo(c2).amount, 0, "a claim costs nothing");
        assertEq(market.claimOf(sid, v3), c3, "claim recorded");
        assertEq(market.subscriptionOf(c3), sid, "and its subscription");
        (, uint32 open) = market.subscriptions(sid);
        assertEq(open, 2, "two open claims");
        _deliverAs(owner, c2, DATA_KEY);
        _deliverAs(owner, c3, DATA_KEY);
        vm.warp(T0 + CHALLENGE + 1);
        market.settle(c2);
        market.settle(c3);

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TermRunning.selector, sid, T0 + TERM));
        market.settle(sid);
        vm.warp(T0 + TERM + 1);
        market.settle(sid);
        assertEq(uint8(_status(sid)), uint8(IDataMarket.Status.Settled), "settled");
        assertEq(market.withdrawable(owner, address(0)), PLAN_PRICE - _fee(PLAN_PRICE), "owner paid");
        assertEq(market.feesOwed(address(0)), _fee(PLAN_PRICE), "fee");
        assertEq(market.escrowed(address(0)), 0, "escrow empty");
        assertEq(v1, s.datasetId, "subscribed to v1");
    }

    function test_anUndeliveredClaimRefundsTheWholeSubscription() public {
        (, uint256 sid, uint256 v2) = _subscribedWithNewVersion();
        uint256 c2 = _claim(sid, v2);
        vm.warp(T0 + WINDOW + 1);
        vm.prank(BUYER);
        market.refund(c2);
        assertEq(uint8(_status(sid)), uint8(IDataMarket.Status.Refunded), "subscription refunded");
        assertEq(market.withdrawable(BUYER, address(0)), PLAN_PRICE, "the whole price back");
        assertEq(market.escrowed(address(0)), 0, "escrow empty");
        uint256 v3 = _version(v2);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, sid, IDataMarket.Status.Refunded));
        market.claim(sid, v3, x, y);
    }

    function test_aWrongKeyForAClaimRefundsTheSubscription() public {
        (, uint256 sid, uint256 v2) = _subscribedWithNewVersion();
        uint256 c2 = _claim(sid, v2);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, c2, keccak256("not the key"));
        vm.prank(BUYER);
        assertTrue(market.dispute(c2, proof), "the buyer wins");
        assertEq(uint8(_status(sid)), uint8(IDataMarket.Status.Refunded), "subscription refunded");
        assertEq(market.withdrawable(BUYER, address(0)), PLAN_PRICE, "the whole price back");
        assertEq(market.disputesLost(owner), 1, "counted against the seller");
    }

    function test_anHonestClaimDisputedPaysTheOwnerAfterTheTerm() public {
        (, uint256 sid, uint256 v2) = _subscribedWithNewVersion();
        uint256 c2 = _claim(sid, v2);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, c2, DATA_KEY);
        vm.prank(BUYER);
        assertTrue(!market.dispute(c2, proof), "the seller wins");
        assertEq(uint8(_status(sid)), uint8(IDataMarket.Status.Subscribed), "the term runs on");
        vm.warp(T0 + TERM + 1);
        uint256[] memory ids = new uint256[](1);
        ids[0] = sid;
        assertEq(market.settleMany(ids), 1, "settled with the others");
        assertEq(market.withdrawable(owner, address(0)), PLAN_PRICE - _fee(PLAN_PRICE), "owner paid");
    }

    function test_claimsOutsideTheTermOrTheLineageRefused() public {
        uint256 v1 = _register(address(0), PRICE);
        uint256 before = _version(v1); // registered before the subscription's block
        uint256 other = _register(address(0), PRICE); // another lineage
        _plan(v1);
        vm.roll(block.number + 1);
        uint256 sid = _subscribe(v1, 0);
        vm.roll(block.number + 1);
        uint256 v3 = _version(before);
        uint256 unrelated = _version(other);
        uint256 v4 = _version(v3);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);

        vm.startPrank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotCovered.selector, sid, before));
        market.claim(sid, before, x, y);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotCovered.selector, sid, unrelated));
        market.claim(sid, unrelated, x, y);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotCovered.selector, sid, 999));
        market.claim(sid, 999, x, y);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotCovered.selector, sid, v1));
        market.claim(sid, v1, x, y);
        uint256 c3 = market.claim(sid, v3, x, y);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AlreadyClaimed.selector, sid, v3, c3));
        market.claim(sid, v3, x, y);
        vm.expectRevert(IDataMarket.InvalidBuyerKey.selector);
        market.claim(sid, v4, x, bytes32(uint256(y) ^ 1));
        vm.stopPrank();

        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotBuyer.selector, sid, stranger));
        market.claim(sid, v3, x, y);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, c3, IDataMarket.Status.Pending));
        vm.prank(BUYER);
        market.claim(c3, v3, x, y); // a purchase is not a subscription

        uint256 late = _version(v3);
        vm.warp(T0 + TERM + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TermOver.selector, sid, T0 + TERM));
        vm.prank(BUYER);
        market.claim(sid, late, x, y);
    }

    function test_settlementWaitsForEveryOpenClaim() public {
        (, uint256 sid, uint256 v2) = _subscribedWithNewVersion();
        vm.warp(T0 + TERM); // the term's last second
        uint256 c2 = _claim(sid, v2);
        vm.warp(T0 + TERM + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ClaimsOpen.selector, sid, 1));
        market.settle(sid);
        uint256[] memory ids = new uint256[](1);
        ids[0] = sid;
        assertEq(market.settleMany(ids), 0, "settleMany skips it too");
        _deliverAs(owner, c2, DATA_KEY); // still in the claim's own delivery window
        vm.warp(T0 + TERM + CHALLENGE + 2);
        ids = new uint256[](2);
        (ids[0], ids[1]) = (c2, sid);
        assertEq(market.settleMany(ids), 2, "the claim, then the subscription");
        assertEq(uint8(_status(sid)), uint8(IDataMarket.Status.Settled), "settled");
    }

    function test_pausingOrSellingTheDatasetDoesNotBlockClaims() public {
        (uint256 v1, uint256 sid, uint256 v2) = _subscribedWithNewVersion();
        vm.startPrank(owner);
        market.setPaused(v1, true);
        market.setPaused(v2, true);
        vm.stopPrank();
        uint256 c2 = _claim(sid, v2);
        assertEq(market.purchaseInfo(c2).seller, owner, "the version's owner delivers");
        vm.prank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SalesArePaused.selector, v1));
        market.subscribe{value: PLAN_PRICE}(v1, PLAN_PRICE, 0);
    }

    function test_renewalExtendsTheTermFromItsEnd() public {
        uint256 v1 = _register(address(0), PRICE);
        _plan(v1);
        uint256 first = _subscribe(v1, 0);
        vm.warp(T0 + 10 days);
        uint256 second = _subscribe(v1, first);
        assertEq(market.purchaseInfo(second).deadline, T0 + 2 * uint256(TERM), "runs on from the first's end");
        vm.warp(T0 + 100 days); // lapsed: a renewal starts now
        uint256 third = _subscribe(v1, second);
        assertEq(market.purchaseInfo(third).deadline, T0 + 100 days + TERM, "starts now");

        uint256 v9 = _register(address(0), PRICE);
        _plan(v9);
        vm.deal(stranger, 10 ether);
        vm.startPrank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotSubscription.selector, third));
        market.subscribe{value: PLAN_PRICE}(v1, PLAN_PRICE, third); // someone else's
        vm.stopPrank();
        vm.prank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotSubscription.selector, third));
        market.subscribe{value: PLAN_PRICE}(v9, PLAN_PRICE, third); // another dataset's
    }

    function test_planRules() public {
        uint256 v1 = _register(address(0), PRICE);
        vm.prank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NoSubscriptionPlan.selector, v1));
        market.subscribe{value: PLAN_PRICE}(v1, PLAN_PRICE, 0);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotDatasetOwner.selector, v1, stranger));
        market.setSubscriptionPlan(v1, PLAN_PRICE, TERM);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.OutOfRange.selector, "term", 59, 1 hours, 366 days));
        market.setSubscriptionPlan(v1, PLAN_PRICE, 59);
        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.OutOfRange.selector, "term", 367 days, 1 hours, 366 days)
        );
        market.setSubscriptionPlan(v1, PLAN_PRICE, 367 days);
        vm.expectEmit(true, true, false, true, address(market));
        emit IDataMarket.SubscriptionPlanSet(v1, owner, PLAN_PRICE, TERM);
        market.setSubscriptionPlan(v1, PLAN_PRICE, TERM);
        vm.stopPrank();

        vm.startPrank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.PriceAboveMax.selector, v1, PLAN_PRICE, PLAN_PRICE - 1));
        market.subscribe{value: PLAN_PRICE}(v1, PLAN_PRICE - 1, 0);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongPayment.selector, PLAN_PRICE, PLAN_PRICE - 1));
        market.subscribe{value: PLAN_PRICE - 1}(v1, PLAN_PRICE, 0);
        market.subscribe{value: PLAN_PRICE + 5}(v1, PLAN_PRICE, 0);
        assertEq(market.withdrawable(BUYER, address(0)), 5, "overpayment withdrawable");
        vm.stopPrank();
        vm.prank(owner);
        market.setSubscriptionPlan(v1, 0, 0);
        vm.prank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NoSubscriptionPlan.selector, v1));
        market.subscribe{value: PLAN_PRICE}(v1, PLAN_PRICE, 0);
    }

    function test_tokenSubscriptionPaysTheSplitAndRefusesFeeOnTransfer() public {
        uint256 v1 = _register(address(usd), 100e6);
        address[] memory payees = new address[](2);
        uint16[] memory shares = new uint16[](2);
        (payees[0], payees[1], shares[0], shares[1]) = (address(0xA1), address(0xB2), 6_000, 4_000);
        vm.startPrank(owner);
        market.setRevenueSplit(v1, payees, shares, false);
        market.setSubscriptionPlan(v1, 1_000e6, TERM);
        vm.stopPrank();
        usd.mint(BUYER, 1_000e6);
        vm.startPrank(BUYER);
        usd.approve(address(market), 1_000e6);
        uint256 sid = market.subscribe(v1, 1_000e6, 0);
        vm.stopPrank();
        assertEq(usd.balanceOf(address(market)), 1_000e6, "escrowed in tokens");
        vm.warp(T0 + TERM + 1);
        market.settle(sid);
        uint256 net = 1_000e6 - _fee(1_000e6);
        assertEq(market.withdrawable(address(0xB2), address(usd)), (net * 4_000) / 10_000, "second payee");
        assertEq(
            market.withdrawable(address(0xA1), address(usd)) + market.withdrawable(address(0xB2), address(usd)),
            net,
            "payees share exactly the net price"
        );

        FeeOnTransferToken fot = new FeeOnTransferToken();
        uint256 v2 = _register(address(fot), 100);
        vm.prank(owner);
        market.setSubscriptionPlan(v2, 1_000, TERM);
        fot.mint(BUYER, 10_000);
        vm.startPrank(BUYER);
        fot.approve(address(market), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(IDataMarket.TokenTransferMismatch.selector, address(fot), 1_000, 990)
        );
        market.subscribe(v2, 1_000, 0);
        vm.stopPrank();
    }

    /// However the claims go, the subscription's price ends with exactly one party: the seller (less the fee)
    /// when every claim was delivered right, the subscriber in full when any was not.
    function testFuzz_thePriceEndsWithOneParty(uint96 price, uint8 versions, uint8 wrongMask) public {
        price = uint96(bound(price, 0, 1_000 ether));
        versions = uint8(bound(versions, 1, 5));
        uint256 v = _register(address(0), PRICE);
        vm.prank(owner);
        market.setSubscriptionPlan(v, price, TERM);
        vm.deal(BUYER, uint256(price) + 1 ether);
        vm.prank(BUYER);
        uint256 sid = market.subscribe{value: price}(v, price, 0);
        vm.roll(block.number + 1);
        bool anyWrong = false;
        for (uint256 i = 0; i < versions; ++i) {
            v = _version(v);
            uint256 c = _claim(sid, v);
            bool wrong = (wrongMask >> i) & 1 == 1;
            IDataMarket.DisputeProof memory proof = _deliverAs(owner, c, wrong ? keccak256("wrong") : DATA_KEY);
            if (wrong) {
                vm.prank(BUYER);
                market.dispute(c, proof);
                anyWrong = true;
                break; // the subscription is refunded: no more claims
            }
        }
        vm.warp(T0 + TERM + CHALLENGE + 1);
        uint256[] memory ids = new uint256[](1);
        for (uint256 pid = sid + 1; pid <= market.purchaseCount(); ++pid) {
            ids[0] = pid;
            market.settleMany(ids);
        }
        ids[0] = sid;
        market.settleMany(ids);
        assertEq(market.escrowed(address(0)), 0, "nothing left in escrow");
        if (anyWrong) {
            assertEq(market.withdrawable(BUYER, address(0)), price, "refunded in full");
            assertEq(market.withdrawable(owner, address(0)), 0, "seller unpaid");
        } else {
            assertEq(market.withdrawable(owner, address(0)) + market.feesOwed(address(0)), price, "seller and fee");
            assertEq(market.withdrawable(BUYER, address(0)), 0, "nothing back");
        }
    }
}
