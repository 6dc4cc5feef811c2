// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Eip712} from "./Eip712.sol";

/// @title ServiceRegistry — the app store. A provider lists a service under an
/// id with a metadata CID (description on IPFS), a price per call (paid by the
/// user), a remuneration per call (paid to the worker; the provider keeps the
/// difference), and the service's public keys and image hash, which must carry
/// the Service Manager's signature (ServiceListing, docs/settlement.md §2.4).
/// New versions, private services with an allow-list, and retirement. Every
/// change is an event, so the catalogue can be rebuilt from logs alone.
contract ServiceRegistry is Eip712 {
    bytes32 public constant LISTING_TYPEHASH = keccak256(
        "ServiceListing(bytes32 serviceId,address provider,uint32 version,address signingKey,bytes32 encryptionKey,bytes32 imageHash)"
    );
    uint256 public constant MAX_CID_LENGTH = 128;

    struct Service {
        address provider; // zero: no such service
        uint32 version;
        bool isPrivate;
        bool retired;
        address signingKey; // Ethereum address of the service's secp256k1 key
        uint128 price; // wei per call, paid by the user
        uint128 remuneration; // wei per call, paid to the worker (<= price)
        bytes32 encryptionKey; // X25519 public key
        bytes32 imageHash;
        string metadataCid;
    }

    /// The SM enclave's address, fixed at deployment.
    address public immutable serviceManager;
    mapping(bytes32 => Service) private services;
    mapping(bytes32 => mapping(address => bool)) private allowed;
    /// Every id ever listed, in listing order (for enumeration without logs).
    bytes32[] public serviceIds;

    event ServiceListed(
        bytes32 indexed serviceId,
        address indexed provider,
        uint32 version,
        string metadataCid,
        uint128 price,
        uint128 remuneration,
        address signingKey,
        bytes32 encryptionKey,
        bytes32 imageHash,
        bool isPrivate
    );
    event ServiceVersionPublished(
        bytes32 indexed serviceId,
        uint32 version,
        string metadataCid,
        address signingKey,
        bytes32 encryptionKey,
        bytes32 imageHash
    );
    event ServicePriceChanged(bytes32 indexed serviceId, uint128 price, uint128 remuneration);
    event ServiceVisibilityChanged(bytes32 indexed serviceId, bool isPrivate);
    event ServiceAccessChanged(bytes32 indexed serviceId, address indexed caller, bool allowed);
    event ServiceRetired(bytes32 indexed serviceId);

    error ZeroAddress();
    error ZeroServiceId();
    error ServiceAlreadyListed(bytes32 serviceId);
    error ServiceNotFound(bytes32 serviceId);
    error NotServiceProvider(bytes32 serviceId, address caller);
    error ServiceIsRetired(bytes32 serviceId);
    error RemunerationAbovePrice(uint128 price, uint128 remuneration);
    error BadMetadataCid();
    error ZeroServiceKey();
    error NotSignedByServiceManager(address recovered);

    constructor(address serviceManager_) {
        if (serviceManager_ == address(0)) revert ZeroAddress();
        serviceManager = serviceManager_;
    }

    function _checkListing(
        bytes32 serviceId,
        uint32 version,
        address signingKey,
        bytes32 encryptionKey,
        bytes32 imageHash,
        string calldata metadataCid,
        Sig calldata smSig
    ) private view {
        uint256 n = bytes(metadataCid).length;
        if (n == 0 || n > MAX_CID_LENGTH) revert BadMetadataCid();
        if (signingKey == address(0) || encryptionKey == 0 || imageHash == 0) revert ZeroServiceKey();
        bytes32 structHash = keccak256(
            abi.encode(LISTING_TYPEHASH, serviceId, msg.sender, version, signingKey, encryptionKey, imageHash)
        );
        address signer = _recover(_digest(structHash), smSig.v, smSig.r, smSig.s);
        if (signer != serviceManager) revert NotSignedByServiceManager(signer);
    }

    function _own(bytes32 serviceId) private view returns (Service storage s) {
        s = services[serviceId];
        if (s.provider == address(0)) revert ServiceNotFound(serviceId);
        if (s.provider != msg.sender) revert NotServiceProvider(serviceId, msg.sender);
        if (s.retired) revert ServiceIsRetired(serviceId);
    }

    /// Lists a new service owned by the sender (version 1).
    function listService(
        bytes32 serviceId,
        string calldata metadataCid,
        uint128 price,
        uint128 remuneration,
        address signingKey,
        bytes32 encryptionKey,
        bytes32 imageHash,
        bool isPrivate,
        Sig calldata smSig
    ) external {
        if (serviceId == 0) revert ZeroServiceId();
        if (services[serviceId].provider != address(0)) revert ServiceAlreadyListed(serviceId);
        if (remuneration > price) revert RemunerationAbovePrice(price, remuneration);
        _checkListing(serviceId, 1, signingKey, encryptionKey, imageHash, metadataCid, smSig);
        Service storage s = services[serviceId];
        s.provider = msg.sender;
        s.version = 1;
        s.isPrivate = isPrivate;
        s.signingKey = signingKey;
        s.price = price;
        s.remuneration = remuneration;
        s.encryptionKey = encryptionKey;
        s.imageHash = imageHash;
        s.metadataCid = metadataCid;
        serviceIds.push(serviceId);
        emit ServiceListed(
            serviceId, msg.sender, 1, metadataCid, price, remuneration, signingKey, encryptionKey, imageHash, isPrivate
        );
    }

    /// Publishes the next version (new image and keys, SM-signed for version+1).
    function publishVersion(
        bytes32 serviceId,
        string calldata metadataCid,
        address signingKey,
        bytes32 encryptionKey,
        bytes32 imageHash,
        Sig calldata smSig
    ) external {
        Service storage s = _own(serviceId);
        uint32 version = s.version + 1;
        _checkListing(serviceId, version, signingKey, encryptionKey, imageHash, metadataCid, smSig);
        s.version = version;
        s.signingKey = signingKey;
        s.encryptionKey = encryptionKey;
        s.imageHash = imageHash;
        s.metadataCid = metadataCid;
        emit ServiceVersionPublished(serviceId, version, metadataCid, signingKey, encryptionKey, imageHash);
    }

    function setPrice(bytes32 serviceId, uint128 price, uint128 remuneration) external {
        Service storage s = _own(serviceId);
        if (remuneration > price) revert RemunerationAbovePrice(price, remuneration);
        s.price = price;
        s.remuneration = remuneration;
        emit ServicePriceChanged(serviceId, price, remuneration);
    }

    /// Private: only the provider and allow-listed callers may invoke it.
    function setPrivate(bytes32 serviceId, bool isPrivate) external {
        Service storage s = _own(serviceId);
        s.isPrivate = isPrivate;
        emit ServiceVisibilityChanged(serviceId, isPrivate);
    }

    function setAllowed(bytes32 serviceId, address[] calldata callers, bool isAllowed) external {
        _own(serviceId);
        for (uint256 i = 0; i < callers.length; i++) {
            if (callers[i] == address(0)) revert ZeroAddress();
            allowed[serviceId][callers[i]] = isAllowed;
            emit ServiceAccessChanged(serviceId, callers[i], isAllowed);
        }
    }

    /// Retires the service for good: it stays readable, but cannot be invoked or changed.
    function retire(bytes32 serviceId) external {
        Service storage s = _own(serviceId);
        s.retired = true;
        emit ServiceRetired(serviceId);
    }

    function getService(bytes32 serviceId) external view returns (Service memory) {
        Service memory s = services[serviceId];
        if (s.provider == address(0)) revert ServiceNotFound(serviceId);
        return s;
    }

    /// True when `caller` may invoke the service now (listed, not retired, and
    /// public or the provider or allow-listed).
    function canInvoke(bytes32 serviceId, address caller) external view returns (bool) {
        Service storage s = services[serviceId];
        if (s.provider == address(0) || s.retired) return false;
        return !s.isPrivate || caller == s.provider || allowed[serviceId][caller];
    }

    function serviceCount() external view returns (uint256) {
        return serviceIds.length;
    }
}
