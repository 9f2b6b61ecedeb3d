// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title DataMarket: dataset versions as ERC-721 tokens, access sold through escrow, keys delivered on-chain.
/// @notice A version records the manifest hash, the content root (RFC 9162 Merkle root over the sealed
/// shards' SHA-256 hashes) and the key commitment of deai-data's formats. A buyer pays into escrow with a
/// fresh HPKE (X25519) public key; the owner or an authorised key agent delivers the data key sealed to it,
/// which releases the escrow (less the protocol fee) to the owner's withdrawable balance. A buyer whose key
/// never came takes a full refund after the delivery window. All payouts are pull payments.
contract DataMarket is ERC721, EIP712, Nonces, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ constants and immutables

    /// @notice The payment token value that means the chain's native currency.
    address public constant NATIVE = address(0);
    /// @notice The highest protocol fee a deployment may set: 10 %.
    uint16 public constant MAX_FEE_BPS = 1_000;
    uint64 public constant MIN_DELIVERY_WINDOW = 10 minutes;
    uint64 public constant MAX_DELIVERY_WINDOW = 90 days;
    /// @notice Upper bound on a sealed key's length (an HPKE-sealed 32-byte key is 80 bytes).
    uint256 public constant MAX_SEALED_KEY_LENGTH = 512;

    bytes32 public constant REGISTRATION_TYPEHASH = keccak256(
        "Registration(bytes32 manifestHash,bytes32 contentRoot,bytes32 keyCommitment,uint32 shardCount,"
        "address paymentToken,uint128 price,uint64 deliveryWindow,uint256 previous,string[] manifestURIs,"
        "string licenseURI)"
    );
    bytes32 public constant REGISTER_TYPEHASH = keccak256(
        "Register(address owner,Registration registration,uint256 nonce,uint256 deadline)"
        "Registration(bytes32 manifestHash,bytes32 contentRoot,bytes32 keyCommitment,uint32 shardCount,"
        "address paymentToken,uint128 price,uint64 deliveryWindow,uint256 previous,string[] manifestURIs,"
        "string licenseURI)"
    );

    /// @notice Protocol fee in basis points of each delivered purchase, fixed at deploy.
    uint16 public immutable feeBps;
    /// @notice Receives the protocol fees (pulled with `withdrawFees`).
    address public immutable treasury;

    // ------------------------------------------------------------------ types

    /// @notice What a dataset owner signs or sends to register a version.
    struct Registration {
        bytes32 manifestHash;
        bytes32 contentRoot;
        bytes32 keyCommitment;
        uint32 shardCount;
        address paymentToken;
        uint128 price;
        uint64 deliveryWindow;
        uint256 previous;
        string[] manifestURIs;
        string licenseURI;
    }

    /// @notice A registered version (URIs live in the registration event; `registeredBlock` finds it).
    struct Dataset {
        bytes32 manifestHash;
        bytes32 contentRoot;
        bytes32 keyCommitment;
        address paymentToken;
        uint64 deliveryWindow;
        uint32 shardCount;
        uint128 price;
        uint64 previous;
        uint48 registeredBlock;
        bool paused;
    }

    enum Status {
        None,
        Pending,
        Delivered,
        Refunded
    }

    struct Purchase {
        address buyer;
        uint64 deadline;
        Status status;
        uint128 amount;
        uint64 datasetId;
        uint48 purchasedBlock;
    }

    // ------------------------------------------------------------------ state

    // Next ids start at 1 (0 means "none") and are set at deploy, so the first registration and the
    // first purchase pay for a non-zero to non-zero write instead of zero to non-zero (about 17k gas less).
    uint256 private _nextDatasetId = 1;
    uint256 private _nextPurchaseId = 1;
    mapping(uint256 datasetId => Dataset) private _datasets;
    mapping(uint256 purchaseId => Purchase) private _purchases;
    /// @notice The version that registered a content root (a root can be registered once).
    mapping(bytes32 contentRoot => uint256 datasetId) public datasetByContentRoot;
    /// @notice Key agents an owner authorised to deliver keys for all of the owner's datasets.
    mapping(address owner => mapping(address agent => bool)) public isKeyAgent;
    /// @notice Payments held until delivery or refund, per payment token.
    mapping(address token => uint256) public escrowed;
    /// @notice Balances an account can pull with `withdraw`, per payment token.
    mapping(address account => mapping(address token => uint256)) public withdrawable;
    /// @notice Protocol fees owed to the treasury, per payment token.
    mapping(address token => uint256) public feesOwed;

    // ------------------------------------------------------------------ events

    event DatasetRegistered(
        uint256 indexed datasetId,
        address indexed owner,
        uint256 indexed previous,
        bytes32 manifestHash,
        bytes32 contentRoot,
        bytes32 keyCommitment,
        uint32 shardCount,
        address paymentToken,
        uint128 price,
        uint64 deliveryWindow,
        string[] manifestURIs,
        string licenseURI,
        address registrar
    );
    event PriceChanged(uint256 indexed datasetId, address indexed owner, uint128 oldPrice, uint128 newPrice);
    event SalesPaused(uint256 indexed datasetId, address indexed owner, bool paused);
    event KeyAgentSet(address indexed owner, address indexed agent, bool allowed);
    event Purchased(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed buyer,
        address paymentToken,
        uint128 amount,
        uint64 deadline,
        bytes32 buyerPublicKey
    );
    event KeyDelivered(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed owner,
        address deliveredBy,
        address paymentToken,
        uint128 ownerAmount,
        uint128 fee,
        bytes sealedKey
    );
    event Refunded(
        uint256 indexed purchaseId, uint256 indexed datasetId, address indexed buyer, address paymentToken, uint128 amount
    );
    event Withdrawn(address indexed account, address indexed paymentToken, uint256 amount);
    event FeesWithdrawn(address indexed treasury, address indexed paymentToken, uint256 amount);

    // ------------------------------------------------------------------ errors

    error FeeTooHigh(uint16 feeBps, uint16 maxFeeBps);
    error ZeroTreasury();
    error InvalidParameter(string name);
    error DeliveryWindowOutOfRange(uint64 window, uint64 min, uint64 max);
    error ContentRootTaken(bytes32 contentRoot, uint256 datasetId);
    error UnknownDataset(uint256 datasetId);
    error NotDatasetOwner(uint256 datasetId, address caller);
    error SignatureExpired(uint256 deadline);
    error InvalidSignature(address owner);
    error SalesArePaused(uint256 datasetId);
    error PriceAboveMax(uint256 datasetId, uint128 price, uint128 maxPrice);
    error WrongPayment(uint256 expected, uint256 received);
    error TokenTransferMismatch(address token, uint256 expected, uint256 received);
    error UnknownPurchase(uint256 purchaseId);
    error NotPending(uint256 purchaseId, Status status);
    error NotOwnerOrAgent(uint256 purchaseId, address caller);
    error NotBuyer(uint256 purchaseId, address caller);
    error DeliveryWindowClosed(uint256 purchaseId, uint64 deadline);
    error DeliveryWindowOpen(uint256 purchaseId, uint64 deadline);
    error NothingToWithdraw(address account, address token);
    error NativeTransferFailed(address to, uint256 amount);

    constructor(address treasury_, uint16 feeBps_) ERC721("deai-data dataset", "DEAI") EIP712("DataMarket", "1") {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        if (treasury_ == address(0)) revert ZeroTreasury();
        treasury = treasury_;
        feeBps = feeBps_;
    }

    // ------------------------------------------------------------------ registration

    /// @notice Register a dataset version owned by the caller; mints token `datasetId` to the caller.
    function register(Registration calldata r) external returns (uint256 datasetId) {
        return _register(r, msg.sender);
    }

    /// @notice Register on behalf of `owner`, who signed the registration (EIP-712); the caller pays gas.
    /// @dev The signature is checked with ERC-1271 too, so a contract wallet can own datasets.
    function registerFor(Registration calldata r, address owner, uint256 deadline, bytes calldata signature)
        external
        returns (uint256 datasetId)
    {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        bytes32 structHash = keccak256(abi.encode(REGISTER_TYPEHASH, owner, hashRegistration(r), _useNonce(owner), deadline));
        if (!SignatureChecker.isValidSignatureNow(owner, _hashTypedDataV4(structHash), signature)) {
            revert InvalidSignature(owner);
        }
        return _register(r, owner);
    }

    /// @notice The EIP-712 struct hash of a registration (what `registerFor`'s signature covers).
    function hashRegistration(Registration calldata r) public pure returns (bytes32) {
        bytes32[] memory uriHashes = new bytes32[](r.manifestURIs.length);
        for (uint256 i = 0; i < uriHashes.length; ++i) {
            uriHashes[i] = keccak256(bytes(r.manifestURIs[i]));
        }
        return keccak256(
            bytes.concat(
                abi.encode(REGISTRATION_TYPEHASH, r.manifestHash, r.contentRoot, r.keyCommitment, r.shardCount),
                abi.encode(r.paymentToken, r.price, r.deliveryWindow, r.previous),
                abi.encode(keccak256(abi.encodePacked(uriHashes)), keccak256(bytes(r.licenseURI)))
            )
        );
    }

    /// @notice The EIP-712 domain separator (name "DataMarket", version "1", this chain and address).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _register(Registration calldata r, address owner) private returns (uint256 datasetId) {
        if (r.manifestHash == bytes32(0)) revert InvalidParameter("manifestHash");
        if (r.contentRoot == bytes32(0)) revert InvalidParameter("contentRoot");
        if (r.keyCommitment == bytes32(0)) revert InvalidParameter("keyCommitment");
        if (r.shardCount == 0) revert InvalidParameter("shardCount");
        if (r.manifestURIs.length == 0) revert InvalidParameter("manifestURIs");
        if (r.deliveryWindow < MIN_DELIVERY_WINDOW || r.deliveryWindow > MAX_DELIVERY_WINDOW) {
            revert DeliveryWindowOutOfRange(r.deliveryWindow, MIN_DELIVERY_WINDOW, MAX_DELIVERY_WINDOW);
        }
        uint256 taken = datasetByContentRoot[r.contentRoot];
        if (taken != 0) revert ContentRootTaken(r.contentRoot, taken);
        if (r.previous != 0) {
            address previousOwner = _ownerOf(r.previous);
            if (previousOwner == address(0)) revert UnknownDataset(r.previous);
            if (previousOwner != owner) revert NotDatasetOwner(r.previous, owner);
        }

        datasetId = _nextDatasetId++;
        datasetByContentRoot[r.contentRoot] = datasetId;
        _datasets[datasetId] = Dataset({
            manifestHash: r.manifestHash,
            contentRoot: r.contentRoot,
            keyCommitment: r.keyCommitment,
            paymentToken: r.paymentToken,
            deliveryWindow: r.deliveryWindow,
            shardCount: r.shardCount,
            price: r.price,
            // casting to 'uint64' is safe because a non-zero previous was checked to exist above
            // forge-lint: disable-next-line(unsafe-typecast)
            previous: uint64(r.previous),
            registeredBlock: uint48(block.number),
            paused: false
        });
        _mint(owner, datasetId);
        emit DatasetRegistered(
            datasetId,
            owner,
            r.previous,
            r.manifestHash,
            r.contentRoot,
            r.keyCommitment,
            r.shardCount,
            r.paymentToken,
            r.price,
            r.deliveryWindow,
            r.manifestURIs,
            r.licenseURI,
            msg.sender
        );
    }

    // ------------------------------------------------------------------ owner controls

    function setPrice(uint256 datasetId, uint128 newPrice) external {
        _requireDatasetOwner(datasetId);
        Dataset storage d = _datasets[datasetId];
        uint128 oldPrice = d.price;
        d.price = newPrice;
        emit PriceChanged(datasetId, msg.sender, oldPrice, newPrice);
    }

    function setPaused(uint256 datasetId, bool paused) external {
        _requireDatasetOwner(datasetId);
        _datasets[datasetId].paused = paused;
        emit SalesPaused(datasetId, msg.sender, paused);
    }

    /// @notice Allow (or stop) `agent` to deliver keys for every dataset the caller owns.
    function setKeyAgent(address agent, bool allowed) external {
        isKeyAgent[msg.sender][agent] = allowed;
        emit KeyAgentSet(msg.sender, agent, allowed);
    }

    // ------------------------------------------------------------------ purchases

    /// @notice Pay `datasetId`'s price into escrow. `buyerPublicKey` is the buyer's fresh X25519 public
    /// key the data key will be sealed to; `maxPrice` guards against a price raised in the meantime.
    function purchase(uint256 datasetId, bytes32 buyerPublicKey, uint128 maxPrice)
        external
        payable
        nonReentrant
        returns (uint256 purchaseId)
    {
        Dataset storage d = _datasets[datasetId];
        if (d.manifestHash == bytes32(0)) revert UnknownDataset(datasetId);
        if (d.paused) revert SalesArePaused(datasetId);
        if (buyerPublicKey == bytes32(0)) revert InvalidParameter("buyerPublicKey");
        uint128 price = d.price;
        if (price > maxPrice) revert PriceAboveMax(datasetId, price, maxPrice);
        address token = d.paymentToken;
        uint256 expectedValue = token == NATIVE ? price : 0;
        if (msg.value != expectedValue) revert WrongPayment(expectedValue, msg.value);

        uint64 deadline = uint64(block.timestamp) + d.deliveryWindow;
        purchaseId = _nextPurchaseId++;
        _purchases[purchaseId] = Purchase({
            buyer: msg.sender,
            deadline: deadline,
            status: Status.Pending,
            amount: price,
            // casting to 'uint64' is safe because datasetId exists, so it is below _nextDatasetId
            // forge-lint: disable-next-line(unsafe-typecast)
            datasetId: uint64(datasetId),
            purchasedBlock: uint48(block.number)
        });
        escrowed[token] += price;
        emit Purchased(purchaseId, datasetId, msg.sender, token, price, deadline, buyerPublicKey);

        if (token != NATIVE && price != 0) _pullExactly(token, msg.sender, price);
    }

    /// @notice Deliver the data key sealed to the buyer's public key; releases the escrow to the owner.
    /// Callable by the dataset's current owner or a key agent that owner authorised, until the deadline.
    function deliverKey(uint256 purchaseId, bytes calldata sealedKey) external {
        Purchase storage p = _pendingPurchase(purchaseId);
        uint256 datasetId = p.datasetId;
        address owner = _ownerOf(datasetId);
        if (msg.sender != owner && !isKeyAgent[owner][msg.sender]) revert NotOwnerOrAgent(purchaseId, msg.sender);
        if (block.timestamp > p.deadline) revert DeliveryWindowClosed(purchaseId, p.deadline);
        if (sealedKey.length == 0 || sealedKey.length > MAX_SEALED_KEY_LENGTH) revert InvalidParameter("sealedKey");

        p.status = Status.Delivered;
        (address token, uint128 ownerAmount, uint128 fee) = _release(p, owner);
        emit KeyDelivered(purchaseId, datasetId, owner, msg.sender, token, ownerAmount, fee, sealedKey);
    }

    /// @notice After the delivery window, a buyer whose key never came gets the full price back
    /// (credited to the buyer's withdrawable balance; pull it with `withdraw`).
    function refund(uint256 purchaseId) external {
        Purchase storage p = _pendingPurchase(purchaseId);
        if (msg.sender != p.buyer) revert NotBuyer(purchaseId, msg.sender);
        if (block.timestamp <= p.deadline) revert DeliveryWindowOpen(purchaseId, p.deadline);

        p.status = Status.Refunded;
        uint128 amount = p.amount;
        uint256 datasetId = p.datasetId;
        address token = _datasets[datasetId].paymentToken;
        escrowed[token] -= amount;
        withdrawable[msg.sender][token] += amount;
        emit Refunded(purchaseId, datasetId, msg.sender, token, amount);
    }

    // ------------------------------------------------------------------ pull payments

    /// @notice Send the caller's whole withdrawable balance of `token` to the caller.
    function withdraw(address token) external nonReentrant {
        uint256 amount = withdrawable[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw(msg.sender, token);
        withdrawable[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, amount);
        _send(token, msg.sender, amount);
    }

    /// @notice Send the protocol fees owed in `token` to the treasury (anyone may trigger it).
    function withdrawFees(address token) external nonReentrant {
        uint256 amount = feesOwed[token];
        if (amount == 0) revert NothingToWithdraw(treasury, token);
        feesOwed[token] = 0;
        emit FeesWithdrawn(treasury, token, amount);
        _send(token, treasury, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of dataset versions registered so far (ids run from 1 to this).
    function datasetCount() external view returns (uint256) {
        return _nextDatasetId - 1;
    }

    /// @notice Number of purchases made so far (ids run from 1 to this).
    function purchaseCount() external view returns (uint256) {
        return _nextPurchaseId - 1;
    }

    function datasetInfo(uint256 datasetId) external view returns (Dataset memory) {
        Dataset memory d = _datasets[datasetId];
        if (d.manifestHash == bytes32(0)) revert UnknownDataset(datasetId);
        return d;
    }

    function purchaseInfo(uint256 purchaseId) external view returns (Purchase memory) {
        Purchase memory p = _purchases[purchaseId];
        if (p.status == Status.None) revert UnknownPurchase(purchaseId);
        return p;
    }

    /// @notice True when `shardHash` (SHA-256 of a sealed shard) is shard `index` of `datasetId`.
    function verifyShard(uint256 datasetId, bytes32 shardHash, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        Dataset storage d = _datasets[datasetId];
        if (d.manifestHash == bytes32(0)) revert UnknownDataset(datasetId);
        return verifyInclusion(shardHash, index, d.shardCount, proof, d.contentRoot);
    }

    /// @notice RFC 9162 inclusion proof check with deai-data's tree: leaves SHA-256(0x00 || shardHash),
    /// nodes SHA-256(0x01 || left || right), a lone last node moving up unchanged.
    function verifyInclusion(bytes32 shardHash, uint256 index, uint256 size, bytes32[] calldata proof, bytes32 root)
        public
        pure
        returns (bool)
    {
        if (index >= size) return false;
        bytes32 node = sha256(abi.encodePacked(bytes1(0x00), shardHash));
        uint256 used = 0;
        while (size > 1) {
            if (index & 1 == 1) {
                if (used == proof.length) return false;
                node = sha256(abi.encodePacked(bytes1(0x01), proof[used++], node));
            } else if (index + 1 < size) {
                if (used == proof.length) return false;
                node = sha256(abi.encodePacked(bytes1(0x01), node, proof[used++]));
            }
            index >>= 1;
            size = (size + 1) >> 1;
        }
        return used == proof.length && node == root;
    }

    // ------------------------------------------------------------------ internals

    function _requireDatasetOwner(uint256 datasetId) private view {
        address owner = _ownerOf(datasetId);
        if (owner == address(0)) revert UnknownDataset(datasetId);
        if (owner != msg.sender) revert NotDatasetOwner(datasetId, msg.sender);
    }

    function _pendingPurchase(uint256 purchaseId) private view returns (Purchase storage p) {
        p = _purchases[purchaseId];
        Status status = p.status;
        if (status == Status.None) revert UnknownPurchase(purchaseId);
        if (status != Status.Pending) revert NotPending(purchaseId, status);
    }

    /// @dev Move a delivered purchase's escrow to the owner's balance and the fee to the treasury's.
    function _release(Purchase storage p, address owner)
        private
        returns (address token, uint128 ownerAmount, uint128 fee)
    {
        uint128 amount = p.amount;
        fee = uint128((uint256(amount) * feeBps) / 10_000);
        ownerAmount = amount - fee;
        token = _datasets[p.datasetId].paymentToken;
        escrowed[token] -= amount;
        withdrawable[owner][token] += ownerAmount;
        if (fee != 0) feesOwed[token] += fee;
    }

    /// @dev Pull exactly `amount` of `token`; fee-on-transfer or lying tokens are refused.
    function _pullExactly(address token, address from, uint256 amount) private {
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(from, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received != amount) revert TokenTransferMismatch(token, amount, received);
    }

    function _send(address token, address to, uint256 amount) private {
        if (token == NATIVE) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
