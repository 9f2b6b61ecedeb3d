// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IDataMarket: sealed dataset versions sold with fair exchange, the contract as judge.
/// @notice A dataset version is an ERC-721 token. Its listing binds the manifest hash, the content root
/// (RFC 9162 Merkle root over the sealed shards' SHA-256), the key commitment HMAC-SHA256(key, label || sealId)
/// and the author, whose EIP-712 signature over that content and the owning account is checked at
/// registration. A buyer pays into escrow with a fresh one-time secp256k1 public key; the seller (the
/// token's owner at purchase) or its key agent delivers the data key encrypted to it; the payment stays in
/// escrow for the dataset's challenge period. Within it the buyer can reveal the one-time secret and the
/// contract recomputes the delivered key: a key that does not match the commitment refunds the buyer in full.
/// After the period anyone can settle the purchase to the seller. All payouts are pull payments.
/// @dev The delivery construction and its security argument are in docs/market.md ("Verifiable key delivery").
interface IDataMarket {
    // ------------------------------------------------------------------ types

    /// @notice A purchase's life: Pending (paid, waiting for the key) -> Delivered (key on-chain, challenge
    /// period running) -> Settled (seller paid) or Refunded (no key in time, or a dispute proved it wrong).
    /// A subscription is a purchase too: Subscribed (paid, term running) -> Settled (the term is over and every
    /// claim under it settled) or Refunded (a claim under it was refunded).
    enum Status {
        None,
        Pending,
        Delivered,
        Settled,
        Refunded,
        Subscribed
    }

    /// @notice What an owner registers. `author` signs (EIP-712, domain "deai-data manifest" version "2",
    /// no chain binding) `Authorship(sealId, contentRoot, keyCommitment, shardCount, owner)`; the token is
    /// minted to `owner`, so a copied or front-run registration can only ever benefit the author's choice.
    /// `keyLink` (0: none) declares that this version inherits sealed shards of `supersedes`: the earlier
    /// version's data key is keccak256(KEY_LINK_LABEL, this version's key) XOR keyLink.
    struct Registration {
        bytes32 manifestHash;
        bytes32 contentRoot;
        bytes32 keyCommitment;
        bytes32 sealId;
        uint32 shardCount;
        address author;
        address owner;
        address paymentToken;
        uint96 price;
        uint32 deliveryWindow;
        uint32 challengePeriod;
        uint256 supersedes;
        bytes32 keyLink;
        string[] manifestURIs;
        string licenseURI;
    }

    /// @notice A registered version as stored (URIs and license live in the `DatasetRegistered` event).
    struct Dataset {
        bytes32 manifestHash;
        bytes32 contentRoot;
        bytes32 keyCommitment;
        bytes32 sealId;
        address paymentToken;
        uint96 price;
        uint48 registeredBlock;
        bool paused;
        uint32 shardCount;
        uint32 deliveryWindow;
        uint32 challengePeriod;
        uint64 supersedes;
        /// @notice The revenue split new purchases are paid by (0: the owner at purchase takes it all).
        uint32 splitId;
        /// @notice A locked split can never change again, not even by a later owner of the token.
        bool splitLocked;
        address author;
        /// @notice Non-zero: this version inherits shards of `supersedes`, whose data key is
        /// keccak256(KEY_LINK_LABEL, this key) XOR keyLink (see `dispute`).
        bytes32 keyLink;
    }

    /// @notice One purchase. `deadline` is the delivery deadline while Pending, the end of the challenge
    /// period once Delivered and the end of the term while Subscribed. `binding` is keccak256(buyerKeyX, buyerKeyY) while Pending and
    /// keccak256(abi.encode(buyerKeyHash, ephemeralX, ephemeralY, encryptedKey)) once Delivered.
    /// `hasTerms`: the purchase carries a revenue split or a referrer (see `purchaseTerms`).
    struct Purchase {
        address seller;
        uint40 deadline;
        Status status;
        uint40 datasetId;
        bool hasTerms;
        address buyer;
        uint96 amount;
        bytes32 binding;
    }

    /// @notice What a purchase is paid out by, fixed when it was made: the dataset's revenue split then (0: none)
    /// and the front-end that referred the buyer, paid `referrerBps` of the price on top of it.
    struct PurchaseTerms {
        uint32 splitId;
        address referrer;
        uint16 referrerBps;
    }

    /// @notice What a dataset's owner sells access for a term at: `price` for `term` seconds (term 0: no plan).
    struct SubscriptionPlan {
        uint96 price;
        uint32 term;
    }

    /// @notice What a subscription adds to its purchase record: the block its term began (versions registered
    /// from it on are covered) and how many of its claims are neither settled nor refunded.
    struct Subscription {
        uint48 startBlock;
        uint32 openClaims;
    }

    /// @notice One payee of a revenue split and its share of the seller's proceeds, in basis points.
    struct Payee {
        address account;
        uint16 shareBps;
    }

    /// @notice An EIP-2612 permit the buyer signed for the market (`deadline` 0: none, use the allowance).
    struct Permit {
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice A delivery as `deliverKey` takes it: the seller's ephemeral point R = r*G and the data key
    /// XOR SHA-256(label, chain id, market, purchase id, buyer key hash, R.x, (r*B).x).
    struct Delivery {
        bytes32 ephemeralX;
        bytes32 ephemeralY;
        bytes32 encryptedKey;
    }

    /// @notice A buyer's proof that a delivery is wrong: the buyer's public key B, the delivery, the one-time
    /// secret b (B = b*G) and the shared point S = b*R. The contract checks both products with `ecrecover`.
    /// `generations`: how many earlier versions, along the key links, the delivered key must also open.
    struct DisputeProof {
        bytes32 buyerKeyX;
        bytes32 buyerKeyY;
        Delivery delivery;
        bytes32 buyerSecret;
        bytes32 sharedX;
        bytes32 sharedY;
        uint256 generations;
    }

    // ------------------------------------------------------------------ events

    event DatasetRegistered(
        uint256 indexed datasetId,
        address indexed owner,
        address indexed author,
        bytes32 manifestHash,
        bytes32 contentRoot,
        bytes32 keyCommitment,
        bytes32 sealId,
        uint32 shardCount,
        address paymentToken,
        uint96 price,
        uint32 deliveryWindow,
        uint32 challengePeriod,
        uint256 supersedes,
        string[] manifestURIs,
        string licenseURI,
        address registrar
    );
    event PriceChanged(uint256 indexed datasetId, address indexed owner, uint96 oldPrice, uint96 newPrice);
    /// @notice Also emitted (paused = true, owner = the new owner) when the token changes hands.
    event SalesPaused(uint256 indexed datasetId, address indexed owner, bool paused);
    event KeyAgentSet(address indexed owner, address indexed agent, bool allowed);
    event NonceCancelled(address indexed owner, uint256 nonce);
    event Purchased(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed buyer,
        address seller,
        address paymentToken,
        uint96 amount,
        uint40 deadline,
        bytes32 buyerKeyX,
        bytes32 buyerKeyY
    );
    event KeyDelivered(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed seller,
        address deliveredBy,
        bytes32 ephemeralX,
        bytes32 ephemeralY,
        bytes32 encryptedKey,
        uint40 challengeEnds
    );
    /// @notice The seller was paid: after the challenge period (`Settled` by anyone) or by a failed dispute.
    event PurchaseSettled(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed seller,
        address paymentToken,
        uint96 sellerAmount,
        uint96 fee
    );
    event Refunded(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed buyer,
        address paymentToken,
        uint96 amount
    );
    /// @notice A dispute was decided on-chain: `buyerWon` means the delivered key did not match the commitment.
    event DisputeResolved(
        uint256 indexed purchaseId, uint256 indexed datasetId, address indexed seller, address buyer, bool buyerWon
    );
    /// @notice New purchases of `datasetId` pay their seller's proceeds to `payees` by `sharesBps` (summing
    /// to 10,000); no payees: to the owner. `splitId` names the split in the purchases made under it.
    event RevenueSplitSet(
        uint256 indexed datasetId,
        address indexed owner,
        uint32 splitId,
        address[] payees,
        uint16[] sharesBps,
        bool locked
    );
    /// @notice A payee's share of a settled purchase (one per payee of the purchase's split).
    event RevenueShared(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed payee,
        address paymentToken,
        uint96 amount
    );
    /// @notice The referring front-end's fee of a settled purchase.
    event ReferrerPaid(
        uint256 indexed purchaseId,
        uint256 indexed datasetId,
        address indexed referrer,
        address paymentToken,
        uint96 amount
    );
    /// @notice The author set the ERC-2981 royalty of the dataset's token (0 bps: none).
    event RoyaltySet(uint256 indexed datasetId, address indexed receiver, uint96 royaltyBps);
    event SubscriptionPlanSet(uint256 indexed datasetId, address indexed owner, uint96 price, uint32 term);
    event Subscribed(
        uint256 indexed subscriptionId,
        uint256 indexed datasetId,
        address indexed subscriber,
        address seller,
        address paymentToken,
        uint96 price,
        uint40 expires,
        uint256 renews
    );
    event SubscriptionClaimed(
        uint256 indexed subscriptionId, uint256 indexed purchaseId, uint256 indexed datasetId, address subscriber
    );
    event Withdrawn(address indexed account, address indexed paymentToken, address to, uint256 amount);
    event FeesWithdrawn(address indexed treasury, address indexed paymentToken, uint256 amount);

    // ------------------------------------------------------------------ errors

    error FeeTooHigh(uint16 feeBps, uint16 maxFeeBps);
    error ZeroTreasury();
    error InvalidParameter(string name);
    error TooLong(string name, uint256 length, uint256 max);
    error OutOfRange(string name, uint256 value, uint256 min, uint256 max);
    error AlreadyRegistered(address author, bytes32 contentRoot, uint256 datasetId);
    error UnknownDataset(uint256 datasetId);
    error NotDatasetOwner(uint256 datasetId, address caller);
    error NotOwner(address owner, address caller);
    error InvalidAuthorSignature(address author);
    error SignatureExpired(uint256 deadline);
    error InvalidSignature(address owner);
    error NonceUsed(address owner, uint256 nonce);
    error SalesArePaused(uint256 datasetId);
    error PriceAboveMax(uint256 datasetId, uint96 price, uint96 maxPrice);
    error WrongPayment(uint256 expected, uint256 received);
    error TokenTransferMismatch(address token, uint256 expected, uint256 received);
    error InvalidBuyerKey();
    error UnknownPurchase(uint256 purchaseId);
    error WrongStatus(uint256 purchaseId, Status status);
    error NotSellerOrAgent(uint256 purchaseId, address caller);
    error NotBuyer(uint256 purchaseId, address caller);
    error WrongBuyerKey(uint256 purchaseId);
    error InvalidDelivery(string name);
    error DeliveryWindowClosed(uint256 purchaseId, uint40 deadline);
    error DeliveryWindowOpen(uint256 purchaseId, uint40 deadline);
    error ChallengePeriodOver(uint256 purchaseId, uint40 challengeEnds);
    error ChallengePeriodOpen(uint256 purchaseId, uint40 challengeEnds);
    error DeliveryMismatch(uint256 purchaseId);
    error InvalidProof(string name);
    error NothingToWithdraw(address account, address token);
    error NativeTransferFailed(address to, uint256 amount);
    error SplitLocked(uint256 datasetId);
    /// @notice Payees and shares differ in length, exceed MAX_PAYEES, do not sum to 10,000, or are empty and locked.
    error InvalidSplit(uint256 payees);
    /// @notice Payee `index` is not above the one before it (payees ascend: no duplicates) or has no share.
    error InvalidPayee(uint256 index);
    /// @notice A referrer without a rate, a rate without a referrer, or a rate above MAX_REFERRER_BPS.
    error InvalidReferrer(address referrer, uint16 referrerBps);
    error PermitForNativeListing(uint256 datasetId);
    error NotAuthor(uint256 datasetId, address caller);
    error NoSubscriptionPlan(uint256 datasetId);
    error NotSubscription(uint256 purchaseId);
    error TermOver(uint256 subscriptionId, uint40 expires);
    error TermRunning(uint256 subscriptionId, uint40 expires);
    error NotCovered(uint256 subscriptionId, uint256 datasetId);
    error AlreadyClaimed(uint256 subscriptionId, uint256 datasetId, uint256 purchaseId);
    error ClaimsOpen(uint256 subscriptionId, uint32 openClaims);

    // ------------------------------------------------------------------ registration

    /// @notice Register a version; the caller must be `r.owner`. Mints token `datasetId` to the owner.
    /// @param authorSignature The author's EIP-712 signature over the content and the owner (see Registration).
    function register(Registration calldata r, bytes calldata authorSignature) external returns (uint256 datasetId);

    /// @notice Register on the owner's behalf (a relayer pays gas). `ownerSignature` is the owner's EIP-712
    /// signature (this market's domain) over `Register(registration, nonce, deadline)`; nonces are unordered
    /// (any unused value; `cancelNonce` burns one).
    function registerFor(
        Registration calldata r,
        bytes calldata authorSignature,
        uint256 nonce,
        uint256 deadline,
        bytes calldata ownerSignature
    ) external returns (uint256 datasetId);

    /// @notice Burn one of the caller's registration nonces so a signature using it can never run.
    function cancelNonce(uint256 nonce) external;

    // ------------------------------------------------------------------ owner controls

    function setPrice(uint256 datasetId, uint96 newPrice) external;
    function setPaused(uint256 datasetId, bool paused) external;
    /// @notice Pay new purchases' proceeds (price less the protocol fee) to `payees` by `sharesBps`, which sum to
    /// 10,000 (at most MAX_PAYEES, no duplicates, no zero address); empty arrays: back to the owner. Purchases
    /// already made keep the split they were made under. `lock`: this split can never change again.
    function setRevenueSplit(uint256 datasetId, address[] calldata payees, uint16[] calldata sharesBps, bool lock)
        external
        returns (uint32 splitId);
    /// @notice The dataset's ERC-2981 royalty for resales of its token; only the author may set it (at most
    /// MAX_ROYALTY_BPS; 0 removes it).
    function setRoyalty(uint256 datasetId, address receiver, uint96 royaltyBps) external;
    /// @notice Allow (or stop) `agent` to deliver keys for purchases sold by the caller.
    function setKeyAgent(address agent, bool allowed) external;

    /// @notice Sell access to `datasetId` and every later version of it for a term: `price` (in the dataset's
    /// payment token) buys `term` seconds, between MIN_TERM and MAX_TERM (0 withdraws the plan). Owner only;
    /// subscriptions already sold keep their terms.
    function setSubscriptionPlan(uint256 datasetId, uint96 price, uint32 term) external;

    /// @notice Pay the plan's price into escrow for a term starting now, or where subscription `renews` (an
    /// earlier subscription of the caller's to the same dataset) ends if that is later. During the term the
    /// subscriber `claim`s each version registered from now on that supersedes `datasetId` (directly or through
    /// other versions). The price is settled to the seller after the term once every claim is settled, and
    /// refunded in full if any claim is refunded (no key in time, or a dispute won).
    function subscribe(uint256 datasetId, uint96 maxPrice, uint256 renews)
        external
        payable
        returns (uint256 subscriptionId);

    /// @notice Claim version `datasetId` under a running subscription: a purchase at price 0 with the buyer's
    /// one-time key, delivered, disputed and settled like any other (`Purchased` is emitted for it).
    function claim(uint256 subscriptionId, uint256 datasetId, bytes32 buyerKeyX, bytes32 buyerKeyY)
        external
        returns (uint256 purchaseId);

    // ------------------------------------------------------------------ purchases and delivery

    /// @notice Pay for `datasetId` into escrow with a fresh secp256k1 public key (x, y) the key is encrypted to.
    /// Native currency: send at least the price (up to `maxPrice`); any excess is credited back to the buyer.
    function purchase(uint256 datasetId, bytes32 buyerKeyX, bytes32 buyerKeyY, uint96 maxPrice)
        external
        payable
        returns (uint256 purchaseId);

    /// @notice `purchase` with a front-end's fee and an optional EIP-2612 permit. The buyer pays the price plus
    /// `referrerBps` of it (at most MAX_REFERRER_BPS), all within `maxPrice`; the fee is escrowed with the price,
    /// paid to `referrer` at settlement and refunded with it. A permit that fails (already used, front-run) is
    /// ignored: the allowance then decides.
    function purchaseWith(
        uint256 datasetId,
        bytes32 buyerKeyX,
        bytes32 buyerKeyY,
        uint96 maxPrice,
        address referrer,
        uint16 referrerBps,
        Permit calldata permit
    ) external payable returns (uint256 purchaseId);

    /// @notice Deliver the key for a pending purchase (the seller or its agent, before the deadline).
    /// `buyerKeyHash` = keccak256(buyerKeyX, buyerKeyY) names the key the delivery was made for: a delivery
    /// can never settle a purchase made with another key (replays, reorgs).
    function deliverKey(uint256 purchaseId, bytes32 buyerKeyHash, Delivery calldata delivery) external;

    /// @notice Prove a delivery wrong within the challenge period (the buyer). The contract recomputes the key:
    /// if it does not match the commitment the buyer is refunded in full; if it does, the seller is paid now.
    /// With `proof.generations` = n it also follows up to n key links down `supersedes` (stopping where a
    /// version has none) and refunds the buyer if any linked key misses its version's commitment: a version
    /// that inherits earlier shards must deliver the keys to open them.
    function dispute(uint256 purchaseId, DisputeProof calldata proof) external returns (bool buyerWon);

    /// @notice Pay the seller of a delivered purchase whose challenge period is over (anyone may call).
    function settle(uint256 purchaseId) external;

    /// @notice `settle` for many purchases; ones not yet settleable are skipped. Returns how many settled.
    function settleMany(uint256[] calldata purchaseIds) external returns (uint256 settled);

    /// @notice After the delivery deadline, a buyer whose key never came gets the price back.
    function refund(uint256 purchaseId) external;

    // ------------------------------------------------------------------ pull payments

    function withdraw(address token) external;
    /// @notice Send the caller's whole balance of `token` to `to`.
    function withdrawTo(address token, address to) external;
    function withdrawFees(address token) external;

    // ------------------------------------------------------------------ views

    function datasetInfo(uint256 datasetId) external view returns (Dataset memory);
    function purchaseInfo(uint256 purchaseId) external view returns (Purchase memory);
    function purchaseTerms(uint256 purchaseId) external view returns (PurchaseTerms memory);
    /// @notice The payees and shares new purchases of `datasetId` are paid by (empty: the owner).
    function revenueSplit(uint256 datasetId) external view returns (Payee[] memory payees, bool locked);
    function datasetCount() external view returns (uint256);
    function purchaseCount() external view returns (uint256);
    function verifyShard(uint256 datasetId, bytes32 shardHash, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bool);
}
