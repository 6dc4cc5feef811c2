// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Eip712} from "./Eip712.sol";

/// @title EnclaveRegistry — which enclave addresses are attested workers and
/// dispatchers. The Service Manager (SM) attests an enclave off chain and signs
/// an EnclaveRegistration statement (docs/settlement.md §2.5); anyone may submit
/// it. The SM revokes with a signed EnclaveRevocation. A revoked address can
/// never be registered again.
contract EnclaveRegistry is Eip712 {
    uint8 public constant ROLE_WORKER = 1;
    uint8 public constant ROLE_DISPATCHER = 2;
    /// How far in the future a statement's issuedAt may lie (clock skew).
    uint64 public constant MAX_CLOCK_SKEW = 1 hours;

    bytes32 public constant REGISTRATION_TYPEHASH =
        keccak256("EnclaveRegistration(address enclave,uint8 role,bytes32 measurement,uint64 issuedAt)");
    bytes32 public constant REVOCATION_TYPEHASH = keccak256("EnclaveRevocation(address enclave)");

    struct Enclave {
        uint8 role; // 0 = never registered
        bool revoked;
        uint64 issuedAt;
        uint64 registeredAt;
        bytes32 measurement;
    }

    /// The SM enclave's address, fixed at deployment.
    address public immutable serviceManager;
    mapping(address => Enclave) private enclaves;

    event EnclaveRegistered(address indexed enclave, uint8 indexed role, bytes32 measurement, uint64 issuedAt);
    event EnclaveRevoked(address indexed enclave, uint8 indexed role);

    error ZeroAddress();
    error InvalidRole(uint8 role);
    error StatementFromFuture(uint64 issuedAt, uint256 now_);
    error NotSignedByServiceManager(address recovered);
    error EnclaveAlreadyRegistered(address enclave);
    error EnclaveWasRevoked(address enclave);
    error EnclaveNotRegistered(address enclave);

    constructor(address serviceManager_) {
        if (serviceManager_ == address(0)) revert ZeroAddress();
        serviceManager = serviceManager_;
    }

    /// Registers `enclave` in `role` with the SM's signature over
    /// EnclaveRegistration(enclave, role, measurement, issuedAt).
    function register(address enclave, uint8 role, bytes32 measurement, uint64 issuedAt, Sig calldata smSig)
        external
    {
        if (enclave == address(0)) revert ZeroAddress();
        if (role != ROLE_WORKER && role != ROLE_DISPATCHER) revert InvalidRole(role);
        if (issuedAt > block.timestamp + MAX_CLOCK_SKEW) revert StatementFromFuture(issuedAt, block.timestamp);
        bytes32 digest =
            _digest(keccak256(abi.encode(REGISTRATION_TYPEHASH, enclave, role, measurement, issuedAt)));
        address signer = _recover(digest, smSig.v, smSig.r, smSig.s);
        if (signer != serviceManager) revert NotSignedByServiceManager(signer);
        Enclave storage e = enclaves[enclave];
        if (e.revoked) revert EnclaveWasRevoked(enclave);
        if (e.role != 0) revert EnclaveAlreadyRegistered(enclave);
        e.role = role;
        e.issuedAt = issuedAt;
        e.registeredAt = uint64(block.timestamp);
        e.measurement = measurement;
        emit EnclaveRegistered(enclave, role, measurement, issuedAt);
    }

    /// Revokes `enclave` for good, with the SM's signature over EnclaveRevocation(enclave).
    function revoke(address enclave, Sig calldata smSig) external {
        bytes32 digest = _digest(keccak256(abi.encode(REVOCATION_TYPEHASH, enclave)));
        address signer = _recover(digest, smSig.v, smSig.r, smSig.s);
        if (signer != serviceManager) revert NotSignedByServiceManager(signer);
        Enclave storage e = enclaves[enclave];
        if (e.role == 0) revert EnclaveNotRegistered(enclave);
        if (e.revoked) revert EnclaveWasRevoked(enclave);
        e.revoked = true;
        emit EnclaveRevoked(enclave, e.role);
    }

    /// The record of `enclave` (role 0 if it never registered).
    function getEnclave(address enclave) external view returns (Enclave memory) {
        return enclaves[enclave];
    }

    /// True when `enclave` is registered in `role` and not revoked.
    function isActive(address enclave, uint8 role) public view returns (bool) {
        Enclave storage e = enclaves[enclave];
        return e.role == role && !e.revoked;
    }

    function isDispatcher(address enclave) external view returns (bool) {
        return isActive(enclave, ROLE_DISPATCHER);
    }

    function isWorker(address enclave) external view returns (bool) {
        return isActive(enclave, ROLE_WORKER);
    }
}
