// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {DataMarket} from "../../src/DataMarket.sol";

/// @dev A valid secp256k1 public key for purchases that never reach delivery: the generator G (secret 1).
bytes32 constant G_X = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798;
bytes32 constant G_Y = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8;

/// @notice A plain ERC-20 with EIP-2612 permits and an open mint, for tests.
contract TestToken is ERC20Permit {
    constructor() ERC20("Test USD", "TUSD") ERC20Permit("Test USD") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice Takes 1 % of every transfer: the market must refuse it (it would escrow less than the price).
contract FeeOnTransferToken is ERC20 {
    constructor() ERC20("Fee token", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0xdead), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// @notice Calls back into the market from inside every transfer, trying to re-enter purchase/withdraw.
contract ReentrantToken is ERC20 {
    DataMarket public market;
    uint256 public datasetId;
    bool public reentered;
    bytes public lastError;

    constructor() ERC20("Reentrant", "RE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(DataMarket market_, uint256 datasetId_) external {
        market = market_;
        datasetId = datasetId_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (address(market) != address(0) && from != address(0)) {
            DataMarket m = market;
            market = DataMarket(address(0)); // one attempt per arming
            try m.purchase(datasetId, G_X, G_Y, type(uint96).max) {
                reentered = true;
            } catch (bytes memory err) {
                lastError = err;
            }
            try m.withdraw(address(this)) {
                reentered = true;
            } catch {}
        }
    }
}

/// @notice A native-currency receiver that re-enters `withdraw` when paid; it swallows the inner failure.
contract ReentrantReceiver {
    DataMarket public immutable market;
    uint256 public reentries;
    bool public reenteredSucceeded;

    constructor(DataMarket market_) {
        market = market_;
    }

    function buy(uint256 datasetId, uint96 price) external payable returns (uint256) {
        return market.purchase{value: price}(datasetId, G_X, G_Y, price);
    }

    function refundAndWithdraw(uint256 purchaseId) external {
        market.refund(purchaseId);
        market.withdraw(address(0));
    }

    receive() external payable {
        reentries++;
        try market.withdraw(address(0)) {
            reenteredSucceeded = true;
        } catch {}
    }
}

/// @notice A receiver that refuses native payments: its withdrawal must revert and keep its balance.
contract RefusingReceiver {
    DataMarket public immutable market;

    constructor(DataMarket market_) {
        market = market_;
    }

    function buy(uint256 datasetId, uint96 price) external payable returns (uint256) {
        return market.purchase{value: price}(datasetId, G_X, G_Y, price);
    }

    function refund(uint256 purchaseId) external {
        market.refund(purchaseId);
    }

    function withdraw() external {
        market.withdraw(address(0));
    }
}
