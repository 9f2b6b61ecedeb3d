// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test, Vm} from "./helpers/Test.sol";
import {
    TestToken, FeeOnTransferToken, ReentrantToken, ReentrantReceiver, RefusingReceiver, G_X, G_Y
} from "./helpers/Tokens.sol";
import {DataMarket} from "../src/DataMarket.sol";
import {IDataMarket} from "../src/IDataMarket.sol";
import {KeyDelivery} from "../src/libraries/KeyDelivery.sol";
import {MerkleBuilder} from "./helpers/MerkleBuilder.sol";
import {DeliveryBuilder} from "./helpers/DeliveryBuilder.sol";

/// @notice Shared fixture: a market with a 2.5 % fee, an owner (also the author), a buyer with a one-time
/// key, an agent and a stranger; helpers that build honest and dishonest deliveries with real curve points.
abstract contract MarketFixture is Test {
    DataMarket internal market;
    TestToken internal usd;

    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant STRANGER_KEY = 0x5757;
    address internal owner;
    address internal stranger;
    address internal constant BUYER = address(0xB0B);
    address internal constant AGENT = address(0xA6E);
    address internal constant TREASURY = address(0x7EA5);
    address internal constant RELAYER = address(0xE1A7);
    uint16 internal constant FEE_BPS = 250;
    uint96 internal constant PRICE = 1 ether;
    uint32 internal constant WINDOW = 1 days;
    uint32 internal constant CHALLENGE = 2 days;
    /// @dev The buyer's one-time secret b (the public key is b*G) and the seller's ephemeral secret r.
    uint256 internal constant BUYER_SECRET = 0xB0B5EC12E7;
    uint256 internal constant EPHEMERAL = 0xE9E3E2A1;
    bytes32 internal constant DATA_KEY = keccak256("the data key of every test dataset");

    /// @dev Start time. Tests compute times from constants: under via-IR the optimizer may re-read
    /// `block.timestamp` after a `vm.warp`, so a local derived from it is not stable across warps.
    uint256 internal constant T0 = 1_700_000_000;

    uint256 private _rootNonce;

    function setUp() public virtual {
        owner = vm.addr(OWNER_KEY);
        stranger = vm.addr(STRANGER_KEY);
        market = new DataMarket(TREASURY, FEE_BPS);
        usd = new TestToken();
        vm.deal(BUYER, 100 ether);
        vm.deal(stranger, 100 ether);
        vm.warp(T0);
    }

    function _registration(address token, uint96 price) internal returns (IDataMarket.Registration memory r) {
        string[] memory uris = new string[](2);
        uris[0] = "file:///store/objects/sha256/ab/manifest";
        uris[1] = "ar://manifest-mirror";
        bytes32 sealId = keccak256(abi.encode("seal", ++_rootNonce));
        r = IDataMarket.Registration({
            manifestHash: keccak256(abi.encode("manifest", _rootNonce)),
            contentRoot: keccak256(abi.encode("root", _rootNonce)),
            keyCommitment: KeyDelivery.commitment(DATA_KEY, sealId),
            sealId: sealId,
            shardCount: 3,
            author: owner,
            owner: owner,
            paymentToken: token,
            price: price,
            deliveryWindow: WINDOW,
            challengePeriod: CHALLENGE,
            supersedes: 0,
            keyLink: bytes32(0),
            manifestURIs: uris,
            licenseURI: "CC-BY-4.0"
        });
    }

    function _authorSign(IDataMarket.Registration memory r, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, market.registrationRules().authorshipDigest(r));
        return abi.encodePacked(rr, s, v);
    }

    function _signRegistration(IDataMarket.Registration memory r, uint256 key, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        bytes32 structHash = market.registrationRules().hashRegister(r, nonce, deadline);
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("DataMarket"),
                keccak256("2"),
                block.chainid,
                address(market)
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domain, structHash));
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(rr, s, v);
    }

    function _register(address token, uint96 price) internal returns (uint256 id) {
        IDataMarket.Registration memory r = _registration(token, price);
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        id = market.register(r, sig);
    }

    function _buyerKey(uint256 secret) internal returns (bytes32 x, bytes32 y) {
        Vm.Wallet memory w = vm.createWallet(secret);
        return (bytes32(w.publicKeyX), bytes32(w.publicKeyY));
    }

    function _buyNative(uint256 id) internal returns (uint256 pid) {
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        pid = market.purchase{value: PRICE}(id, x, y, PRICE);
    }

    /// @dev The delivery of `key` for purchase `pid` to the buyer key b*G with ephemeral secret r, built from
    /// first principles by DeliveryBuilder (forge's own secp256k1 points), and the buyer's dispute proof.
    function _deliver(uint256 pid, uint256 b, uint256 r, bytes32 key)
        internal
        returns (bytes32 keyHash, IDataMarket.Delivery memory d, IDataMarket.DisputeProof memory proof)
    {
        (keyHash, proof) = DeliveryBuilder.build(address(market), pid, b, r, key);
        d = proof.delivery;
    }

    function _deliverAs(address who, uint256 pid, bytes32 key) internal returns (IDataMarket.DisputeProof memory p) {
        (bytes32 keyHash, IDataMarket.Delivery memory d, IDataMarket.DisputeProof memory proof) =
            _deliver(pid, BUYER_SECRET, EPHEMERAL, key);
        vm.prank(who);
        market.deliverKey(pid, keyHash, d);
        return proof;
    }

    function _fee(uint256 amount) internal pure returns (uint256) {
        return (amount * FEE_BPS) / 10_000;
    }

    function _status(uint256 pid) internal view returns (IDataMarket.Status) {
        return market.purchaseInfo(pid).status;
    }
}

contract LibraryVectorTest is MarketFixture {
    /// The on-chain key commitment equals Python's hmac.new(key, label + sealId, sha256), and the key link
    /// Python's keys.linked_key (tests/test_lineage.py), for fixed vectors.
    function test_libraryMatchesPythonVectors() public pure {
        bytes32 key = 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f;
        bytes32 other = 0x202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f;
        assertEq(
            KeyDelivery.commitment(key, other),
            0x06969c329ee10471f4c82405df6297411c780235d6a46507d6fb1b0afd00e596,
            "HMAC-SHA256 vector"
        );
        assertEq(
            KeyDelivery.linkedKey(key, other),
            0xc89fcdc043c6e4d3a190477f51dbe160a2863718c2d9897ca73f1531f00b5d26,
            "keccak256(label, key) XOR link"
        );
    }
}

contract RegistrationTest is MarketFixture {
    function test_constructorRejectsHighFeeAndZeroTreasury() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.FeeTooHigh.selector, uint16(1001), uint16(1000)));
        new DataMarket(TREASURY, 1001);
        vm.expectRevert(IDataMarket.ZeroTreasury.selector);
        new DataMarket(address(0), 0);
    }

    function test_registerMintsToTheSignedOwnerAndRecords() public {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.expectEmit(true, true, true, true, address(market));
        emit IDataMarket.DatasetRegistered(
            1, owner, owner, r.manifestHash, r.contentRoot, r.keyCommitment, r.sealId, 3, address(0), PRICE, WINDOW,
            CHALLENGE, 0, r.manifestURIs, r.licenseURI, owner
        );
        vm.prank(owner);
        uint256 id = market.register(r, sig);
        assertEq(id, 1, "first id");
        assertEq(market.ownerOf(id), owner, "token owner");
        IDataMarket.Dataset memory d = market.datasetInfo(id);
        assertEq(d.manifestHash, r.manifestHash, "manifest hash");
        assertEq(d.contentRoot, r.contentRoot, "content root");
        assertEq(d.keyCommitment, r.keyCommitment, "key commitment");
        assertEq(d.sealId, r.sealId, "seal id");
        assertEq(d.author, owner, "author");
        assertEq(d.price, PRICE, "price");
        assertEq(d.deliveryWindow, WINDOW, "window");
        assertEq(d.challengePeriod, CHALLENGE, "challenge period");
        assertEq(d.registeredBlock, block.number, "registered block");
        assertEq(market.datasetByContent(owner, r.contentRoot), id, "content index");
    }

    function test_registerRejectsBadFieldsAndOversizedData() public {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        bytes32 saved = r.sealId;
        r.sealId = 0;
        _expectInvalid(r, "sealId");
        r.sealId = saved;
        r.shardCount = 0;
        _expectInvalid(r, "shardCount");
        r.shardCount = 1;
        string[] memory uris = r.manifestURIs;
        r.manifestURIs = new string[](0);
        _expectInvalid(r, "manifestURIs");
        r.manifestURIs = new string[](9);
        for (uint256 i = 0; i < 9; ++i) {
            r.manifestURIs[i] = "ar://x";
        }
        _expectRevert(r, abi.encodeWithSelector(IDataMarket.TooLong.selector, "manifestURIs", 9, 8));
        r.manifestURIs = new string[](1);
        r.manifestURIs[0] = string(new bytes(513));
        _expectRevert(r, abi.encodeWithSelector(IDataMarket.TooLong.selector, "manifestURIs", 513, 512));
        r.manifestURIs = uris;
        r.licenseURI = string(new bytes(257));
        _expectRevert(r, abi.encodeWithSelector(IDataMarket.TooLong.selector, "licenseURI", 257, 256));
        r.licenseURI = "MIT";
        r.deliveryWindow = 10 minutes - 1;
        _expectRevert(
            r,
            abi.encodeWithSelector(IDataMarket.OutOfRange.selector, "deliveryWindow", 10 minutes - 1, 10 minutes, 90 days)
        );
        r.deliveryWindow = WINDOW;
        r.challengePeriod = 30 days + 1;
        _expectRevert(
            r,
            abi.encodeWithSelector(IDataMarket.OutOfRange.selector, "challengePeriod", 30 days + 1, 10 minutes, 30 days)
        );
    }

    function _expectInvalid(IDataMarket.Registration memory r, string memory field) private {
        _expectRevert(r, abi.encodeWithSelector(IDataMarket.InvalidParameter.selector, field));
    }

    function _expectRevert(IDataMarket.Registration memory r, bytes memory err) private {
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.expectRevert(err);
        vm.prank(owner);
        market.register(r, sig);
    }

    /// The attack: copy a victim's public listing data (manifest hash, commitment, seal id) into a listing of
    /// one's own. Without the author's signature for the attacker as owner, the contract refuses it.
    function test_copiedListingNeedsTheAuthorsSignature() public {
        IDataMarket.Registration memory r = _registration(address(0), 0);
        bytes memory victimSig = _authorSign(r, OWNER_KEY);
        r.owner = stranger; // the copier wants the token
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidAuthorSignature.selector, owner));
        vm.prank(stranger);
        market.register(r, victimSig);
        // Signing as the author oneself records the copier as author: readers and agents see the mismatch.
        r.author = stranger;
        bytes memory copierSig = _authorSign(r, STRANGER_KEY);
        vm.prank(stranger);
        uint256 copy = market.register(r, copierSig);
        assertEq(market.datasetInfo(copy).author, stranger, "the copy names its real author");
        // ...and the victim can still register its own content: no squatting.
        r = _registration(address(0), PRICE);
        r.contentRoot = market.datasetInfo(copy).contentRoot;
        r.sealId = market.datasetInfo(copy).sealId;
        r.keyCommitment = market.datasetInfo(copy).keyCommitment;
        bytes memory ownSig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        uint256 own = market.register(r, ownSig);
        assertEq(market.ownerOf(own), owner, "victim registered its content after the copy");
    }

    /// The attack: copy a registration from the mempool and send it first. Only the owner may send `register`,
    /// and a copied `registerFor` mints to the same owner with the same terms: the front-runner gains nothing.
    function test_frontRunningGainsNothing() public {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotOwner.selector, owner, stranger));
        vm.prank(stranger);
        market.register(r, sig);

        uint256 deadline = T0 + 1 hours;
        bytes memory ownerSig = _signRegistration(r, OWNER_KEY, 42, deadline);
        vm.prank(stranger); // the front-runner relays the owner's own registration
        uint256 id = market.registerFor(r, sig, 42, deadline, ownerSig);
        assertEq(market.ownerOf(id), owner, "the owner, not the front-runner, owns it");
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NonceUsed.selector, owner, 42));
        vm.prank(RELAYER);
        market.registerFor(r, sig, 42, deadline, ownerSig);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.AlreadyRegistered.selector, owner, r.contentRoot, id));
        vm.prank(owner);
        market.register(r, sig);
    }

    function test_registerForChecksTermsDeadlineAndUnorderedNonces() public {
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        bytes memory sig = _authorSign(r, OWNER_KEY);
        uint256 deadline = T0 + 1 hours;
        // Nonces are unordered: 7 then 3 both work once; a cancelled nonce never works.
        bytes memory seven = _signRegistration(r, OWNER_KEY, 7, deadline);
        vm.prank(owner);
        market.cancelNonce(3);
        assertTrue(market.nonceBitmap(owner, 0) & (1 << 3) != 0, "cancelled nonce counts as used");
        IDataMarket.Registration memory other = _registration(address(0), PRICE);
        bytes memory three = _signRegistration(other, OWNER_KEY, 3, deadline);
        bytes memory otherSig = _authorSign(other, OWNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NonceUsed.selector, owner, 3));
        market.registerFor(other, otherSig, 3, deadline, three);

        // A signature over different terms (price changed by the relayer) does not verify.
        r.price = 0;
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidSignature.selector, owner));
        market.registerFor(r, sig, 7, deadline, seven);
        r.price = PRICE;
        bytes memory foreign = _signRegistration(r, 0xBAD, 7, deadline);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidSignature.selector, owner));
        market.registerFor(r, sig, 7, deadline, foreign);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SignatureExpired.selector, deadline));
        market.registerFor(r, sig, 7, deadline, seven);
        vm.warp(deadline);
        vm.prank(RELAYER);
        uint256 id = market.registerFor(r, sig, 7, deadline, seven);
        assertEq(market.ownerOf(id), owner, "owner, not relayer, gets the token");
    }

    function test_supersedesMustBeTheOwners() public {
        uint256 first = _register(address(0), PRICE);
        IDataMarket.Registration memory r = _registration(address(0), 2 ether);
        r.supersedes = first;
        bytes memory secondSig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        uint256 second = market.register(r, secondSig);
        assertEq(market.datasetInfo(second).supersedes, first, "link recorded");

        r = _registration(address(0), 2 ether);
        r.supersedes = first;
        r.author = stranger;
        r.owner = stranger;
        bytes memory sig = _authorSign(r, STRANGER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotDatasetOwner.selector, first, stranger));
        vm.prank(stranger);
        market.register(r, sig);
        r.supersedes = 99;
        sig = _authorSign(r, STRANGER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownDataset.selector, 99));
        vm.prank(stranger);
        market.register(r, sig);
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

        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.contentRoot = root;
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        uint256 id = market.register(r, sig);

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
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownDataset.selector, 42));
        market.verifyShard(42, h0, 0, proof0);
    }

    function test_ownerControls() public {
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(owner);
        market.setPrice(id, 3 ether);
        assertEq(market.datasetInfo(id).price, 3 ether, "new price");
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotDatasetOwner.selector, id, stranger));
        vm.prank(stranger);
        market.setPrice(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownDataset.selector, 77));
        market.setPrice(77, 0);

        vm.prank(owner);
        market.setPaused(id, true);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SalesArePaused.selector, id));
        vm.prank(BUYER);
        market.purchase{value: 3 ether}(id, x, y, 3 ether);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotDatasetOwner.selector, id, stranger));
        vm.prank(stranger);
        market.setPaused(id, false);
        vm.prank(owner);
        market.setPaused(id, false);
        vm.prank(BUYER);
        market.purchase{value: 3 ether}(id, x, y, 3 ether);
    }

    function test_datasetInfoOfUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownDataset.selector, 5));
        market.datasetInfo(5);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownPurchase.selector, 5));
        market.purchaseInfo(5);
    }
}

contract PurchaseTest is MarketFixture {
    function test_purchaseEscrowsNativeAndRecordsSellerAndKey() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        IDataMarket.Purchase memory p = market.purchaseInfo(pid);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        assertEq(p.buyer, BUYER, "buyer");
        assertEq(p.seller, owner, "seller");
        assertEq(p.amount, PRICE, "amount");
        assertEq(p.deadline, T0 + WINDOW, "deadline");
        assertEq(p.binding, keccak256(abi.encodePacked(x, y)), "bound to the buyer's key");
        assertTrue(p.status == IDataMarket.Status.Pending, "pending");
        assertEq(market.escrowed(address(0)), PRICE, "escrowed");
        assertEq(address(market).balance, PRICE, "market balance");
    }

    function test_purchaseReverts() public {
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.startPrank(BUYER);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongPayment.selector, PRICE, PRICE - 1));
        market.purchase{value: PRICE - 1}(id, x, y, PRICE);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.PriceAboveMax.selector, id, PRICE, PRICE - 1));
        market.purchase{value: PRICE}(id, x, y, PRICE - 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownDataset.selector, 9));
        market.purchase{value: PRICE}(9, x, y, PRICE);
        vm.stopPrank();

        uint256 tokenId = _register(address(usd), 100e6);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongPayment.selector, 0, 1));
        vm.prank(BUYER);
        market.purchase{value: 1}(tokenId, x, y, 100e6);
    }

    /// A key that is not a curve point could never be checked in a dispute: refused at purchase.
    function test_invalidBuyerKeyRefused() public {
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        bytes32[2][4] memory bad = [
            [bytes32(0), bytes32(0)],
            [x, bytes32(uint256(y) ^ 1)],
            [bytes32(type(uint256).max), y],
            [x, bytes32(type(uint256).max)]
        ];
        for (uint256 i = 0; i < bad.length; ++i) {
            vm.expectRevert(IDataMarket.InvalidBuyerKey.selector);
            vm.prank(BUYER);
            market.purchase{value: PRICE}(id, bad[i][0], bad[i][1], PRICE);
        }
    }

    /// A price cut while a purchase is in flight: the purchase goes through at the new price and the difference
    /// is credited to the buyer.
    function test_priceCutInFlightCreditsTheDifference() public {
        uint256 id = _register(address(0), PRICE);
        vm.prank(owner);
        market.setPrice(id, PRICE / 4);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        uint256 pid = market.purchase{value: PRICE}(id, x, y, PRICE);
        assertEq(market.purchaseInfo(pid).amount, PRICE / 4, "paid the new price");
        assertEq(market.escrowed(address(0)), PRICE / 4, "escrow holds the new price");
        assertEq(market.withdrawable(BUYER, address(0)), PRICE - PRICE / 4, "difference credited");
    }

    function test_purchaseWithErc20SettledAfterChallenge() public {
        uint256 id = _register(address(usd), 100e6);
        usd.mint(BUYER, 1_000e6);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.startPrank(BUYER);
        usd.approve(address(market), type(uint256).max);
        uint256 pid = market.purchase(id, x, y, 100e6);
        vm.stopPrank();
        assertEq(usd.balanceOf(address(market)), 100e6, "tokens escrowed");
        _deliverAs(owner, pid, DATA_KEY);
        vm.warp(T0 + CHALLENGE + 1);
        market.settle(pid);
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
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.startPrank(BUYER);
        fot.approve(address(market), type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.TokenTransferMismatch.selector, address(fot), 100e6, 99e6));
        market.purchase(id, x, y, 100e6);
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
        market.purchase(id, G_X, G_Y, 100);
        assertTrue(!bad.reentered(), "re-entry blocked");
        assertEq(bytes4(bad.lastError()), bytes4(keccak256("ReentrancyGuardReentrantCall()")), "guard error");
        assertEq(market.purchaseCount(), 1, "one purchase only");
        assertEq(bad.balanceOf(address(market)), 100, "exactly one price escrowed");
    }
}

contract DeliveryTest is MarketFixture {
    function test_deliveryHoldsEscrowUntilTheChallengePeriodEnds() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        (bytes32 keyHash, IDataMarket.Delivery memory d,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.expectEmit(true, true, true, true, address(market));
        emit IDataMarket.KeyDelivered(
            pid, id, owner, owner, d.ephemeralX, d.ephemeralY, d.encryptedKey, uint40(T0 + CHALLENGE)
        );
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
        assertTrue(_status(pid) == IDataMarket.Status.Delivered, "delivered");
        assertEq(market.escrowed(address(0)), PRICE, "still in escrow");
        assertEq(market.withdrawable(owner, address(0)), 0, "nothing to the owner yet");

        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ChallengePeriodOpen.selector, pid, uint40(T0 + CHALLENGE)));
        market.settle(pid);
        vm.warp(T0 + CHALLENGE + 1);
        uint96 fee = uint96(_fee(PRICE));
        vm.expectEmit(true, true, true, true, address(market));
        emit IDataMarket.PurchaseSettled(pid, id, owner, address(0), PRICE - fee, fee);
        vm.prank(stranger); // anyone may settle; the seller is paid
        market.settle(pid);
        assertEq(market.escrowed(address(0)), 0, "escrow released");
        assertEq(market.withdrawable(owner, address(0)), PRICE - fee, "owner credit");
        assertEq(market.feesOwed(address(0)), fee, "fee owed");
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, pid, IDataMarket.Status.Settled));
        market.settle(pid);

        uint256 before = owner.balance;
        vm.prank(owner);
        market.withdraw(address(0));
        assertEq(owner.balance - before, PRICE - fee, "owner withdrew");
        market.withdrawFees(address(0));
        assertEq(TREASURY.balance, fee, "treasury");
    }

    function test_agentOfTheSellerDelivers_othersCannot() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        (bytes32 keyHash, IDataMarket.Delivery memory d,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        address[3] memory refused = [AGENT, stranger, BUYER];
        for (uint256 i = 0; i < refused.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotSellerOrAgent.selector, pid, refused[i]));
            vm.prank(refused[i]);
            market.deliverKey(pid, keyHash, d);
        }
        vm.prank(owner);
        market.setKeyAgent(AGENT, true);
        vm.prank(AGENT);
        market.deliverKey(pid, keyHash, d);
        vm.warp(T0 + CHALLENGE + 1);
        market.settle(pid);
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "seller, not agent, credited");
        assertEq(market.withdrawable(AGENT, address(0)), 0, "agent gets nothing");
    }

    /// The reorg attack: a delivery made for one buyer's key lands on a purchase id that, after a reorg, belongs
    /// to another buyer. The delivery names the key it answers, so it cannot settle the other purchase.
    function test_deliveryForAnotherBuyersKeyRefused() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        (bytes32 aliceHash, IDataMarket.Delivery memory forAlice,) = _deliver(pid, 0xA11CE5EC, EPHEMERAL, DATA_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongBuyerKey.selector, pid));
        vm.prank(owner);
        market.deliverKey(pid, aliceHash, forAlice);
        // Even claiming Bob's key hash, the binding records what was delivered: Bob's dispute then wins.
        (bytes32 bobHash,,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.prank(owner);
        market.deliverKey(pid, bobHash, forAlice);
        (,, IDataMarket.DisputeProof memory proof) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        proof.delivery = forAlice;
        vm.prank(BUYER);
        assertTrue(market.dispute(pid, proof), "a key sealed for another buyer is refunded");
    }

    function test_malformedDeliveryRefused() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        (bytes32 keyHash, IDataMarket.Delivery memory d,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        d.ephemeralY = bytes32(uint256(d.ephemeralY) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidDelivery.selector, "ephemeralKey"));
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
        d.ephemeralX = 0;
        d.ephemeralY = 0;
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.InvalidDelivery.selector, "ephemeralKey"));
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
    }

    function test_deliverRevertsOnceDeliveredOrLate() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        _deliverAs(owner, pid, DATA_KEY);
        (bytes32 keyHash, IDataMarket.Delivery memory d,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, pid, IDataMarket.Status.Delivered));
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.UnknownPurchase.selector, 99));
        vm.prank(owner);
        market.deliverKey(99, keyHash, d);

        uint256 late = _buyNative(id);
        (keyHash, d,) = _deliver(late, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.warp(T0 + WINDOW + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeliveryWindowClosed.selector, late, uint40(T0 + WINDOW)));
        vm.prank(owner);
        market.deliverKey(late, keyHash, d);
    }

    /// The attack: transfer the token (unsolicited) so that another account's agent would deliver. Purchases stay
    /// with their seller, sales pause on transfer, and the old owner is still the one who delivers and is paid.
    function test_escrowStaysWithTheSellerWhenTheTokenMoves() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        vm.prank(owner);
        market.transferFrom(owner, stranger, id);
        assertTrue(market.datasetInfo(id).paused, "a transfer pauses sales");
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.SalesArePaused.selector, id));
        vm.prank(BUYER);
        market.purchase{value: PRICE}(id, x, y, PRICE);

        (bytes32 keyHash, IDataMarket.Delivery memory d,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotSellerOrAgent.selector, pid, stranger));
        vm.prank(stranger);
        market.deliverKey(pid, keyHash, d);
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
        vm.warp(T0 + CHALLENGE + 1);
        market.settle(pid);
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "the seller at purchase is paid");
        assertEq(market.withdrawable(stranger, address(0)), 0, "the new owner is not");

        vm.prank(stranger);
        market.setPaused(id, false);
        vm.prank(BUYER);
        uint256 next = market.purchase{value: PRICE}(id, x, y, PRICE);
        assertEq(market.purchaseInfo(next).seller, stranger, "new sales belong to the new owner");
    }
}

contract DisputeTest is MarketFixture {
    function test_wrongKeyRefundsTheBuyerAndCountsAgainstTheSeller() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, pid, keccak256("garbage"));
        vm.expectEmit(true, true, true, true, address(market));
        emit IDataMarket.DisputeResolved(pid, id, owner, BUYER, true);
        vm.prank(BUYER);
        assertTrue(market.dispute(pid, proof), "buyer won");
        assertTrue(_status(pid) == IDataMarket.Status.Refunded, "refunded");
        assertEq(market.withdrawable(BUYER, address(0)), PRICE, "full refund");
        assertEq(market.escrowed(address(0)), 0, "escrow empty");
        assertEq(market.disputesLost(owner), 1, "counted against the seller");
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, pid, IDataMarket.Status.Refunded));
        market.settle(pid);
    }

    function test_disputeAgainstAnHonestDeliveryPaysTheSellerAtOnce() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, pid, DATA_KEY);
        vm.prank(BUYER);
        assertTrue(!market.dispute(pid, proof), "buyer lost");
        assertTrue(_status(pid) == IDataMarket.Status.Settled, "settled to the seller");
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "seller paid before the period ends");
        assertEq(market.withdrawable(BUYER, address(0)), 0, "buyer gets nothing back");
        assertEq(market.disputesLost(owner), 0, "no mark against an honest seller");
    }

    function test_malformedOrLateDisputesRefused() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        (,, IDataMarket.DisputeProof memory early) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, pid, IDataMarket.Status.Pending));
        vm.prank(BUYER);
        market.dispute(pid, early);

        IDataMarket.DisputeProof memory proof = _deliverAs(owner, pid, keccak256("garbage"));
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotBuyer.selector, pid, stranger));
        vm.prank(stranger);
        market.dispute(pid, proof);

        IDataMarket.DisputeProof memory altered = _copy(proof);
        altered.delivery.encryptedKey = bytes32(uint256(proof.delivery.encryptedKey) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeliveryMismatch.selector, pid));
        vm.prank(BUYER);
        market.dispute(pid, altered);
        altered.delivery.encryptedKey = proof.delivery.encryptedKey;

        altered.buyerSecret = bytes32(BUYER_SECRET + 1);
        vm.expectRevert(abi.encodeWithSelector(KeyDelivery.InvalidProof.selector, "buyerSecret"));
        vm.prank(BUYER);
        market.dispute(pid, altered);
        altered.buyerSecret = bytes32(uint256(0));
        vm.expectRevert(abi.encodeWithSelector(KeyDelivery.InvalidProof.selector, "buyerSecret"));
        vm.prank(BUYER);
        market.dispute(pid, altered);
        altered.buyerSecret = proof.buyerSecret;

        Vm.Wallet memory other = vm.createWallet(12345);
        altered.sharedX = bytes32(other.publicKeyX);
        altered.sharedY = bytes32(other.publicKeyY);
        vm.expectRevert(abi.encodeWithSelector(KeyDelivery.InvalidProof.selector, "sharedPoint"));
        vm.prank(BUYER);
        market.dispute(pid, altered);

        vm.warp(T0 + CHALLENGE + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.ChallengePeriodOver.selector, pid, uint40(T0 + CHALLENGE)));
        vm.prank(BUYER);
        market.dispute(pid, proof);
        market.settle(pid);
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "an unchallenged wrong key is paid");
    }

    function _copy(IDataMarket.DisputeProof memory p) private pure returns (IDataMarket.DisputeProof memory) {
        return abi.decode(abi.encode(p), (IDataMarket.DisputeProof));
    }
}

contract RefundTest is MarketFixture {
    function test_refundAfterWindowOnly() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.DeliveryWindowOpen.selector, pid, uint40(T0 + WINDOW)));
        vm.prank(BUYER);
        market.refund(pid);
        vm.warp(T0 + WINDOW + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NotBuyer.selector, pid, stranger));
        vm.prank(stranger);
        market.refund(pid);

        uint256 before = BUYER.balance;
        vm.prank(BUYER);
        market.refund(pid);
        assertEq(market.escrowed(address(0)), 0, "escrow released");
        vm.prank(BUYER);
        market.withdrawTo(address(0), RELAYER);
        assertEq(RELAYER.balance, PRICE, "full refund, no fee, sent where the buyer asked");
        assertEq(BUYER.balance, before, "nothing to the caller itself");
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, pid, IDataMarket.Status.Refunded));
        vm.prank(BUYER);
        market.refund(pid);
    }

    function test_noRefundAfterDelivery() public {
        uint256 id = _register(address(0), PRICE);
        uint256 pid = _buyNative(id);
        _deliverAs(owner, pid, DATA_KEY);
        vm.warp(T0 + WINDOW + 1);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.WrongStatus.selector, pid, IDataMarket.Status.Delivered));
        vm.prank(BUYER);
        market.refund(pid);
    }

    function test_reentrantReceiverGetsPaidOnce() public {
        uint256 id = _register(address(0), PRICE);
        ReentrantReceiver r = new ReentrantReceiver(market);
        // An honest buyer's escrow sits beside the attacker's: the attacker must not reach it.
        _buyNative(id);
        uint256 pid = r.buy{value: PRICE}(id, PRICE);
        vm.warp(T0 + WINDOW + 1);
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
        vm.warp(T0 + WINDOW + 1);
        r.refund(pid);
        vm.expectRevert(abi.encodeWithSelector(IDataMarket.NativeTransferFailed.selector, address(r), PRICE));
        r.withdraw();
        assertEq(market.withdrawable(address(r), address(0)), PRICE, "balance kept for a later try");
    }
}

contract FuzzTest is MarketFixture {
    /// Any delivered key that does not match the commitment is refunded by the contract's own judgement.
    function testFuzz_wrongKeyAlwaysRefunds(uint256 b, uint256 r, bytes32 wrongKey) public {
        b = bound(b, 1, N - 1);
        r = bound(r, 1, N - 1);
        vm.assume(wrongKey != DATA_KEY);
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(b);
        vm.prank(BUYER);
        uint256 pid = market.purchase{value: PRICE}(id, x, y, PRICE);
        (bytes32 keyHash, IDataMarket.Delivery memory d, IDataMarket.DisputeProof memory proof) =
            _deliver(pid, b, r, wrongKey);
        vm.assume(uint256(d.ephemeralX) < N);
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
        vm.prank(BUYER);
        assertTrue(market.dispute(pid, proof), "a wrong key is refunded");
        assertEq(market.withdrawable(BUYER, address(0)), PRICE, "in full");
    }

    /// An honest delivery never loses a dispute, whatever the keys.
    function testFuzz_honestDeliveryNeverRefunds(uint256 b, uint256 r) public {
        b = bound(b, 1, N - 1);
        r = bound(r, 1, N - 1);
        uint256 id = _register(address(0), PRICE);
        (bytes32 x, bytes32 y) = _buyerKey(b);
        vm.prank(BUYER);
        uint256 pid = market.purchase{value: PRICE}(id, x, y, PRICE);
        (bytes32 keyHash, IDataMarket.Delivery memory d, IDataMarket.DisputeProof memory proof) =
            _deliver(pid, b, r, DATA_KEY);
        vm.assume(uint256(d.ephemeralX) < N);
        vm.prank(owner);
        market.deliverKey(pid, keyHash, d);
        vm.prank(BUYER);
        assertTrue(!market.dispute(pid, proof), "an honest delivery stands");
        assertEq(market.withdrawable(owner, address(0)), PRICE - _fee(PRICE), "seller paid");
    }

    function testFuzz_feeSplitAddsUp(uint96 price, uint16 feeBps) public {
        feeBps = uint16(bound(feeBps, 0, 1000));
        market = new DataMarket(TREASURY, feeBps);
        uint256 id = _register(address(0), price);
        vm.deal(BUYER, price);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        uint256 pid = market.purchase{value: price}(id, x, y, price);
        _deliverAs(owner, pid, DATA_KEY);
        vm.warp(T0 + CHALLENGE + 1);
        market.settle(pid);
        uint256 ownerAmount = market.withdrawable(owner, address(0));
        uint256 fee = market.feesOwed(address(0));
        assertEq(ownerAmount + fee, price, "owner + fee = price");
        assertLe(fee * 10_000, uint256(price) * feeBps, "fee never above the rate");
        assertLe(fee, uint256(price) / 10, "fee never above the cap");
        assertEq(market.escrowed(address(0)), 0, "nothing stuck in escrow");
    }

    function testFuzz_deliveryAndRefundWindows(uint32 window, uint64 elapsed) public {
        window = uint32(bound(window, 10 minutes, 90 days));
        elapsed = uint64(bound(elapsed, 0, 200 days));
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.deliveryWindow = window;
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        uint256 id = market.register(r, sig);
        uint256 pid = _buyNative(id);
        (bytes32 keyHash, IDataMarket.Delivery memory d,) = _deliver(pid, BUYER_SECRET, EPHEMERAL, DATA_KEY);
        vm.warp(T0 + elapsed);

        bool open = elapsed <= window;
        vm.prank(BUYER);
        try market.refund(pid) {
            assertTrue(!open, "refund only after the window");
        } catch {
            assertTrue(open, "refund refused only while the window is open");
        }
        vm.prank(owner);
        try market.deliverKey(pid, keyHash, d) {
            assertTrue(open, "delivery only within the window");
        } catch {
            assertTrue(!open, "delivery refused only after the window (or once refunded)");
        }
    }

    function testFuzz_challengePeriod(uint32 period, uint64 elapsed) public {
        period = uint32(bound(period, 10 minutes, 30 days));
        elapsed = uint64(bound(elapsed, 0, 60 days));
        IDataMarket.Registration memory r = _registration(address(0), PRICE);
        r.challengePeriod = period;
        bytes memory sig = _authorSign(r, OWNER_KEY);
        vm.prank(owner);
        uint256 id = market.register(r, sig);
        uint256 pid = _buyNative(id);
        IDataMarket.DisputeProof memory proof = _deliverAs(owner, pid, keccak256("wrong"));
        vm.warp(T0 + elapsed);
        bool open = elapsed <= period;
        vm.prank(BUYER);
        try market.dispute(pid, proof) returns (bool won) {
            assertTrue(open && won, "disputes only within the period, and this one wins");
        } catch {
            assertTrue(!open, "dispute refused only after the period");
            market.settle(pid);
        }
    }

    function testFuzz_erc20Amounts(uint96 price, uint128 extraBalance) public {
        uint256 id = _register(address(usd), price);
        uint256 balance = uint256(price) + extraBalance;
        usd.mint(BUYER, balance);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.startPrank(BUYER);
        usd.approve(address(market), price);
        uint256 pid = market.purchase(id, x, y, price);
        vm.stopPrank();
        assertEq(usd.balanceOf(BUYER), extraBalance, "buyer paid exactly the price");
        vm.warp(T0 + WINDOW + 1);
        vm.startPrank(BUYER);
        market.refund(pid);
        if (price != 0) market.withdraw(address(usd));
        vm.stopPrank();
        assertEq(usd.balanceOf(BUYER), balance, "refund is whole");
        assertEq(usd.balanceOf(address(market)), 0, "market empty");
    }

    function testFuzz_priceChangeGuard(uint96 price, uint96 newPrice) public {
        uint256 id = _register(address(0), price);
        vm.prank(owner);
        market.setPrice(id, newPrice);
        vm.deal(BUYER, price);
        (bytes32 x, bytes32 y) = _buyerKey(BUYER_SECRET);
        vm.prank(BUYER);
        if (newPrice > price) {
            vm.expectRevert(abi.encodeWithSelector(IDataMarket.PriceAboveMax.selector, id, newPrice, price));
        }
        market.purchase{value: price}(id, x, y, price);
        if (newPrice <= price) {
            assertEq(market.withdrawable(BUYER, address(0)), price - newPrice, "difference credited");
        }
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
