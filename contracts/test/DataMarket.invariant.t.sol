// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test, Vm} from "./helpers/Test.sol";
import {TestToken} from "./helpers/Tokens.sol";
import {DataMarket} from "../src/DataMarket.sol";

/// @notice Drives the market with random sequences of every action from a fixed set of actors, and tries
/// the forbidden ones (stranger refunds, stranger deliveries, double settlement), counting any success.
contract MarketHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    DataMarket public immutable market;
    TestToken public immutable usd;
    address[] public actors;
    address public constant AGENT = address(0xA6E17);

    uint256[] public datasetIds;
    uint256[] public purchaseIds;
    mapping(uint256 purchaseId => uint256) public settlements;
    uint256 public forbiddenSuccesses;
    uint256 public pendingNative;
    uint256 public pendingToken;
    uint256 public calls;

    constructor(DataMarket market_, TestToken usd_) {
        market = market_;
        usd = usd_;
        for (uint256 i = 1; i <= 5; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            address a = address(uint160(0x1000 + i));
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

    function register(uint256 actorSeed, uint128 price, uint64 window, bool inToken) external {
        calls++;
        address owner = _actor(actorSeed);
        string[] memory uris = new string[](1);
        uris[0] = "file:///m";
        DataMarket.Registration memory r = DataMarket.Registration({
            manifestHash: keccak256(abi.encode("m", datasetIds.length)),
            contentRoot: keccak256(abi.encode("r", datasetIds.length)),
            keyCommitment: keccak256(abi.encode("k", datasetIds.length)),
            shardCount: 1,
            paymentToken: inToken ? address(usd) : address(0),
            price: uint128(price % 1e24),
            deliveryWindow: uint64(600 + (window % 30 days)),
            previous: 0,
            manifestURIs: uris,
            licenseURI: ""
        });
        vm.prank(owner);
        datasetIds.push(market.register(r));
        if (actorSeed % 3 == 0) {
            vm.prank(owner);
            market.setKeyAgent(AGENT, true);
        }
    }

    function purchase(uint256 actorSeed, uint256 datasetSeed) external {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        DataMarket.Dataset memory d = market.datasetInfo(id);
        address buyer = _actor(actorSeed);
        uint256 value = d.paymentToken == address(0) ? d.price : 0;
        vm.prank(buyer);
        try market.purchase{value: value}(id, bytes32(uint256(0xBEEF)), d.price) returns (uint256 pid) {
            purchaseIds.push(pid);
            if (d.paymentToken == address(0)) pendingNative += d.price;
            else pendingToken += d.price;
        } catch {}
    }

    function deliver(uint256 purchaseSeed, bool asAgent) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        DataMarket.Purchase memory p = market.purchaseInfo(pid);
        address owner = market.ownerOf(p.datasetId);
        vm.prank(asAgent ? AGENT : owner);
        try market.deliverKey(pid, hex"01") {
            _settled(pid, p);
        } catch {}
    }

    function refund(uint256 purchaseSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        DataMarket.Purchase memory p = market.purchaseInfo(pid);
        vm.prank(p.buyer);
        try market.refund(pid) {
            _settled(pid, p);
        } catch {}
    }

    function _settled(uint256 pid, DataMarket.Purchase memory p) private {
        settlements[pid]++;
        if (market.datasetInfo(p.datasetId).paymentToken == address(0)) pendingNative -= p.amount;
        else pendingToken -= p.amount;
    }

    /// Forbidden: anyone but the buyer refunding, anyone but owner/agent delivering.
    function attack(uint256 purchaseSeed, uint256 actorSeed) external {
        if (purchaseIds.length == 0) return;
        calls++;
        uint256 pid = purchaseIds[purchaseSeed % purchaseIds.length];
        DataMarket.Purchase memory p = market.purchaseInfo(pid);
        address attacker = _actor(actorSeed);
        address owner = market.ownerOf(p.datasetId);
        if (attacker != p.buyer) {
            vm.prank(attacker);
            try market.refund(pid) {
                forbiddenSuccesses++;
            } catch {}
        }
        if (attacker != owner && !market.isKeyAgent(owner, attacker)) {
            vm.prank(attacker);
            try market.deliverKey(pid, hex"02") {
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
    }

    function setPrice(uint256 datasetSeed, uint128 price) external {
        if (datasetIds.length == 0) return;
        calls++;
        uint256 id = datasetIds[datasetSeed % datasetIds.length];
        vm.prank(market.ownerOf(id));
        market.setPrice(id, uint128(price % 1e24));
    }

    function passTime(uint32 seconds_) external {
        calls++;
        vm.warp(block.timestamp + (seconds_ % 40 days));
    }

    function purchaseCount() external view returns (uint256) {
        return purchaseIds.length;
    }
}

contract DataMarketInvariantTest is Test {
    DataMarket internal market;
    TestToken internal usd;
    MarketHandler internal handler;
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

    function invariant_balanceEqualsEscrowPlusWithdrawablePlusFees() public view {
        assertEq(address(market).balance, _owedTo(address(0)), "native balance");
        assertEq(usd.balanceOf(address(market)), _owedTo(address(usd)), "token balance");
    }

    function invariant_escrowEqualsPendingPurchases() public view {
        assertEq(market.escrowed(address(0)), handler.pendingNative(), "native escrow");
        assertEq(market.escrowed(address(usd)), handler.pendingToken(), "token escrow");
    }

    function invariant_noForbiddenActionSucceeds() public view {
        assertEq(handler.forbiddenSuccesses(), 0, "stranger refund or delivery went through");
    }

    function invariant_eachPurchaseSettlesAtMostOnce() public view {
        for (uint256 i = 0; i < handler.purchaseCount(); ++i) {
            uint256 pid = handler.purchaseIds(i);
            uint256 settled = handler.settlements(pid);
            assertLe(settled, 1, "settled twice");
            DataMarket.Status status = market.purchaseInfo(pid).status;
            assertEq(settled == 1 ? 1 : 0, status == DataMarket.Status.Pending ? 0 : 1, "status matches settlements");
        }
    }

    function invariant_agentIsNeverPaid() public view {
        assertEq(market.withdrawable(handler.AGENT(), address(0)), 0, "agent credited native");
        assertEq(market.withdrawable(handler.AGENT(), address(usd)), 0, "agent credited tokens");
    }
}
