// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDataMarket} from "./IDataMarket.sol";

/// @title RegistrationRules: what a registration may carry, and the EIP-712 digests its signatures cover.
/// @notice Kept out of the market's runtime code (EIP-170 caps it at 24,576 bytes). Stateless and pure: each market
/// deploys its own in its constructor and calls it read-only.
contract RegistrationRules {
    uint32 public constant MIN_DELIVERY_WINDOW = 10 minutes;
    uint32 public constant MAX_DELIVERY_WINDOW = 90 days;
    uint32 public constant MIN_CHALLENGE_PERIOD = 10 minutes;
    uint32 public constant MAX_CHALLENGE_PERIOD = 30 days;
    /// @notice Caps on what a registration carries (every indexer reads it): URIs, their length, the licence.
    uint256 public constant MAX_MANIFEST_URIS = 8;
    uint256 public constant MAX_URI_LENGTH = 512;
    uint256 public constant MAX_LICENSE_LENGTH = 256;
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

    /// @notice Revert with the first rule `r` breaks; return the EIP-712 digest its author signs.
    function check(IDataMarket.Registration calldata r) external pure returns (bytes32) {
        if (r.manifestHash == bytes32(0)) revert IDataMarket.InvalidParameter("manifestHash");
        if (r.contentRoot == bytes32(0)) revert IDataMarket.InvalidParameter("contentRoot");
        if (r.keyCommitment == bytes32(0)) revert IDataMarket.InvalidParameter("keyCommitment");
        if (r.sealId == bytes32(0)) revert IDataMarket.InvalidParameter("sealId");
        if (r.shardCount == 0) revert IDataMarket.InvalidParameter("shardCount");
        if (r.keyLink != bytes32(0) && r.supersedes == 0) revert IDataMarket.InvalidParameter("keyLink");
        if (r.author == address(0)) revert IDataMarket.InvalidParameter("author");
        if (r.owner == address(0)) revert IDataMarket.InvalidParameter("owner");
        if (r.deliveryWindow < MIN_DELIVERY_WINDOW || r.deliveryWindow > MAX_DELIVERY_WINDOW) {
            revert IDataMarket.OutOfRange("deliveryWindow", r.deliveryWindow, MIN_DELIVERY_WINDOW, MAX_DELIVERY_WINDOW);
        }
        if (r.challengePeriod < MIN_CHALLENGE_PERIOD || r.challengePeriod > MAX_CHALLENGE_PERIOD) {
            revert IDataMarket.OutOfRange(
                "challengePeriod", r.challengePeriod, MIN_CHALLENGE_PERIOD, MAX_CHALLENGE_PERIOD
            );
        }
        uint256 uris = r.manifestURIs.length;
        if (uris == 0) revert IDataMarket.InvalidParameter("manifestURIs");
        if (uris > MAX_MANIFEST_URIS) revert IDataMarket.TooLong("manifestURIs", uris, MAX_MANIFEST_URIS);
        for (uint256 i = 0; i < uris; ++i) {
            uint256 length = bytes(r.manifestURIs[i]).length;
            if (length == 0) revert IDataMarket.InvalidParameter("manifestURIs");
            if (length > MAX_URI_LENGTH) revert IDataMarket.TooLong("manifestURIs", length, MAX_URI_LENGTH);
        }
        uint256 licenseLength = bytes(r.licenseURI).length;
        if (licenseLength > MAX_LICENSE_LENGTH) {
            revert IDataMarket.TooLong("licenseURI", licenseLength, MAX_LICENSE_LENGTH);
        }
        return authorshipDigest(r);
    }

    /// @notice The EIP-712 struct hash of `Register(r, nonce, deadline)`: what `registerFor`'s owner signs.
    function hashRegister(IDataMarket.Registration calldata r, uint256 nonce, uint256 deadline)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(REGISTER_TYPEHASH, hashRegistration(r), nonce, deadline));
    }

    /// @notice The EIP-712 struct hash of a registration (what `registerFor`'s owner signature covers).
    function hashRegistration(IDataMarket.Registration calldata r) public pure returns (bytes32) {
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
    function authorshipDigest(IDataMarket.Registration calldata r) public pure returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(AUTHORSHIP_TYPEHASH, r.sealId, r.contentRoot, r.keyCommitment, r.shardCount, r.owner));
        return keccak256(abi.encodePacked("\x19\x01", AUTHORSHIP_DOMAIN, structHash));
    }
}
