// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test, Vm} from "./helpers/Test.sol";
import {TestToken} from "./helpers/Tokens.sol";
import {DataMarket} from "../src/DataMarket.sol";
import {IDataMarket} from "../src/IDataMarket.sol";
import {KeyDelivery} from "../src/libraries/KeyDelivery.sol";
import {DeliveryBuilder} from "./helpers/DeliveryBuilder.sol";

/// @notice Drives the market with random sequences of every action from a fixed set of actors, honest and
/// dishonest deliveries, disputes, settlements, refunds and transfers, and tries the forbidden ones (stranger
/// refunds, deliveries and disputes, early settlement), counting any success.
contract MarketHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    bytes32 internal constant DATA_KEY = keccak256("invariant data key");

    DataMarket public immutable market;
    TestToken public immutable usd;
    address[] public actors;
    mapping(address actor => uint256) private _keys;
    address public constant AGENT = address(0xA6E17);

    struct Tracked {
        uint256 secret;
        bool honest;
        IDataMarket.DisputeProof proof;
    }

    uint256[] public datasetIds;
    uint256[] public purchaseIds;
    uint256[] public subscriptionIds;
    mapping(uint256 purchaseId => Tracked) private _tracked;
    mapping(uint256 purchaseId => uint256) public settlements;
    uint256 public forbiddenSuccesses;
    /// Settlements whose credits (seller or payees, referrer, treasury) did not add up to what the buyer paid.
    uint256 public wrongPayouts;
    uint256 public wrongJudgements;
    uint256 public unsettledNative;
    uint256 public unsettledToken;
    uint256 public disputes;
    uint256 public claims;
    uint256 public calls;

    constructor(DataMarket market_, TestToken usd_) {
        market = market_;
        usd = usd_;
        for (uint256 i = 1; i <= 5; ++i) {
            uint256 key = 0x1000 + i;
            address a = vm.addr(key);
            _keys[a] = key;
            actors.push(a);
            vm.deal(a, 1e30);
            usd.mint(a, 1e30);
            vm.prank(a);
            usd.approve(address(market), type(uint256).max);
        }
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function _actor(uint256 seed) private view returns (address) {
        return actors[seed % actors.length];
    }

    /// Register a dataset, or (odd `supersedeSeed`) a new version of one, by that one's owner.
    function register(
        uint256 actorSeed,
        uint96 price,
        uint32 window,
        uint32 challenge,
        bool inToken,
        uint256 supersedeSeed
    ) external {
        calls++;
        address owner = _actor(actorSeed);
        uint256 supersedes = 0;
        if (supersedeSeed % 2 == 1 && datasetIds.length != 0) {
            supersedes = datasetIds[(supersedeSeed >> 1) % datasetIds.length];
            owner = market.ownerOf(supersedes);
        }
        string[] memory uris = new string[](1);
        uris[0] = "file:///m";
        bytes32 sealId = keccak256(abi.encode("s", datasetIds.length));
        IDataMarket.Registration memory r = IDataMarket.Registration({
            manifestHash: keccak256(abi.encode("m", datasetIds.length)),
            contentRoot: keccak256(abi.encode("r", datasetIds.length)),
            keyCommitment: KeyDelivery.commitment(DATA_KEY, sealId),
            sealId: sealId,
            shardCount: 1,
            author: owner,
            owner: owner,
            paymentToken: inToken ? address(usd) : address(0),
            price: uint96(price % 1e24),
            deliveryWindow: uint32(600 + (window % 30 days)),
            challengePeriod: uint32(600 + (challenge % 20 days)),
            supersedes: supersedes,
            keyLink: bytes32(0),
            manifestURIs: uris,
            licenseURI: ""
        });
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(_keys[owner], market.registrationRules().authorshipDigest(r));
        vm.prank(owner);
        datasetIds.push(market.register(r, abi.encodePacked(rr, s, v)));
        vm.roll(block.number + 1); // versions registered after a subscription in the same block are covered too
        if (actorSeed % 3 == 0) {
            vm.prank(owner);
            market.setKeyAgent(AGENT, true);
        }
    }

    function purchase(uint256 actorSeed, uint256 datasetSeed, uint256 secretSeed, uint64 extra) external {
        _purchase(actorSeed, datasetSeed, secretSeed, extra, 0);
    }

    /// A purchase through a front-end (one of the actors) that takes `referrerBps` on top of the price.
    function purchaseVia(uint256 actorSeed, uint256 datasetSeed, uint256 secretSeed, uint16 referrerBps) external {
        _purchase(actorSeed, datasetSeed, secretSeed, 0, 1 + (referrerBps % market.MAX_REFERRER_BPS()));
    }

    function _purchase(uint256 actorSeed, uint256 datasetSeed, uint256 secretSeed, uint64 extra, uint16 refBps)
        private
    {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        IDataMarket.Dataset memory d = market.datasetInfo(id);
        address buyer = _actor(actorSeed);
        uint256 secret = 1 + (secretSeed % (N - 1));
        Vm.Wallet memory key = vm.createWallet(secret);
        uint256 total = d.price + (uint256(d.price) * refBps) / 10_000;
        uint256 value = d.paymentToken == address(0) ? total + extra : 0;
        IDataMarket.Permit memory none;
        vm.prank(buyer);
        try market.purchaseWith{value: value}(
            id, bytes32(key.publicKeyX), bytes32(key.publicKeyY), uint96(total), _actor(secretSeed >> 8),
            refBps, none
        ) returns (uint256 pid) {
            purchaseIds.push(pid);
            _tracked[pid].secret = secret;
            if (d.paymentToken == address(0)) unsettledNative += total;
            else unsettledToken += total;
        } catch {}
    }

    /// The owner offers a plan (price and term) and an actor subscribes, sometimes renewing its last subscription.
    function subscribe(uint256 actorSeed, uint256 datasetSeed, uint96 price, uint32 term, bool renew) external {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        IDataMarket.Dataset memory d = market.datasetInfo(id);
        price = uint96(price % 1e24);
        vm.prank(market.ownerOf(id));
        market.setSubscriptionPlan(id, price, uint32(1 hours + (term % 60 days)));
        address subscriber = _actor(actorSeed);
        uint256 renews = renew && subscriptionIds.length != 0 ? subscriptionIds[subscriptionIds.length - 1] : 0;
        vm.prank(subscriber);
        try market.subscribe{value: d.paymentToken == address(0) ? price : 0}(id, price, renews) returns (uint256 sid) {
            purchaseIds.push(sid);
            subscriptionIds.push(sid);
            if (d.paymentToken == address(0)) unsettledNative += price;
            else unsettledToken += price;
        } catch {}
    }

    /// A subscriber claims a version (any: most are outside its subscription and refused).
    function claim(uint256 subscriptionSeed, uint256 datasetSeed, uint256 secretSeed) external {
        if (subscriptionIds.length == 0) return;
        calls++;
        uint256 sid = subscriptionIds[subscriptionSeed % subscriptionIds.length];
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        uint256 secret = 1 + (secretSeed % (N - 1));
        Vm.Wallet memory key = vm.createWallet(secret);
        vm.prank(market.purchaseInfo(sid).buyer);
        try market.claim(sid, id, bytes32(key.publicKeyX), bytes32(key.publicKeyY)) returns (uint256 pid) {
            purchaseIds.push(pid);
            _tracked[pid].secret = secret;
            claims++;
        } catch {}
    }

    /// A claim just refunded takes its subscription's whole price back with it.
    function _closedClaim(uint256 pid) private {
        uint256 sid = market.subscriptionOf(pid);
        if (sid == 0) return;
        IDataMarket.Purchase memory s = market.purchaseInfo(sid);
        if (s.status == IDataMarket.Status.Refunded && settlements[sid] == 0) _settled(sid, s);
    }

    /// The owner splits new sales among some actors (ascending, random shares), sometimes locked.
    function setSplit(uint256 datasetSeed, uint256 payeeMask, uint256 shareSeed, bool lock) external {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        address[] memory chosen = new address[](actors.length);
        uint256 count;
        for (uint256 i = 0; i < actors.length; ++i) {
            if (payeeMask & (1 << i) != 0) chosen[count++] = actors[i];
        }
        address[] memory payees = new address[](count);
        uint16[] memory shares = new uint16[](count);
        uint256 left = 10_000;
        for (uint256 i = 0; i < count; ++i) {
            payees[i] = chosen[i];
            uint256 room = left - (count - i - 1); // at least one basis point left for each later payee
            uint256 share = i == count - 1 ? left : 1 + (uint256(keccak256(abi.encode(shareSeed, i))) % room);
            shares[i] = uint16(share);
            left -= share;
        }
        for (uint256 i = 1; i < count; ++i) { // ascending, as the market requires
            for (uint256 j = i; j > 0 && payees[j - 1] > payees[j]; --j) {
                (payees[j - 1], payees[j]) = (payees[j], payees[j - 1]);
            }
        }
        vm.prank(market.ownerOf(id));
        try market.setRevenueSplit(id, payees, shares, lock && count != 0) {} catch {}
    }

    function _proof(uint256 pid, uint256 b, uint256 r, bytes32 key)
        private
        returns (bytes32 keyHash, IDataMarket.DisputeProof memory proof)
    {
        return DeliveryBuilder.build(address(market), pid, b, r, key);
    }

    function deliver(uint256 purchaseSeed, bool honest, bool asAgent, uint256 ephemeralSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        IDataMarket.Purchase memory p = market.purchaseInfo(pid);
        uint256 r = 1 + (ephemeralSeed % (N - 1));
        bytes32 key = honest ? DATA_KEY : keccak256(abi.encode("wrong", ephemeralSeed));
        (bytes32 keyHash, IDataMarket.DisputeProof memory proof) = _proof(pid, _tracked[pid].secret, r, key);
        if (uint256(proof.delivery.ephemeralX) >= N) return;
        vm.prank(asAgent ? AGENT : p.seller);
        try market.deliverKey(pid, keyHash, proof.delivery) {
            _tracked[pid].honest = honest;
            _tracked[pid].proof = proof;
        } catch {}
    }

    function dispute(uint256 purchaseSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        IDataMarket.Purchase memory p = market.purchaseInfo(pid);
        vm.prank(p.buyer);
        try market.dispute(pid, _tracked[pid].proof) returns (bool buyerWon) {
            disputes++;
            if (buyerWon == _tracked[pid].honest) wrongJudgements++;
            _settled(pid, p);
            _closedClaim(pid);
        } catch {}
    }

    /// One whole trade in a call (purchase, delivery, dispute), so every run exercises the judge often.
    function tradeAndDispute(uint256 actorSeed, uint256 datasetSeed, uint256 secretSeed, bool honest) external {
        uint256 before = purchaseIds.length;
        this.purchase(actorSeed, datasetSeed, secretSeed, 0);
        if (purchaseIds.length == before) return;
        this.deliver(purchaseIds.length - 1, honest, false, secretSeed >> 128);
        this.dispute(purchaseIds.length - 1);
    }

    function settle(uint256 purchaseSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        IDataMarket.Purchase memory p = market.purchaseInfo(pid);
        (, uint32 openClaims) = market.subscriptions(pid);
        bool early = block.timestamp <= p.deadline || openClaims != 0;
        address token = market.datasetInfo(p.datasetId).paymentToken;
        uint256 before = _credited(token);
        try market.settle(pid) {
            if (early) forbiddenSuccesses++;
            if (_credited(token) - before != _paid(pid, p)) wrongPayouts++;
            _settled(pid, p);
        } catch {}
    }

    function settleMany(uint256 purchaseSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 start = purchaseSeed % purchaseIds.length;
        uint256 count = purchaseIds.length - start < 4 ? purchaseIds.length - start : 4;
        uint256[] memory ids = new uint256[](count);
        IDataMarket.Purchase[] memory before = new IDataMarket.Purchase[](count);
        for (uint256 i = 0; i < count; ++i) {
            ids[i] = purchaseIds[start + i];
            before[i] = market.purchaseInfo(ids[i]);
        }
        market.settleMany(ids);
        for (uint256 i = 0; i < count; ++i) {
            if (before[i].status != market.purchaseInfo(ids[i]).status) _settled(ids[i], before[i]);
        }
    }

    function refund(uint256 purchaseSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        IDataMarket.Purchase memory p = market.purchaseInfo(pid);
        vm.prank(p.buyer);
        try market.refund(pid) {
            _settled(pid, p);
            _closedClaim(pid);
        } catch {}
    }

    function _settled(uint256 pid, IDataMarket.Purchase memory p) private {
        settlements[pid]++;
        if (market.datasetInfo(p.datasetId).paymentToken == address(0)) unsettledNative -= _paid(pid, p);
        else unsettledToken -= _paid(pid, p);
    }

    /// What the buyer paid for a purchase: its price and any referrer's fee on top.
    function _paid(uint256 pid, IDataMarket.Purchase memory p) private view returns (uint256) {
        return p.amount + (uint256(p.amount) * market.purchaseTerms(pid).referrerBps) / 10_000;
    }

    /// Everything credited in `token` to anyone the market can pay: actors (owners, payees, referrers), the
    /// treasury's fees.
    function _credited(address token) private view returns (uint256 total) {
        total = market.feesOwed(token);
        for (uint256 i = 0; i < actors.length; ++i) {
            total += market.withdrawable(actors[i], token);
        }
    }

    /// Forbidden: anyone but the buyer refunding or disputing, anyone but the seller or its agent delivering.
    function attack(uint256 purchaseSeed, uint256 actorSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        IDataMarket.Purchase memory p = market.purchaseInfo(pid);
        address attacker = _actor(actorSeed);
        if (attacker != p.buyer) {
            vm.prank(attacker);
            try market.refund(pid) {
                forbiddenSuccesses++;
            } catch {}
            vm.prank(attacker);
            try market.dispute(pid, _tracked[pid].proof) {
                forbiddenSuccesses++;
            } catch {}
        }
        if (attacker != p.buyer && datasetIds.length != 0) {
            Vm.Wallet memory key = vm.createWallet(7);
            vm.prank(attacker);
            try market.claim(
                pid, datasetIds[actorSeed % datasetIds.length], bytes32(key.publicKeyX), bytes32(key.publicKeyY)
            ) {
                forbiddenSuccesses++;
            } catch {}
        }
        if (attacker != p.seller && !market.isKeyAgent(p.seller, attacker)) {
            (bytes32 keyHash, IDataMarket.DisputeProof memory proof) = _proof(pid, _tracked[pid].secret, 7, DATA_KEY);
            vm.prank(attacker);
            try market.deliverKey(pid, keyHash, proof.delivery) {
                forbiddenSuccesses++;
            } catch {}
        }
    }

    function withdraw(uint256 actorSeed, bool inToken) external {
        calls++;
        vm.prank(_actor(actorSeed));
        try market.withdraw(inToken ? address(usd) : address(0)) {} catch {}
    }

    function withdrawFees(bool inToken) external {
        calls++;
        try market.withdrawFees(inToken ? address(usd) : address(0)) {} catch {}
    }

    function transferDataset(uint256 datasetSeed, uint256 actorSeed) external {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        address from = market.ownerOf(id);
        vm.prank(from);
        market.transferFrom(from, _actor(actorSeed), id);
        vm.prank(_actor(actorSeed));
        market.setPaused(id, false);
    }

    function setPrice(uint256 datasetSeed, uint96 price) external {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        vm.prank(market.ownerOf(id));
        market.setPrice(id, uint96(price % 1e24));
    }

    function passTime(uint32 seconds_) external {
        calls++;
        vm.warp(block.timestamp + (seconds_ % 40 days));
    }

    function purchaseCount() external view returns (uint256) {
        return purchaseIds.length;
    }

    function subscriptionCount() external view returns (uint256) {
        return subscriptionIds.length;
    }
}

contract DataMarketInvariantTest is Test {
    DataMarket internal market;
    TestToken internal usd;
    MarketHandler public handler;
    address internal constant TREASURY = address(0x7EA5);

    function setUp() public {
        vm.warp(1_700_000_000);
        market = new DataMarket(TREASURY, 300);
        usd = new TestToken();
        handler = new MarketHandler(market, usd);
        targetContract(address(handler));
    }

    function _owedTo(address token) private view returns (uint256 total) {
        total = market.escrowed(token) + market.feesOwed(token);
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            total += market.withdrawable(handler.actors(i), token);
        }
        total += market.withdrawable(handler.AGENT(), token);
    }

    /// Solvency: the market holds exactly what it owes, in each asset.
    function invariant_balanceEqualsEscrowPlusWithdrawablePlusFees() public view {
        assertEq(address(market).balance, _owedTo(address(0)), "native balance");
        assertEq(usd.balanceOf(address(market)), _owedTo(address(usd)), "token balance");
    }

    /// Escrow is exactly the purchases not yet settled or refunded (pending and in their challenge period).
    function invariant_escrowEqualsUnsettledPurchases() public view {
        assertEq(market.escrowed(address(0)), handler.unsettledNative(), "native escrow");
        assertEq(market.escrowed(address(usd)), handler.unsettledToken(), "token escrow");
    }

    function invariant_noForbiddenActionSucceeds() public view {
        assertEq(handler.forbiddenSuccesses(), 0, "stranger refund, dispute or delivery, or early settlement");
    }

    /// The contract's judgement is right every time: wrong keys refunded, honest deliveries paid.
    function invariant_disputesJudgedRight() public view {
        assertEq(handler.wrongJudgements(), 0, "a dispute was decided wrongly");
    }

    function invariant_eachPurchaseSettlesExactlyOnce() public view {
        for (uint256 i = 0; i < handler.purchaseCount(); ++i) {
            uint256 pid = handler.purchaseIds(i);
            uint256 settled = handler.settlements(pid);
            assertLe(settled, 1, "settled twice");
            IDataMarket.Status status = market.purchaseInfo(pid).status;
            bool final_ = status == IDataMarket.Status.Settled || status == IDataMarket.Status.Refunded;
            assertEq(settled, final_ ? 1 : 0, "status matches settlements");
        }
    }

    /// Each settlement credits exactly what its buyer paid, split among seller or payees, referrer and treasury:
    /// no payee paid twice, none paid from another purchase's escrow.
    function invariant_settlementsPayExactlyWhatWasPaid() public view {
        assertEq(handler.wrongPayouts(), 0, "a settlement credited more or less than its buyer paid");
    }

    /// A subscription is paid to its seller only when none of its claims was refunded and every one is closed.
    function invariant_subscriptionsEndByTheirClaims() public view {
        for (uint256 i = 0; i < handler.purchaseCount(); ++i) {
            uint256 pid = handler.purchaseIds(i);
            uint256 sid = market.subscriptionOf(pid);
            if (sid == 0) continue;
            IDataMarket.Status claimStatus = market.purchaseInfo(pid).status;
            IDataMarket.Status status = market.purchaseInfo(sid).status;
            if (claimStatus == IDataMarket.Status.Refunded) {
                assertEq(uint8(status), uint8(IDataMarket.Status.Refunded), "a refunded claim left its price paid");
            }
            if (status == IDataMarket.Status.Settled) {
                assertEq(uint8(claimStatus), uint8(IDataMarket.Status.Settled), "settled past an open claim");
            }
        }
        for (uint256 i = 0; i < handler.subscriptionCount(); ++i) {
            uint256 sid = handler.subscriptionIds(i);
            (, uint32 open) = market.subscriptions(sid);
            if (market.purchaseInfo(sid).status == IDataMarket.Status.Settled) assertEq(open, 0, "open claims");
        }
    }

    function invariant_agentIsNeverPaid() public view {
        assertEq(market.withdrawable(handler.AGENT(), address(0)), 0, "agent credited native");
        assertEq(market.withdrawable(handler.AGENT(), address(usd)), 0, "agent credited tokens");
    }
}
