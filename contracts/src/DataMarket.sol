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

import {DeliveryJudge} from "./DeliveryJudge.sol";
import {IDataMarket} from "./IDataMarket.sol";
import {RegistrationRules} from "./RegistrationRules.sol";
import {KeyDelivery} from "./libraries/KeyDelivery.sol";
import {Secp256k1} from "./libraries/Secp256k1.sol";
import {ShardTree} from "./libraries/ShardTree.sol";

/// @title DataMarket: dataset versions as ERC-721 tokens, sold through escrow with verifiable key delivery.
/// @notice See IDataMarket for the protocol. Storage layout (slots per record):
/// Dataset: manifestHash | contentRoot | keyCommitment | sealId | paymentToken+price |
/// registeredBlock+paused+shardCount+deliveryWindow+challengePeriod+supersedes+splitId+splitLocked | author.
/// Purchase: seller+deadline+status+datasetId+hasTerms | buyer+amount | binding (three slots, written once at
/// purchase), plus one PurchaseTerms slot only for purchases under a revenue split or with a referrer. A subscription
/// is a Purchase record (status Subscribed, deadline the term's end) plus one Subscription slot.
/// @dev Checks-effects-interactions everywhere; value-moving external calls happen only in `purchase`/`purchaseWith`
/// /`subscribe` (the EIP-2612 permit and the ERC-20 pull, after every effect) and the withdrawals, all `nonReentrant`;
/// every payout (sellers, split payees, referrers, the treasury) is a pull payment. The two helper contracts the
/// constructor deploys (RegistrationRules, DeliveryJudge) are stateless and only called read-only.
contract DataMarket is IDataMarket, ERC721, ERC2981, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ constants and immutables

    /// @notice The payment token value that means the chain's native currency.
    address public constant NATIVE = address(0);
    /// @notice The highest protocol fee a deployment may set: 10 %.
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @notice Caps on the commerce terms: payees of a split, a front-end's fee, an ERC-2981 royalty.
    uint256 public constant MAX_PAYEES = 16;
    uint16 public constant MAX_REFERRER_BPS = 500;
    uint96 public constant MAX_ROYALTY_BPS = 1_000;
    /// @notice Bounds of a subscription's term.
    uint32 public constant MIN_TERM = 1 hours;
    uint32 public constant MAX_TERM = 366 days;

    /// @notice Protocol fee in basis points of each settled purchase, fixed at deploy.
    uint16 public immutable feeBps;
    /// @notice Receives the protocol fees (pulled with `withdrawFees`).
    address public immutable treasury;
    /// @notice Checks registrations and computes the digests their signatures cover.
    RegistrationRules public immutable registrationRules;
    /// @notice Recovers a disputed delivery's key (deployed with the market: its code would not fit in this one).
    DeliveryJudge public immutable deliveryJudge;

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
    /// @notice Used registration nonces, 256 per word (unordered: any unused nonce works once): nonce n is used
    /// when bit n % 256 of word n / 256 is set. `registerFor`'s EIP-712 domain (ERC-5267 `eip712Domain`) is
    /// name "DataMarket", version "2", the chain and this contract.
    mapping(address owner => mapping(uint256 word => uint256 bits)) public nonceBitmap;
    /// @notice Payments held until settlement or refund, per payment token.
    mapping(address token => uint256) public escrowed;
    /// @notice Balances an account can pull with `withdraw`, per payment token.
    mapping(address account => mapping(address token => uint256)) public withdrawable;
    /// @notice Protocol fees owed to the treasury, per payment token.
    mapping(address token => uint256) public feesOwed;
    /// @notice The subscription plan a dataset's owner offers (term 0: none).
    mapping(uint256 datasetId => SubscriptionPlan) public subscriptionPlans;
    /// @notice The term state of each subscription (a purchase record with status Subscribed).
    mapping(uint256 subscriptionId => Subscription) public subscriptions;
    /// @notice The purchase a subscription claimed a version with (0: not claimed).
    mapping(uint256 subscriptionId => mapping(uint256 datasetId => uint256 purchaseId)) public claimOf;
    /// @notice The subscription a purchase was claimed under (0: a purchase of its own).
    mapping(uint256 purchaseId => uint256 subscriptionId) public subscriptionOf;

    constructor(address treasury_, uint16 feeBps_) ERC721("deai-data dataset", "DEAI") EIP712("DataMarket", "2") {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        if (treasury_ == address(0)) revert ZeroTreasury();
        treasury = treasury_;
        feeBps = feeBps_;
        deliveryJudge = new DeliveryJudge();
        registrationRules = new RegistrationRules();
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
        bytes32 structHash = registrationRules.hashRegister(r, nonce, deadline);
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

    function _register(Registration calldata r, bytes calldata authorSignature) private returns (uint256 datasetId) {
        bytes32 authorship = registrationRules.check(r);
        if (!SignatureChecker.isValidSignatureNow(r.author, authorship, authorSignature)) {
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

    /// @inheritdoc IDataMarket
    function setSubscriptionPlan(uint256 datasetId, uint96 price, uint32 term) external {
        _requireDatasetOwner(datasetId);
        if (term != 0 && (term < MIN_TERM || term > MAX_TERM)) revert OutOfRange("term", term, MIN_TERM, MAX_TERM);
        subscriptionPlans[datasetId] = SubscriptionPlan(price, term);
        emit SubscriptionPlanSet(datasetId, msg.sender, price, term);
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
            _purchase(datasetId, buyerKeyX, buyerKeyY, _salePrice(datasetId), maxPrice, address(0), 0, msg.value);
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
        (purchaseId, token, total) = _purchase(
            datasetId, buyerKeyX, buyerKeyY, _salePrice(datasetId), maxPrice, referrer, referrerBps, msg.value
        );
        if (permit.deadline != 0) {
            if (token == NATIVE) revert PermitForNativeListing(datasetId);
            // A permit anyone saw in the mempool can be sent first: its failure here must not stop the purchase,
            // the allowance it set (or not) decides in the transfer below.
            try IERC20Permit(token)
                .permit(msg.sender, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s) {}
                catch {}
        }
        if (token != NATIVE && total != 0) _pullExactly(token, msg.sender, total);
    }

    /// @inheritdoc IDataMarket
    function subscribe(uint256 datasetId, uint96 maxPrice, uint256 renews)
        external
        payable
        nonReentrant
        returns (uint256 subscriptionId)
    {
        Dataset storage d = _datasets[datasetId];
        if (d.paused) revert SalesArePaused(datasetId);
        SubscriptionPlan memory plan = subscriptionPlans[datasetId];
        if (plan.term == 0) revert NoSubscriptionPlan(datasetId);
        if (plan.price > maxPrice) revert PriceAboveMax(datasetId, plan.price, maxPrice);
        uint40 starts = uint40(block.timestamp);
        if (renews != 0) {
            Purchase storage renewed = _purchases[renews];
            if (subscriptions[renews].startBlock == 0 || renewed.buyer != msg.sender || renewed.datasetId != datasetId)
            {
                revert NotSubscription(renews);
            }
            if (renewed.deadline > starts) starts = renewed.deadline;
        }
        address token = d.paymentToken;
        _escrow(token, plan.price, msg.value);
        address seller = _ownerOf(datasetId);
        uint32 splitId = d.splitId;
        uint40 expires = starts + plan.term;
        subscriptionId = _nextPurchaseId++;
        _purchases[subscriptionId] = Purchase({
            seller: seller,
            deadline: expires,
            status: Status.Subscribed,
            // casting to 'uint40' is safe because registration caps dataset ids at type(uint40).max
            // forge-lint: disable-next-line(unsafe-typecast)
            datasetId: uint40(datasetId),
            hasTerms: splitId != 0,
            buyer: msg.sender,
            amount: plan.price,
            binding: bytes32(0)
        });
        if (splitId != 0) _terms[subscriptionId] = PurchaseTerms(splitId, address(0), 0);
        subscriptions[subscriptionId] = Subscription(uint48(block.number), 0);
        emit Subscribed(subscriptionId, datasetId, msg.sender, seller, token, plan.price, expires, renews);
        if (token != NATIVE && plan.price != 0) _pullExactly(token, msg.sender, plan.price);
    }

    /// @inheritdoc IDataMarket
    function claim(uint256 subscriptionId, uint256 datasetId, bytes32 buyerKeyX, bytes32 buyerKeyY)
        external
        returns (uint256 purchaseId)
    {
        Purchase storage s = _purchaseWithStatus(subscriptionId, Status.Subscribed);
        if (msg.sender != s.buyer) revert NotBuyer(subscriptionId, msg.sender);
        if (block.timestamp > s.deadline) revert TermOver(subscriptionId, s.deadline);
        Subscription storage sub = subscriptions[subscriptionId];
        // an unknown version has registeredBlock 0; a covered one was registered in the term and descends from
        // the subscribed version (the claimant pays for the walk down `supersedes`)
        if (_datasets[datasetId].registeredBlock < sub.startBlock) revert NotCovered(subscriptionId, datasetId);
        uint256 version = _datasets[datasetId].supersedes;
        while (version != s.datasetId) {
            if (version == 0) revert NotCovered(subscriptionId, datasetId);
            version = _datasets[version].supersedes;
        }
        uint256 claimed = claimOf[subscriptionId][datasetId];
        if (claimed != 0) revert AlreadyClaimed(subscriptionId, datasetId, claimed);
        (purchaseId,,) = _purchase(datasetId, buyerKeyX, buyerKeyY, 0, 0, address(0), 0, 0);
        claimOf[subscriptionId][datasetId] = purchaseId;
        subscriptionOf[purchaseId] = subscriptionId;
        sub.openClaims += 1;
        emit SubscriptionClaimed(subscriptionId, purchaseId, datasetId, msg.sender);
    }

    /// @dev The price of a purchase now: sales must not be paused.
    function _salePrice(uint256 datasetId) private view returns (uint96) {
        Dataset storage d = _datasets[datasetId];
        if (d.paused) revert SalesArePaused(datasetId);
        return d.price;
    }

    /// @dev Escrow `total` of `token`; native currency paid beyond it becomes the payer's balance.
    function _escrow(address token, uint256 total, uint256 paid) private {
        if (token == NATIVE) {
            if (paid < total) revert WrongPayment(total, paid);
            if (paid != total) withdrawable[msg.sender][NATIVE] += paid - total;
        } else if (paid != 0) {
            revert WrongPayment(0, paid);
        }
        escrowed[token] += total;
    }

    /// @dev Checks and records a purchase at `price` and escrows it and the referrer's fee; returns what the caller
    /// must then pull from the buyer (token, amount) after any permit: every external call comes after these effects.
    function _purchase(
        uint256 datasetId,
        bytes32 buyerKeyX,
        bytes32 buyerKeyY,
        uint96 price,
        uint96 maxPrice,
        address referrer,
        uint16 referrerBps,
        uint256 paid
    ) private returns (uint256 purchaseId, address token, uint256 total) {
        Dataset storage d = _datasets[datasetId];
        if (d.registeredBlock == 0) revert UnknownDataset(datasetId);
        if (!Secp256k1.isOnCurve(uint256(buyerKeyX), uint256(buyerKeyY))) revert InvalidBuyerKey();
        total = uint256(price) + _referrerFee(price, referrerBps);
        if (total > maxPrice) revert PriceAboveMax(datasetId, price, maxPrice);
        token = d.paymentToken;
        _escrow(token, total, paid);

        address seller = _ownerOf(datasetId);
        uint40 deadline = uint40(block.timestamp) + d.deliveryWindow;
        uint32 splitId = d.splitId;
        bool hasTerms = price != 0 && (splitId != 0 || referrer != address(0));
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
        p.binding = keccak256(abi.encode(buyerKeyHash, delivery.ephemeralX, delivery.ephemeralY, delivery.encryptedKey));
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

        bytes32 key = deliveryJudge.recoverKey(purchaseId, proof);
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
        Purchase storage p = _purchases[purchaseId];
        if (p.status == Status.Subscribed) {
            if (block.timestamp <= p.deadline) revert TermRunning(purchaseId, p.deadline);
            uint32 open = subscriptions[purchaseId].openClaims;
            if (open != 0) revert ClaimsOpen(purchaseId, open);
        } else {
            p = _purchaseWithStatus(purchaseId, Status.Delivered);
            if (block.timestamp <= p.deadline) revert ChallengePeriodOpen(purchaseId, p.deadline);
        }
        _settle(purchaseId, p);
    }

    /// @inheritdoc IDataMarket
    function settleMany(uint256[] calldata purchaseIds) external returns (uint256 settled) {
        for (uint256 i = 0; i < purchaseIds.length; ++i) {
            uint256 purchaseId = purchaseIds[i];
            Purchase storage p = _purchases[purchaseId];
            Status status = p.status;
            bool due = status == Status.Delivered
                || (status == Status.Subscribed && subscriptions[purchaseId].openClaims == 0);
            if (due && block.timestamp > p.deadline) {
                _settle(purchaseId, p);
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
        if (amount == 0) _closeClaim(purchaseId, false);
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
        if (amount == 0) _closeClaim(purchaseId, true);
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

    /// @dev A free purchase may be a subscription's claim: count it closed, and refund the whole subscription
    /// (once) when the claim was refunded.
    function _closeClaim(uint256 purchaseId, bool refunded) private {
        uint256 subscriptionId = subscriptionOf[purchaseId];
        if (subscriptionId == 0) return;
        subscriptions[subscriptionId].openClaims -= 1;
        Purchase storage s = _purchases[subscriptionId];
        if (refunded && s.status == Status.Subscribed) _refund(subscriptionId, s);
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
