// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Eip712} from "./Eip712.sol";

/// @title DsAnchor — the latest freshness anchor of each TEE-DS group
/// (docs/internals/ds.md "Freshness anchoring", docs/threat-model.md).
/// A replica's enclave signs a commitment to the group's log head (group id,
/// applied index, term, applied hash chain, state digest, time, and the hash
/// and CID of the full commitment document on IPFS); anyone may submit it.
/// Per group only a strictly higher index is accepted, so the chain holds a
/// floor that a group restored from older disks cannot reach.
///
/// Who may sign: the enclave addresses the group's owner lists. The
/// EnclaveRegistry is not used because its roles are the SM-attested worker
/// and dispatcher, and a TEE-DS group may run without an SM (its first
/// replica draws the group key); the owner reads each replica's enclave
/// address from its attested evidence before listing it.
contract DsAnchor is Eip712 {
    /// Groups have 3 or 5 replicas; a few spares for replacements.
    uint256 public constant MAX_ANCHORERS = 8;
    /// An IPFS CID in text form.
    uint256 public constant MAX_CID_LENGTH = 128;
    /// How far in the future a commitment's time may lie (clock skew).
    uint64 public constant MAX_CLOCK_SKEW = 1 hours;

    bytes32 public constant ANCHOR_TYPEHASH = keccak256(
        "DsAnchor(bytes32 groupId,uint64 index,uint64 term,bytes32 appliedChain,bytes32 stateDigest,uint64 time,bytes32 commitmentHash,string cid)"
    );

    struct Anchor {
        uint64 index; // 0 = never anchored
        uint64 term;
        uint64 time; // the signer's clock (ms since the epoch)
        uint64 anchoredAt; // block timestamp
        bytes32 appliedChain;
        bytes32 stateDigest;
        bytes32 commitmentHash; // keccak256 of the document at cid
        string cid;
        address signer;
    }

    struct Group {
        address owner; // 0 = no such group
        uint8 anchorerCount;
        mapping(address => bool) anchorers;
        Anchor latest;
    }

    /// The fields a replica signs.
    struct Commitment {
        bytes32 groupId;
        uint64 index;
        uint64 term;
        bytes32 appliedChain;
        bytes32 stateDigest;
        uint64 time;
        bytes32 commitmentHash;
        string cid;
    }

    mapping(bytes32 => Group) private groups;

    event GroupCreated(bytes32 indexed groupId, address indexed owner);
    event AnchorerSet(bytes32 indexed groupId, address indexed enclave, bool allowed);
    event Anchored(
        bytes32 indexed groupId,
        uint64 index,
        uint64 term,
        bytes32 appliedChain,
        bytes32 stateDigest,
        bytes32 commitmentHash,
        string cid,
        address indexed signer
    );

    error ZeroGroupId();
    error ZeroAddress();
    error GroupExists(bytes32 groupId);
    error NoSuchGroup(bytes32 groupId);
    error NotGroupOwner(address caller);
    error TooManyAnchorers();
    error NotAnAnchorer(address recovered);
    error IndexNotIncreasing(uint64 index, uint64 latest);
    error TermDecreasing(uint64 term, uint64 latest);
    error BadCid();
    error ZeroHash();
    error CommitmentFromFuture(uint64 time, uint256 now_);

    /// Creates group `groupId` owned by the caller, with its first anchorers.
    function createGroup(bytes32 groupId, address[] calldata anchorers) external {
        if (groupId == bytes32(0)) revert ZeroGroupId();
        Group storage g = groups[groupId];
        if (g.owner != address(0)) revert GroupExists(groupId);
        if (anchorers.length > MAX_ANCHORERS) revert TooManyAnchorers();
        g.owner = msg.sender;
        emit GroupCreated(groupId, msg.sender);
        for (uint256 i = 0; i < anchorers.length; i++) {
            _set(g, groupId, anchorers[i], true);
        }
    }

    /// The owner adds or removes an enclave address that may sign anchors.
    function setAnchorer(bytes32 groupId, address enclave, bool allowed) external {
        Group storage g = groups[groupId];
        if (g.owner == address(0)) revert NoSuchGroup(groupId);
        if (msg.sender != g.owner) revert NotGroupOwner(msg.sender);
        _set(g, groupId, enclave, allowed);
    }

    function _set(Group storage g, bytes32 groupId, address enclave, bool allowed) private {
        if (enclave == address(0)) revert ZeroAddress();
        if (g.anchorers[enclave] == allowed) return;
        if (allowed) {
            if (g.anchorerCount >= MAX_ANCHORERS) revert TooManyAnchorers();
            g.anchorerCount++;
        } else {
            g.anchorerCount--;
        }
        g.anchorers[enclave] = allowed;
        emit AnchorerSet(groupId, enclave, allowed);
    }

    /// Records `c` as the group's latest anchor, with a listed enclave's
    /// EIP-712 signature over it. The index must exceed the latest one.
    function anchor(Commitment calldata c, Sig calldata sig) external {
        Group storage g = groups[c.groupId];
        if (g.owner == address(0)) revert NoSuchGroup(c.groupId);
        uint256 cidLen = bytes(c.cid).length;
        if (cidLen == 0 || cidLen > MAX_CID_LENGTH) revert BadCid();
        if (c.appliedChain == bytes32(0) || c.commitmentHash == bytes32(0)) revert ZeroHash();
        if (c.time / 1000 > block.timestamp + MAX_CLOCK_SKEW) revert CommitmentFromFuture(c.time, block.timestamp);
        Anchor storage a = g.latest;
        if (c.index <= a.index) revert IndexNotIncreasing(c.index, a.index);
        if (c.term < a.term) revert TermDecreasing(c.term, a.term);
        address signer = _recover(_digest(_hash(c)), sig.v, sig.r, sig.s);
        if (signer == address(0) || !g.anchorers[signer]) revert NotAnAnchorer(signer);
        a.index = c.index;
        a.term = c.term;
        a.time = c.time;
        a.anchoredAt = uint64(block.timestamp);
        a.appliedChain = c.appliedChain;
        a.stateDigest = c.stateDigest;
        a.commitmentHash = c.commitmentHash;
        a.cid = c.cid;
        a.signer = signer;
        emit Anchored(c.groupId, c.index, c.term, c.appliedChain, c.stateDigest, c.commitmentHash, c.cid, signer);
    }

    function _hash(Commitment calldata c) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ANCHOR_TYPEHASH,
                c.groupId,
                c.index,
                c.term,
                c.appliedChain,
                c.stateDigest,
                c.time,
                c.commitmentHash,
                keccak256(bytes(c.cid))
            )
        );
    }

    /// The latest anchor of `groupId` (index 0 when none).
    function latest(bytes32 groupId) external view returns (Anchor memory) {
        return groups[groupId].latest;
    }

    function ownerOf(bytes32 groupId) external view returns (address) {
        return groups[groupId].owner;
    }

    function isAnchorer(bytes32 groupId, address enclave) external view returns (bool) {
        return groups[groupId].anchorers[enclave];
    }
}
