// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title DatasetRegistry — the data providers' listings. A data provider
/// lists an encrypted dataset (ciphertext CID on IPFS, hash and size of the
/// plaintext) with its terms: a price per use, an expiry, a maximum number of
/// uses and a maximum output per task. The data key is escrowed with the
/// Service Manager; the SM releases it only for a task of a service the
/// provider approved, at an exact image hash: an approval is a
/// (serviceId, imageHash) pair, so a new version of a service needs a new
/// approval. Revocation is final. Every change is an event, so the listings
/// can be rebuilt from logs alone.
///
/// A separate contract rather than an extension of ServiceRegistry: datasets
/// have their own owner, terms and life cycle, and the service registry's
/// code and storage layout stay as they are. The id is derived on chain from
/// the sender and a name, so nobody can squat another provider's id.
contract DatasetRegistry {
    uint256 public constant MAX_CID_LENGTH = 128;
    uint256 public constant MAX_NAME_LENGTH = 64;
    uint256 public constant MAX_APPROVALS_PER_CALL = 64;

    struct Dataset {
        address provider; // zero: no such dataset
        bool revoked;
        uint64 expiresAt; // unix seconds; 0: never
        uint64 plaintextSize; // bytes
        uint32 maxUses; // 0: unlimited (counted by the SM)
        uint64 maxOutputBytes; // cap on what a task using it sends out; 0: none
        uint128 price; // wei per use, paid by the user to the provider
        bytes32 plaintextHash; // SHA-256 of the plaintext
        string name;
        string ciphertextCid;
    }

    /// One approval: the service, and the exact image the provider audited.
    struct Approval {
        bytes32 serviceId;
        bytes32 imageHash;
    }

    mapping(bytes32 => Dataset) private datasets;
    /// datasetId => keccak256(serviceId, imageHash) => approved
    mapping(bytes32 => mapping(bytes32 => bool)) private approvals;
    /// Every id ever listed, in listing order (for enumeration without logs).
    bytes32[] public datasetIds;

    event DatasetListed(
        bytes32 indexed datasetId,
        address indexed provider,
        string name,
        string ciphertextCid,
        bytes32 plaintextHash,
        uint64 plaintextSize,
        uint128 price,
        uint64 expiresAt,
        uint32 maxUses,
        uint64 maxOutputBytes
    );
    event DatasetApproved(bytes32 indexed datasetId, bytes32 indexed serviceId, bytes32 imageHash);
    event DatasetApprovalRemoved(bytes32 indexed datasetId, bytes32 indexed serviceId, bytes32 imageHash);
    event DatasetPriceChanged(bytes32 indexed datasetId, uint128 price);
    event DatasetRevoked(bytes32 indexed datasetId);

    error DatasetAlreadyListed(bytes32 datasetId);
    error DatasetNotFound(bytes32 datasetId);
    error NotDatasetProvider(bytes32 datasetId, address caller);
    error DatasetIsRevoked(bytes32 datasetId);
    error BadDatasetName();
    error BadCiphertextCid();
    error ZeroPlaintextHash();
    error ExpiryInPast(uint64 expiresAt, uint256 nowTs);
    error BadApproval(uint256 index);
    error TooManyApprovals(uint256 count);

    /// The id a provider's dataset called `name` gets.
    function datasetIdOf(address provider, string calldata name) public pure returns (bytes32) {
        return keccak256(abi.encodePacked("teex/dataset-id/v1", provider, name));
    }

    function _own(bytes32 datasetId) private view returns (Dataset storage d) {
        d = datasets[datasetId];
        if (d.provider == address(0)) revert DatasetNotFound(datasetId);
        if (d.provider != msg.sender) revert NotDatasetProvider(datasetId, msg.sender);
        if (d.revoked) revert DatasetIsRevoked(datasetId);
    }

    /// Lists a dataset owned by the sender under datasetIdOf(sender, name).
    function listDataset(
        string calldata name,
        string calldata ciphertextCid,
        bytes32 plaintextHash,
        uint64 plaintextSize,
        uint128 price,
        uint64 expiresAt,
        uint32 maxUses,
        uint64 maxOutputBytes
    ) external returns (bytes32 datasetId) {
        uint256 n = bytes(name).length;
        if (n == 0 || n > MAX_NAME_LENGTH) revert BadDatasetName();
        n = bytes(ciphertextCid).length;
        if (n == 0 || n > MAX_CID_LENGTH) revert BadCiphertextCid();
        if (plaintextHash == 0) revert ZeroPlaintextHash();
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert ExpiryInPast(expiresAt, block.timestamp);
        datasetId = datasetIdOf(msg.sender, name);
        if (datasets[datasetId].provider != address(0)) revert DatasetAlreadyListed(datasetId);
        Dataset storage d = datasets[datasetId];
        d.provider = msg.sender;
        d.expiresAt = expiresAt;
        d.plaintextSize = plaintextSize;
        d.maxUses = maxUses;
        d.maxOutputBytes = maxOutputBytes;
        d.price = price;
        d.plaintextHash = plaintextHash;
        d.name = name;
        d.ciphertextCid = ciphertextCid;
        datasetIds.push(datasetId);
        emit DatasetListed(
            datasetId, msg.sender, name, ciphertextCid, plaintextHash, plaintextSize, price, expiresAt, maxUses,
            maxOutputBytes
        );
    }

    function _pairKey(Approval calldata a) private pure returns (bytes32) {
        return keccak256(abi.encode(a.serviceId, a.imageHash));
    }

    function _checkPairs(Approval[] calldata pairs) private pure {
        if (pairs.length == 0 || pairs.length > MAX_APPROVALS_PER_CALL) revert TooManyApprovals(pairs.length);
        for (uint256 i = 0; i < pairs.length; i++) {
            if (pairs[i].serviceId == 0 || pairs[i].imageHash == 0) revert BadApproval(i);
        }
    }

    /// Approves each (serviceId, imageHash) pair to read the dataset.
    function approve(bytes32 datasetId, Approval[] calldata pairs) external {
        _own(datasetId);
        _checkPairs(pairs);
        for (uint256 i = 0; i < pairs.length; i++) {
            approvals[datasetId][_pairKey(pairs[i])] = true;
            emit DatasetApproved(datasetId, pairs[i].serviceId, pairs[i].imageHash);
        }
    }

    /// Withdraws approvals; the SM stops releasing the key to those images.
    function removeApproval(bytes32 datasetId, Approval[] calldata pairs) external {
        _own(datasetId);
        _checkPairs(pairs);
        for (uint256 i = 0; i < pairs.length; i++) {
            approvals[datasetId][_pairKey(pairs[i])] = false;
            emit DatasetApprovalRemoved(datasetId, pairs[i].serviceId, pairs[i].imageHash);
        }
    }

    /// A new price per use, for tasks authorised from now on.
    function setPrice(bytes32 datasetId, uint128 price) external {
        Dataset storage d = _own(datasetId);
        d.price = price;
        emit DatasetPriceChanged(datasetId, price);
    }

    /// Revokes the dataset for good: no key is released for it again.
    function revoke(bytes32 datasetId) external {
        Dataset storage d = _own(datasetId);
        d.revoked = true;
        emit DatasetRevoked(datasetId);
    }

    function getDataset(bytes32 datasetId) external view returns (Dataset memory) {
        Dataset memory d = datasets[datasetId];
        if (d.provider == address(0)) revert DatasetNotFound(datasetId);
        return d;
    }

    /// True when datasetId was ever listed (revoked ones included). A
    /// non-reverting existence check for clients.
    function isListed(bytes32 datasetId) external view returns (bool) {
        return datasets[datasetId].provider != address(0);
    }

    function isApproved(bytes32 datasetId, bytes32 serviceId, bytes32 imageHash) public view returns (bool) {
        return approvals[datasetId][keccak256(abi.encode(serviceId, imageHash))];
    }

    /// True when a task of serviceId at imageHash may read the dataset now:
    /// listed, not revoked, not expired, and the exact pair approved. (The
    /// use count is the SM's to check.)
    function usable(bytes32 datasetId, bytes32 serviceId, bytes32 imageHash) external view returns (bool) {
        Dataset storage d = datasets[datasetId];
        if (d.provider == address(0) || d.revoked) return false;
        if (d.expiresAt != 0 && block.timestamp >= d.expiresAt) return false;
        return isApproved(datasetId, serviceId, imageHash);
    }

    function datasetCount() external view returns (uint256) {
        return datasetIds.length;
    }
}
