// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IDataMarket} from "./IDataMarket.sol";
import {KeyDelivery} from "./libraries/KeyDelivery.sol";
import {Secp256k1} from "./libraries/Secp256k1.sol";
import {ShardTree} from "./libraries/ShardTree.sol";

/// @title DataMarket: dataset versions as ERC-721 tokens, sold through escrow with verifiable key delivery.
/// @notice See IDataMarket for the protocol. Storage layout (slots per record):
/// Dataset: manifestHash | contentRoot | keyCommitment | sealId | paymentToken+price |
/// registeredBlock+paused+shardCount+deliveryWindow+challengePeriod+supersedes+splitId+splitLocked | author.
/// Purchase: seller+deadline+status+datasetId+hasTerms | buyer+amount | binding (three slots, written once at
/// purchase), plus one PurchaseTerms slot only for purchases under a revenue split or with a referrer.
/// @dev Checks-effects-interactions everywhere; external calls happen only in `purchase`/`purchaseWith` (the
/// EIP-2612 permit and the ERC-20 pull, after every effect) and the withdrawals, all `nonReentrant`; every payout
/// (sellers, split payees, referrers, the treasury) is a pull payment.
contract DataMarket is IDataMarket, ERC721, ERC2981, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ constants and immutables

    /// @notice The payment token value that means the chain's native currency.
    address public constant NATIVE = address(0);
    /// @notice The highest protocol fee a deployment may set: 10 %.
    uint16 public constant MAX_FEE_BPS = 1_000;
    uint32 public constant MIN_DELIVERY_WINDOW = 10 minutes;
    uint32 public constant MAX_DELIVERY_WINDOW = 90 days;
    uint32 public constant MIN_CHALLENGE_PERIOD = 10 minutes;
    uint32 public constant MAX_CHALLENGE_PERIOD = 30 days;
    /// @notice Caps on what a registration carries (every indexer reads it): URIs, their length, the licence.
    uint256 public constant MAX_MANIFEST_URIS = 8;
    uint256 public constant MAX_URI_LENGTH = 512;
    uint256 public constant MAX_LICENSE_LENGTH = 256;
    /// @notice Caps on the commerce terms: payees of a split, a front-end's fee, an ERC-2981 royalty.
    uint256 public constant MAX_PAYEES = 16;
    uint16 public constant MAX_REFERRER_BPS = 500;
    uint96 public constant MAX_ROYALTY_BPS = 1_000;

    /// @notice EIP-712 domain of manifest authorship: name "deai-data manifest", version "2", no chain or
    /// contract, so one signed manifest can be registered on any market (always minted to the signed owner).
    bytes32 public constant AUTHORSHIP_DOMAIN = keccak256(
        abi.encode(
            keccak256("EIP712Domain(string name,string version)"), keccak256("deai-data manifest"), keccak256("2")
        )
    );
    bytes32 public constant AUTHORSHIP_TYPEHASH = keccak256(
        "Authorship(bytes32 sealId,bytes32 contentRoot,bytes32 keyCommitment,uint32 shardCount,address owner)"
    );
    bytes32 public constant REGISTRATION_TYPEHASH = keccak256(
        "Registration(bytes32 manifestHash,bytes32 contentRoot,bytes32 keyCommitment,bytes32 sealId,uint32 shardCount,"
        "address author,address owner,address paymentToken,uint96 price,uint32 deliveryWindow,uint32 challengePeriod,"
        "uint256 supersedes,bytes32 keyLink,string[] manifestURIs,string licenseURI)"
    );
    bytes32 public constant REGISTER_TYPEHASH = keccak256(
        "Register(Registration registration,uint256 nonce,uint256 deadline)"
        "Registration(bytes32 manifestHash,bytes32 contentRoot,bytes32 keyCommitment,bytes32 sealId,uint32 shardCount,"
        "address author,address owner,address paymentToken,uint96 price,uint32 deliveryWindow,uint32 challengePeriod,"
        "uint256 supersedes,bytes32 keyLink,string[] manifestURIs,string licenseURI)"
    );

    /// @notice Protocol fee in basis points of each settled purchase, fixed at deploy.
    uint16 public immutable feeBps;
    /// @notice Receives the protocol fees (pulled with `withdrawFees`).
    address public immutable treasury;

    // ------------------------------------------------------------------ state

    // Ids start at 1 (0 means "none") and the counters are set at deploy, so the first registration and the
    // first purchase pay for a non-zero to non-zero write (about 17k gas less).
    uint256 private _nextDatasetId = 1;
    uint256 private _nextPurchaseId = 1;
    uint32 private _nextSplitId = 1;
    mapping(uint256 datasetId => Dataset) private _datasets;
    mapping(uint256 purchaseId => Purchase) private _purchases;
    mapping(uint256 purchaseId => PurchaseTerms) private _terms;
    mapping(uint256 splitId => Payee[]) private _splits;
    /// @notice The version an author registered for a content root (each author registers a root once).
    mapping(address author => mapping(bytes32 contentRoot => uint256 datasetId)) public datasetByContent;
    /// @notice Key agents a seller authorised to deliver keys for its purchases.
    mapping(address seller => mapping(address agent => bool)) public isKeyAgent;
    /// @notice Disputes a seller lost (its delivered key did not match the commitment).
    mapping(address seller => uint256) public disputesLost;
    /// @notice Used registration nonces, 256 per word (unordered: any unused nonce works once).
    mapping(address owner => mapping(uint256 word => uint256 bits)) public nonceBitmap;
    /// @notice Payments held until settlement or refund, per payment token.
    mapping(address token => uint256) public escrowed;
    /// @notice Balances an account can pull with `withdraw`, per payment token.
    mapping(address account => mapping(address token => uint256)) public withdrawable;
    /// @notice Protocol fees owed to the treasury, per payment token.
    mapping(address token => uint256) public feesOwed;

    constructor(address treasury_, uint16 feeBps_) ERC721("deai-data dataset", "DEAI") EIP712("DataMarket", "2") {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        if (treasury_ == address(0)) revert ZeroTreasury();
        treasury = treasury_;
        feeBps = feeBps_;
    }

    // ------------------------------------------------------------------ registration

    /// @inheritdoc IDataMarket
    function register(Registration calldata r, bytes calldata authorSignature) external returns (uint256) {
        if (msg.sender != r.owner) revert NotOwner(r.owner, msg.sender);
        return _register(r, authorSignature);
    }

    /// @inheritdoc IDataMarket
    function registerFor(
        Registration calldata r,
        bytes calldata authorSignature,
        uint256 nonce,
        uint256 deadline,
        bytes calldata ownerSignature
    ) external returns (uint256) {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        _useNonce(r.owner, nonce);
        bytes32 structHash = keccak256(abi.encode(REGISTER_TYPEHASH, hashRegistration(r), nonce, deadline));
        if (!SignatureChecker.isValidSignatureNow(r.owner, _hashTypedDataV4(structHash), ownerSignature)) {
            revert InvalidSignature(r.owner);
        }
        return _register(r, authorSignature);
    }

    /// @inheritdoc IDataMarket
    function cancelNonce(uint256 nonce) external {
        _useNonce(msg.sender, nonce);
        emit NonceCancelled(msg.sender, nonce);
    }

    /// @notice True when `owner` has used or cancelled `nonce`.
    function isNonceUsed(address owner, uint256 nonce) external view returns (bool) {
        return nonceBitmap[owner][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice The EIP-712 struct hash of a registration (what `registerFor`'s owner signature covers).
    function hashRegistration(Registration calldata r) public pure returns (bytes32) {
        bytes32[] memory uriHashes = new bytes32[](r.manifestURIs.length);
        for (uint256 i = 0; i < uriHashes.length; ++i) {
            uriHashes[i] = keccak256(bytes(r.manifestURIs[i]));
        }
        return keccak256(
            bytes.concat(
                abi.encode(REGISTRATION_TYPEHASH, r.manifestHash, r.contentRoot, r.keyCommitment, r.sealId),
                abi.encode(r.shardCount, r.author, r.owner, r.paymentToken, r.price),
                abi.encode(r.deliveryWindow, r.challengePeriod, r.supersedes, r.keyLink),
                abi.encode(keccak256(abi.encodePacked(uriHashes)), keccak256(bytes(r.licenseURI)))
            )
        );
    }

    /// @notice The EIP-712 digest an author signs for `r` (domain AUTHORSHIP_DOMAIN).
    function authorshipDigest(Registration calldata r) public pure returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(AUTHORSHIP_TYPEHASH, r.sealId, r.contentRoot, r.keyCommitment, r.shardCount, r.owner));
        return keccak256(abi.encodePacked("\x19\x01", AUTHORSHIP_DOMAIN, structHash));
    }

    /// @notice The EIP-712 domain separator of `registerFor` (name "DataMarket", version "2", chain, address).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _register(Registration calldata r, bytes calldata authorSignature) private returns (uint256 datasetId) {
        _checkRegistration(r);
        if (!SignatureChecker.isValidSignatureNow(r.author, authorshipDigest(r), authorSignature)) {
            revert InvalidAuthorSignature(r.author);
        }
        uint256 taken = datasetByContent[r.author][r.contentRoot];
        if (taken != 0) revert AlreadyRegistered(r.author, r.contentRoot, taken);
        if (r.supersedes != 0) {
            address previousOwner = _ownerOf(r.supersedes);
            if (previousOwner == address(0)) revert UnknownDataset(r.supersedes);
            if (previousOwner != r.owner) revert NotDatasetOwner(r.supersedes, r.owner);
        }

        datasetId = _nextDatasetId++;
        if (datasetId > type(uint40).max) revert InvalidParameter("datasetId");
        datasetByContent[r.author][r.contentRoot] = datasetId;
        _datasets[datasetId] = Dataset({
            manifestHash: r.manifestHash,
            contentRoot: r.contentRoot,
            keyCommitment: r.keyCommitment,
            sealId: r.sealId,
            paymentToken: r.paymentToken,
            price: r.price,
            registeredBlock: uint48(block.number),
            paused: false,
            shardCount: r.shardCount,
            deliveryWindow: r.deliveryWindow,
            challengePeriod: r.challengePeriod,
            // casting to 'uint64' is safe because a non-zero supersedes was checked to exist above
            // forge-lint: disable-next-line(unsafe-typecast)
            supersedes: uint64(r.supersedes),
            splitId: 0,
            splitLocked: false,
            author: r.author,
            keyLink: r.keyLink
        });
        _mint(r.owner, datasetId);
        _emitRegistered(datasetId, r);
    }

    function _checkRegistration(Registration calldata r) private pure {
        if (r.manifestHash == bytes32(0)) revert InvalidParameter("manifestHash");
        if (r.contentRoot == bytes32(0)) revert InvalidParameter("contentRoot");
        if (r.keyCommitment == bytes32(0)) revert InvalidParameter("keyCommitment");
        if (r.sealId == bytes32(0)) revert InvalidParameter("sealId");
        if (r.shardCount == 0) revert InvalidParameter("shardCount");
        if (r.keyLink != bytes32(0) && r.supersedes == 0) revert InvalidParameter("keyLink");
        if (r.author == address(0)) revert InvalidParameter("author");
        if (r.owner == address(0)) revert InvalidParameter("owner");
        if (r.deliveryWindow < MIN_DELIVERY_WINDOW || r.deliveryWindow > MAX_DELIVERY_WINDOW) {
            revert OutOfRange("deliveryWindow", r.deliveryWindow, MIN_DELIVERY_WINDOW, MAX_DELIVERY_WINDOW);
        }
        if (r.challengePeriod < MIN_CHALLENGE_PERIOD || r.challengePeriod > MAX_CHALLENGE_PERIOD) {
            revert OutOfRange("challengePeriod", r.challengePeriod, MIN_CHALLENGE_PERIOD, MAX_CHALLENGE_PERIOD);
        }
        uint256 uris = r.manifestURIs.length;
        if (uris == 0) revert InvalidParameter("manifestURIs");
        if (uris > MAX_MANIFEST_URIS) revert TooLong("manifestURIs", uris, MAX_MANIFEST_URIS);
        for (uint256 i = 0; i < uris; ++i) {
            uint256 length = bytes(r.manifestURIs[i]).length;
            if (length == 0) revert InvalidParameter("manifestURIs");
            if (length > MAX_URI_LENGTH) revert TooLong("manifestURIs", length, MAX_URI_LENGTH);
        }
        uint256 licenseLength = bytes(r.licenseURI).length;
        if (licenseLength > MAX_LICENSE_LENGTH) revert TooLong("licenseURI", licenseLength, MAX_LICENSE_LENGTH);
    }

    function _emitRegistered(uint256 datasetId, Registration calldata r) private {
        emit DatasetRegistered(
            datasetId,
            r.owner,
            r.author,
            r.manifestHash,
            r.contentRoot,
            r.keyCommitment,
            r.sealId,
            r.shardCount,
            r.paymentToken,
            r.price,
            r.deliveryWindow,
            r.challengePeriod,
            r.supersedes,
            r.manifestURIs,
            r.licenseURI,
            msg.sender
        );
    }

    function _useNonce(address owner, uint256 nonce) private {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 bits = nonceBitmap[owner][nonce >> 8];
        if (bits & bit != 0) revert NonceUsed(owner, nonce);
        nonceBitmap[owner][nonce >> 8] = bits | bit;
    }

    // ------------------------------------------------------------------ owner controls

    /// @inheritdoc IDataMarket
    function setPrice(uint256 datasetId, uint96 newPrice) external {
        _requireDatasetOwner(datasetId);
        Dataset storage d = _datasets[datasetId];
        uint96 oldPrice = d.price;
        d.price = newPrice;
        emit PriceChanged(datasetId, msg.sender, oldPrice, newPrice);
    }

    /// @inheritdoc IDataMarket
    function setPaused(uint256 datasetId, bool paused) external {
        _requireDatasetOwner(datasetId);
        _datasets[datasetId].paused = paused;
        emit SalesPaused(datasetId, msg.sender, paused);
    }

    /// @inheritdoc IDataMarket
    function setRevenueSplit(uint256 datasetId, address[] calldata payees, uint16[] calldata sharesBps, bool lock)
        external
        returns (uint32 splitId)
    {
        _requireDatasetOwner(datasetId);
        Dataset storage d = _datasets[datasetId];
        if (d.splitLocked) revert SplitLocked(datasetId);
        uint256 count = payees.length;
        if (count != sharesBps.length || count > MAX_PAYEES || (count == 0 && lock)) revert InvalidSplit(count);
        if (count != 0) {
            splitId = _nextSplitId++;
            Payee[] storage split = _splits[splitId];
            // Ascending payees: no duplicates (and none is the zero address) at one comparison each.
            address previous = address(0);
            uint256 total = 0;
            for (uint256 i = 0; i < count; ++i) {
                address account = payees[i];
                if (account <= previous || sharesBps[i] == 0) revert InvalidPayee(i);
                previous = account;
                total += sharesBps[i];
                split.push(Payee(account, sharesBps[i]));
            }
            if (total != 10_000) revert InvalidSplit(count);
        }
        d.splitId = splitId;
        d.splitLocked = lock;
        emit RevenueSplitSet(datasetId, msg.sender, splitId, payees, sharesBps, lock);
    }

    /// @inheritdoc IDataMarket
    function setRoyalty(uint256 datasetId, address receiver, uint96 royaltyBps) external {
        address author = _datasets[datasetId].author;
        if (author == address(0)) revert UnknownDataset(datasetId);
        if (msg.sender != author) revert NotAuthor(datasetId, msg.sender);
        if (royaltyBps > MAX_ROYALTY_BPS) revert OutOfRange("royaltyBps", royaltyBps, 0, MAX_ROYALTY_BPS);
        if (royaltyBps == 0) _resetTokenRoyalty(datasetId);
        else _setTokenRoyalty(datasetId, receiver, royaltyBps);
        emit RoyaltySet(datasetId, receiver, royaltyBps);
    }

    /// @inheritdoc IDataMarket
    function setKeyAgent(address agent, bool allowed) external {
        isKeyAgent[msg.sender][agent] = allowed;
        emit KeyAgentSet(msg.sender, agent, allowed);
    }

    /// @dev A transfer pauses sales: purchases already made stay with their seller, and nobody buys under
    /// terms the new owner did not set (it resumes with `setPaused(id, false)`).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && from != to) {
            _datasets[tokenId].paused = true;
            emit SalesPaused(tokenId, to, true);
        }
    }

    // ------------------------------------------------------------------ purchases

    /// @inheritdoc IDataMarket
    function purchase(uint256 datasetId, bytes32 buyerKeyX, bytes32 buyerKeyY, uint96 maxPrice)
        external
        payable
        nonReentrant
        returns (uint256 purchaseId)
    {
        (uint256 id, address token, uint256 total) =
            _purchase(datasetId, buyerKeyX, buyerKeyY, maxPrice, address(0), 0, msg.value);
        if (token != NATIVE && total != 0) _pullExactly(token, msg.sender, total);
        return id;
    }

    /// @inheritdoc IDataMarket
    function purchaseWith(
        uint256 datasetId,
        bytes32 buyerKeyX,
        bytes32 buyerKeyY,
        uint96 maxPrice,
        address referrer,
        uint16 referrerBps,
        Permit calldata permit
    ) external payable nonReentrant returns (uint256 purchaseId) {
        if (referrerBps > MAX_REFERRER_BPS || (referrer == address(0)) != (referrerBps == 0)) {
            revert InvalidReferrer(referrer, referrerBps);
        }
        address token;
        uint256 total;
        (purchaseId, token, total) =
            _purchase(datasetId, buyerKeyX, buyerKeyY, maxPrice, referrer, referrerBps, msg.value);
        if (permit.deadline != 0) {
            if (token == NATIVE) revert PermitForNativeListing(datasetId);
            // A permit anyone saw in the mempool can be sent first: its failure here must not stop the purchase,
            // the allowance it set (or not) decides in the transfer below.
            try IERC20Permit(token).permit(
                msg.sender, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s
            ) {} catch {}
        }
        if (token != NATIVE && total != 0) _pullExactly(token, msg.sender, total);
    }

    /// @dev Checks and records a purchase and escrows its price and fee; returns what the caller must then pull
    /// from the buyer (token, amount) after any permit: every external call comes after these effects.
    function _purchase(
        uint256 datasetId,
        bytes32 buyerKeyX,
        bytes32 buyerKeyY,
        uint96 maxPrice,
        address referrer,
        uint16 referrerBps,
        uint256 paid
    ) private returns (uint256 purchaseId, address token, uint256 total) {
        Dataset storage d = _datasets[datasetId];
        if (d.registeredBlock == 0) revert UnknownDataset(datasetId);
        if (d.paused) revert SalesArePaused(datasetId);
        if (!Secp256k1.isOnCurve(uint256(buyerKeyX), uint256(buyerKeyY))) revert InvalidBuyerKey();
        uint96 price = d.price;
        total = uint256(price) + _referrerFee(price, referrerBps);
        if (total > maxPrice) revert PriceAboveMax(datasetId, price, maxPrice);
        token = d.paymentToken;
        uint256 excess = 0; // unless the buyer sent more than the price
        if (token == NATIVE) {
            if (paid < total) revert WrongPayment(total, paid);
            excess = paid - total;
        } else if (paid != 0) {
            revert WrongPayment(0, paid);
        }

        address seller = _ownerOf(datasetId);
        uint40 deadline = uint40(block.timestamp) + d.deliveryWindow;
        uint32 splitId = d.splitId;
        bool hasTerms = splitId != 0 || referrer != address(0);
        purchaseId = _nextPurchaseId++;
        _purchases[purchaseId] = Purchase({
            seller: seller,
            deadline: deadline,
            status: Status.Pending,
            // casting to 'uint40' is safe because registration caps dataset ids at type(uint40).max
            // forge-lint: disable-next-line(unsafe-typecast)
            datasetId: uint40(datasetId),
            hasTerms: hasTerms,
            buyer: msg.sender,
            amount: price,
            binding: keccak256(abi.encodePacked(buyerKeyX, buyerKeyY))
        });
        if (hasTerms) _terms[purchaseId] = PurchaseTerms(splitId, referrer, referrerBps);
        escrowed[token] += total;
        if (excess != 0) withdrawable[msg.sender][NATIVE] += excess;
        emit Purchased(purchaseId, datasetId, msg.sender, seller, token, price, deadline, buyerKeyX, buyerKeyY);
    }

    /// @inheritdoc IDataMarket
    function deliverKey(uint256 purchaseId, bytes32 buyerKeyHash, Delivery calldata delivery) external {
        Purchase storage p = _purchaseWithStatus(purchaseId, Status.Pending);
        address seller = p.seller;
        if (msg.sender != seller && !isKeyAgent[seller][msg.sender]) revert NotSellerOrAgent(purchaseId, msg.sender);
        if (block.timestamp > p.deadline) revert DeliveryWindowClosed(purchaseId, p.deadline);
        if (p.binding != buyerKeyHash) revert WrongBuyerKey(purchaseId);
        if (!KeyDelivery.isValidEphemeral(delivery.ephemeralX, delivery.ephemeralY)) {
            revert InvalidDelivery("ephemeralKey");
        }

        uint256 datasetId = p.datasetId;
        uint40 challengeEnds = uint40(block.timestamp) + _datasets[datasetId].challengePeriod;
        p.status = Status.Delivered;
        p.deadline = challengeEnds;
        p.binding =
            keccak256(abi.encode(buyerKeyHash, delivery.ephemeralX, delivery.ephemeralY, delivery.encryptedKey));
        emit KeyDelivered(
            purchaseId,
            datasetId,
            seller,
            msg.sender,
            delivery.ephemeralX,
            delivery.ephemeralY,
            delivery.encryptedKey,
            challengeEnds
        );
    }

    /// @inheritdoc IDataMarket
    function dispute(uint256 purchaseId, DisputeProof calldata proof) external returns (bool buyerWon) {
        Purchase storage p = _purchaseWithStatus(purchaseId, Status.Delivered);
        if (msg.sender != p.buyer) revert NotBuyer(purchaseId, msg.sender);
        if (block.timestamp > p.deadline) revert ChallengePeriodOver(purchaseId, p.deadline);
        Delivery calldata delivery = proof.delivery;
        bytes32 buyerKeyHash = keccak256(abi.encodePacked(proof.buyerKeyX, proof.buyerKeyY));
        bytes32 delivered =
            keccak256(abi.encode(buyerKeyHash, delivery.ephemeralX, delivery.ephemeralY, delivery.encryptedKey));
        if (delivered != p.binding) revert DeliveryMismatch(purchaseId);

        bytes32 key = KeyDelivery.recoverKey(
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
        Dataset storage d = _datasets[p.datasetId];
        buyerWon = KeyDelivery.commitment(key, d.sealId) != d.keyCommitment;
        // a version re-using earlier shards owes the keys that open them: follow its key links as far as the
        // buyer asks (the buyer pays for the walk, so a long lineage cannot price a dispute out of a block)
        for (uint256 g = proof.generations; !buyerWon && g != 0 && d.keyLink != bytes32(0); --g) {
            key = KeyDelivery.linkedKey(key, d.keyLink);
            d = _datasets[d.supersedes];
            buyerWon = KeyDelivery.commitment(key, d.sealId) != d.keyCommitment;
        }
        emit DisputeResolved(purchaseId, p.datasetId, p.seller, p.buyer, buyerWon);
        if (buyerWon) {
            disputesLost[p.seller] += 1;
            _refund(purchaseId, p);
        } else {
            _settle(purchaseId, p);
        }
    }

    /// @inheritdoc IDataMarket
    function settle(uint256 purchaseId) external {
        Purchase storage p = _purchaseWithStatus(purchaseId, Status.Delivered);
        if (block.timestamp <= p.deadline) revert ChallengePeriodOpen(purchaseId, p.deadline);
        _settle(purchaseId, p);
    }

    /// @inheritdoc IDataMarket
    function settleMany(uint256[] calldata purchaseIds) external returns (uint256 settled) {
        for (uint256 i = 0; i < purchaseIds.length; ++i) {
            Purchase storage p = _purchases[purchaseIds[i]];
            if (p.status == Status.Delivered && block.timestamp > p.deadline) {
                _settle(purchaseIds[i], p);
                ++settled;
            }
        }
    }

    /// @inheritdoc IDataMarket
    function refund(uint256 purchaseId) external {
        Purchase storage p = _purchaseWithStatus(purchaseId, Status.Pending);
        if (msg.sender != p.buyer) revert NotBuyer(purchaseId, msg.sender);
        if (block.timestamp <= p.deadline) revert DeliveryWindowOpen(purchaseId, p.deadline);
        _refund(purchaseId, p);
    }

    // ------------------------------------------------------------------ pull payments

    /// @inheritdoc IDataMarket
    function withdraw(address token) external nonReentrant {
        _withdraw(token, msg.sender);
    }

    /// @inheritdoc IDataMarket
    function withdrawTo(address token, address to) external nonReentrant {
        if (to == address(0)) revert InvalidParameter("to");
        _withdraw(token, to);
    }

    /// @inheritdoc IDataMarket
    function withdrawFees(address token) external nonReentrant {
        uint256 amount = feesOwed[token];
        if (amount == 0) revert NothingToWithdraw(treasury, token);
        feesOwed[token] = 0;
        emit FeesWithdrawn(treasury, token, amount);
        _send(token, treasury, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IDataMarket
    function datasetCount() external view returns (uint256) {
        return _nextDatasetId - 1;
    }

    /// @inheritdoc IDataMarket
    function purchaseCount() external view returns (uint256) {
        return _nextPurchaseId - 1;
    }

    /// @inheritdoc IDataMarket
    function datasetInfo(uint256 datasetId) external view returns (Dataset memory) {
        Dataset memory d = _datasets[datasetId];
        if (d.registeredBlock == 0) revert UnknownDataset(datasetId);
        return d;
    }

    /// @inheritdoc IDataMarket
    function purchaseInfo(uint256 purchaseId) external view returns (Purchase memory) {
        Purchase memory p = _purchases[purchaseId];
        if (p.status == Status.None) revert UnknownPurchase(purchaseId);
        return p;
    }

    /// @inheritdoc IDataMarket
    function purchaseTerms(uint256 purchaseId) external view returns (PurchaseTerms memory) {
        if (_purchases[purchaseId].status == Status.None) revert UnknownPurchase(purchaseId);
        return _terms[purchaseId];
    }

    /// @inheritdoc IDataMarket
    function revenueSplit(uint256 datasetId) external view returns (Payee[] memory payees, bool locked) {
        Dataset storage d = _datasets[datasetId];
        if (d.registeredBlock == 0) revert UnknownDataset(datasetId);
        return (_splits[d.splitId], d.splitLocked);
    }

    /// @notice ERC-165: ERC-721 (with metadata), ERC-2981 and ERC-165.
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC2981) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    /// @inheritdoc IDataMarket
    function verifyShard(uint256 datasetId, bytes32 shardHash, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        Dataset storage d = _datasets[datasetId];
        if (d.registeredBlock == 0) revert UnknownDataset(datasetId);
        return ShardTree.verify(shardHash, index, d.shardCount, proof, d.contentRoot);
    }

    /// @notice RFC 9162 inclusion proof check against any root (ShardTree.verify).
    function verifyInclusion(bytes32 shardHash, uint256 index, uint256 size, bytes32[] calldata proof, bytes32 root)
        external
        pure
        returns (bool)
    {
        return ShardTree.verify(shardHash, index, size, proof, root);
    }

    // ------------------------------------------------------------------ internals

    function _requireDatasetOwner(uint256 datasetId) private view {
        address owner = _ownerOf(datasetId);
        if (owner == address(0)) revert UnknownDataset(datasetId);
        if (owner != msg.sender) revert NotDatasetOwner(datasetId, msg.sender);
    }

    function _purchaseWithStatus(uint256 purchaseId, Status expected) private view returns (Purchase storage p) {
        p = _purchases[purchaseId];
        Status status = p.status;
        if (status == Status.None) revert UnknownPurchase(purchaseId);
        if (status != expected) revert WrongStatus(purchaseId, status);
    }

    /// @dev Move a purchase's escrow to its seller's balance (or its split's payees'), the fee to the treasury's
    /// and a referrer's fee to the referrer's.
    function _settle(uint256 purchaseId, Purchase storage p) private {
        p.status = Status.Settled;
        uint96 amount = p.amount;
        uint96 fee = uint96((uint256(amount) * feeBps) / 10_000);
        uint96 sellerAmount = amount - fee;
        uint256 datasetId = p.datasetId;
        address seller = p.seller;
        address token = _datasets[datasetId].paymentToken;
        PurchaseTerms memory terms = p.hasTerms ? _terms[purchaseId] : PurchaseTerms(0, address(0), 0);
        uint96 referrerFee = _referrerFee(amount, terms.referrerBps);
        escrowed[token] -= uint256(amount) + referrerFee;
        if (fee != 0) feesOwed[token] += fee;
        emit PurchaseSettled(purchaseId, datasetId, seller, token, sellerAmount, fee);
        if (referrerFee != 0) {
            withdrawable[terms.referrer][token] += referrerFee;
            emit ReferrerPaid(purchaseId, datasetId, terms.referrer, token, referrerFee);
        }
        if (terms.splitId == 0) {
            withdrawable[seller][token] += sellerAmount;
        } else {
            _share(purchaseId, datasetId, token, sellerAmount, _splits[terms.splitId]);
        }
    }

    /// @dev Credit each payee its share of `amount`; the rounding remainder goes to the first payee, so the
    /// shares sum to exactly `amount`.
    function _share(uint256 purchaseId, uint256 datasetId, address token, uint96 amount, Payee[] storage split)
        private
    {
        uint256 count = split.length;
        uint96 rest = amount;
        for (uint256 i = count; i > 0; --i) {
            Payee memory payee = split[i - 1];
            uint96 share = i == 1 ? rest : uint96((uint256(amount) * payee.shareBps) / 10_000);
            rest -= share;
            withdrawable[payee.account][token] += share;
            emit RevenueShared(purchaseId, datasetId, payee.account, token, share);
        }
    }

    /// @dev Move a purchase's whole escrow (price and any referrer's fee) back to its buyer's balance.
    function _refund(uint256 purchaseId, Purchase storage p) private {
        p.status = Status.Refunded;
        uint256 amount = p.amount;
        if (p.hasTerms) amount += _referrerFee(p.amount, _terms[purchaseId].referrerBps);
        uint256 datasetId = p.datasetId;
        address buyer = p.buyer;
        address token = _datasets[datasetId].paymentToken;
        escrowed[token] -= amount;
        withdrawable[buyer][token] += amount;
        // casting to 'uint96' is safe because the price and the referrer's fee were at most maxPrice, a uint96
        // forge-lint: disable-next-line(unsafe-typecast)
        emit Refunded(purchaseId, datasetId, buyer, token, uint96(amount));
    }

    function _referrerFee(uint96 price, uint16 referrerBps) private pure returns (uint96) {
        return uint96((uint256(price) * referrerBps) / 10_000);
    }

    function _withdraw(address token, address to) private {
        uint256 amount = withdrawable[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw(msg.sender, token);
        withdrawable[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, to, amount);
        _send(token, to, amount);
    }

    /// @dev Pull exactly `amount` of `token`; fee-on-transfer or lying tokens are refused.
    function _pullExactly(address token, address from, uint256 amount) private {
        uint256 before = IERC20(token).balanceOf(address(this));
        // Both callers (purchase, purchaseWith) pass msg.sender as `from`.
        // slither-disable-next-line arbitrary-send-erc20
        IERC20(token).safeTransferFrom(from, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received != amount) revert TokenTransferMismatch(token, amount, received);
    }

    function _send(address token, address to, uint256 amount) private {
        if (token == NATIVE) {
            // Ether to a contract wallet needs more than 2,300 gas: called last, under nonReentrant, from
            // withdrawals (pull payments) only.
            // slither-disable-next-line low-level-calls
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
