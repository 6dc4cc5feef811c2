// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Eip712} from "./Eip712.sol";

interface IEnclaveRegistry {
    function isDispatcher(address enclave) external view returns (bool);
}

/// @title Settlement — escrow per (user, dispatcher) and batched settlement of
/// off-chain tasks (docs/settlement.md). A registered dispatcher enclave settles
/// a whole batch in one transaction: per user one EIP-712 PaymentAuthorization
/// with a cumulative amount, of which only the increase over what was settled
/// before is debited; credits per worker, provider and data provider; debits
/// equal credits; the Merkle root of the receipts and the IPFS CID of the
/// batch content recorded. Cost grows with the number of parties, not tasks.
contract Settlement is Eip712 {
    bytes32 public constant AUTHORIZATION_TYPEHASH = keccak256(
        "PaymentAuthorization(address user,address dispatcher,bytes32 taskId,bytes32 serviceId,bytes32 imageHash,bytes32 datasetsHash,uint256 price,uint256 cumulative)"
    );
    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(bytes32 taskId,bytes32 serviceId,bytes32 imageHash,address user,address dispatcher,address worker,address provider,bytes32 inputCommitment,bytes32 outputCommitment,uint256 price,uint256 workerAmount,uint256 providerAmount,bytes32 dataSharesHash)"
    );
    bytes32 public constant RECEIPT_LEAF_TAG = keccak256("teex/settlement/v1/receipt-leaf");
    uint256 public constant MAX_CID_LENGTH = 128;

    /// A user's authorisation as sent in a batch; the dispatcher is the sender.
    struct SignedAuthorization {
        address user;
        bytes32 taskId;
        bytes32 serviceId;
        bytes32 imageHash;
        bytes32 datasetsHash;
        uint256 price;
        uint256 cumulative;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    struct Credit {
        address payee;
        uint256 amount;
    }

    /// A receipt's fields but dataSharesHash (computed from the shares).
    struct Receipt {
        bytes32 taskId;
        bytes32 serviceId;
        bytes32 imageHash;
        address user;
        address dispatcher;
        address worker;
        address provider;
        bytes32 inputCommitment;
        bytes32 outputCommitment;
        uint256 price;
        uint256 workerAmount;
        uint256 providerAmount;
    }

    struct DataShare {
        bytes32 datasetId;
        address payee;
        uint256 amount;
    }

    struct Account {
        uint128 balance; // escrow left
        uint128 settled; // highest cumulative amount honoured
    }

    struct Withdrawal {
        uint128 amount;
        uint64 unlockAt; // 0: none pending
    }

    struct Batch {
        bytes32 root; // zero: never settled
        address dispatcher;
        uint64 settledAt;
        uint32 taskCount;
    }

    IEnclaveRegistry public immutable enclaveRegistry;
    /// Seconds a user waits between requesting and completing a withdrawal.
    uint64 public immutable withdrawalDelay;

    mapping(address => mapping(address => Account)) private accounts;
    mapping(address => mapping(address => Withdrawal)) private withdrawals;
    mapping(address => uint256) public credits;
    mapping(bytes32 => Batch) private batches;

    event Deposited(address indexed user, address indexed dispatcher, uint256 amount, uint256 balance);
    event WithdrawalRequested(address indexed user, address indexed dispatcher, uint256 amount, uint64 unlockAt);
    event WithdrawalCancelled(address indexed user, address indexed dispatcher);
    event Withdrawn(address indexed user, address indexed dispatcher, uint256 amount);
    event Debited(address indexed user, address indexed dispatcher, uint256 amount, uint256 cumulative);
    event Credited(address indexed payee, bytes32 indexed batchId, uint256 amount);
    event BatchSettled(
        bytes32 indexed batchId, address indexed dispatcher, bytes32 root, uint32 taskCount, uint256 total, string cid
    );
    event CreditsWithdrawn(address indexed payee, address to, uint256 amount);

    error ZeroAddress();
    error ZeroAmount();
    error AmountTooLarge(uint256 amount);
    error NotRegisteredDispatcher(address account);
    error NoWithdrawalPending();
    error WithdrawalLocked(uint64 unlockAt, uint256 now_);
    error TransferFailed();
    error InsufficientCredits(uint256 requested, uint256 available);
    error BatchAlreadySettled(bytes32 batchId);
    error EmptyBatch();
    error ZeroRoot();
    error BadBatchCid();
    error BadAuthorizationSignature(uint256 index, address user);
    error InsufficientEscrow(address user, uint256 debit, uint256 balance);
    error DebitsCreditsMismatch(uint256 debits, uint256 credits);

    constructor(IEnclaveRegistry enclaveRegistry_, uint64 withdrawalDelay_) {
        if (address(enclaveRegistry_) == address(0)) revert ZeroAddress();
        enclaveRegistry = enclaveRegistry_;
        withdrawalDelay = withdrawalDelay_;
    }

    // ---- escrow ----

    /// Adds msg.value to the sender's escrow with `dispatcher` (a registered dispatcher enclave).
    function deposit(address dispatcher) external payable {
        if (msg.value == 0) revert ZeroAmount();
        if (!enclaveRegistry.isDispatcher(dispatcher)) revert NotRegisteredDispatcher(dispatcher);
        Account storage a = accounts[msg.sender][dispatcher];
        uint256 balance = uint256(a.balance) + msg.value;
        if (balance > type(uint128).max) revert AmountTooLarge(balance);
        a.balance = uint128(balance);
        emit Deposited(msg.sender, dispatcher, msg.value, balance);
    }

    /// Starts (or restarts) the delay before `amount` can be withdrawn.
    function requestWithdrawal(address dispatcher, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) revert AmountTooLarge(amount);
        uint64 unlockAt = uint64(block.timestamp) + withdrawalDelay;
        withdrawals[msg.sender][dispatcher] = Withdrawal(uint128(amount), unlockAt);
        emit WithdrawalRequested(msg.sender, dispatcher, amount, unlockAt);
    }

    function cancelWithdrawal(address dispatcher) external {
        if (withdrawals[msg.sender][dispatcher].unlockAt == 0) revert NoWithdrawalPending();
        delete withdrawals[msg.sender][dispatcher];
        emit WithdrawalCancelled(msg.sender, dispatcher);
    }

    /// After the delay, pays min(requested, escrow left) to the sender.
    function completeWithdrawal(address dispatcher) external {
        Withdrawal memory w = withdrawals[msg.sender][dispatcher];
        if (w.unlockAt == 0) revert NoWithdrawalPending();
        if (block.timestamp < w.unlockAt) revert WithdrawalLocked(w.unlockAt, block.timestamp);
        Account storage a = accounts[msg.sender][dispatcher];
        uint128 amount = w.amount < a.balance ? w.amount : a.balance;
        a.balance -= amount;
        delete withdrawals[msg.sender][dispatcher];
        emit Withdrawn(msg.sender, dispatcher, amount);
        _pay(msg.sender, amount);
    }

    /// Pays `amount` of the sender's credited balance to `to`.
    function withdrawCredits(address payable to, uint256 amount) external {
        if (to == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        uint256 available = credits[msg.sender];
        if (amount > available) revert InsufficientCredits(amount, available);
        credits[msg.sender] = available - amount;
        emit CreditsWithdrawn(msg.sender, to, amount);
        _pay(to, amount);
    }

    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---- settlement ----

    /// Settles a batch (docs/settlement.md §4.1). The sender must be a
    /// registered dispatcher enclave; it is the `dispatcher` of every
    /// authorisation.
    function settleBatch(
        bytes32 batchId,
        bytes32 root,
        uint32 taskCount,
        string calldata cid,
        SignedAuthorization[] calldata auths,
        Credit[] calldata creditList
    ) external {
        if (!enclaveRegistry.isDispatcher(msg.sender)) revert NotRegisteredDispatcher(msg.sender);
        Batch storage b = batches[batchId];
        if (b.root != 0) revert BatchAlreadySettled(batchId);
        if (root == 0) revert ZeroRoot();
        if (taskCount == 0) revert EmptyBatch();
        uint256 cidLen = bytes(cid).length;
        if (cidLen == 0 || cidLen > MAX_CID_LENGTH) revert BadBatchCid();

        uint256 debits = 0;
        {
            bytes32 domain = domainSeparator();
            for (uint256 i = 0; i < auths.length; i++) {
                debits += _debit(domain, i, auths[i]);
            }
        }
        uint256 total = _credit(batchId, creditList);
        if (debits != total) revert DebitsCreditsMismatch(debits, total);

        b.root = root;
        b.dispatcher = msg.sender;
        b.settledAt = uint64(block.timestamp);
        b.taskCount = taskCount;
        emit BatchSettled(batchId, msg.sender, root, taskCount, total, cid);
    }

    /// Adds each credit to its payee's withdrawable balance; returns the sum.
    function _credit(bytes32 batchId, Credit[] calldata creditList) private returns (uint256 total) {
        for (uint256 i = 0; i < creditList.length; i++) {
            Credit calldata c = creditList[i];
            if (c.payee == address(0)) revert ZeroAddress();
            credits[c.payee] += c.amount;
            total += c.amount;
            emit Credited(c.payee, batchId, c.amount);
        }
    }

    /// Checks one authorisation and debits the increase of its cumulative
    /// amount over what was settled before (zero for a replay).
    function _debit(bytes32 domain, uint256 index, SignedAuthorization calldata a) private returns (uint256) {
        bytes32 structHash = keccak256(
            abi.encode(
                AUTHORIZATION_TYPEHASH,
                a.user,
                msg.sender,
                a.taskId,
                a.serviceId,
                a.imageHash,
                a.datasetsHash,
                a.price,
                a.cumulative
            )
        );
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domain, structHash));
        address signer = _recover(digest, a.v, a.r, a.s);
        if (signer == address(0) || signer != a.user) revert BadAuthorizationSignature(index, a.user);

        Account storage acc = accounts[a.user][msg.sender];
        uint256 settled = acc.settled;
        if (a.cumulative <= settled) return 0;
        if (a.cumulative > type(uint128).max) revert AmountTooLarge(a.cumulative);
        uint256 debit = a.cumulative - settled;
        uint256 balance = acc.balance;
        if (debit > balance) revert InsufficientEscrow(a.user, debit, balance);
        acc.balance = uint128(balance - debit);
        acc.settled = uint128(a.cumulative);
        emit Debited(a.user, msg.sender, debit, a.cumulative);
        return debit;
    }

    // ---- audit ----

    /// keccak256 over the 96-byte encodings of the shares (docs/settlement.md §2.3).
    function dataSharesHash(DataShare[] calldata shares) public pure returns (bytes32) {
        bytes memory packed = new bytes(0);
        for (uint256 i = 0; i < shares.length; i++) {
            packed = bytes.concat(packed, abi.encode(shares[i].datasetId, shares[i].payee, shares[i].amount));
        }
        return keccak256(packed);
    }

    /// The Merkle leaf of a receipt (docs/settlement.md §3.1).
    function receiptLeaf(Receipt calldata r, DataShare[] calldata shares) public pure returns (bytes32) {
        // A struct of static fields encodes as its fields in order.
        return keccak256(abi.encode(RECEIPT_LEAF_TAG, r, dataSharesHash(shares)));
    }

    /// True when the receipt's split adds up and its leaf is in the tree whose
    /// root batch `batchId` recorded (sorted-pair tree, docs/settlement.md §3.2).
    function verifyReceipt(
        bytes32 batchId,
        Receipt calldata r,
        DataShare[] calldata shares,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 root = batches[batchId].root;
        if (root == 0) return false;
        uint256 sum = r.workerAmount + r.providerAmount;
        for (uint256 i = 0; i < shares.length; i++) {
            sum += shares[i].amount;
        }
        if (sum != r.price) return false;
        bytes32 h = receiptLeaf(r, shares);
        for (uint256 i = 0; i < proof.length; i++) {
            bytes32 p = proof[i];
            h = h < p ? keccak256(abi.encodePacked(h, p)) : keccak256(abi.encodePacked(p, h));
        }
        return h == root;
    }

    /// The EIP-712 digest a user signs for an authorisation (for clients to cross-check).
    function authorizationDigest(
        address user,
        address dispatcher,
        bytes32 taskId,
        bytes32 serviceId,
        bytes32 imageHash,
        bytes32 datasetsHash,
        uint256 price,
        uint256 cumulative
    ) external view returns (bytes32) {
        return _digest(
            keccak256(
                abi.encode(
                    AUTHORIZATION_TYPEHASH,
                    user,
                    dispatcher,
                    taskId,
                    serviceId,
                    imageHash,
                    datasetsHash,
                    price,
                    cumulative
                )
            )
        );
    }

    function escrowOf(address user, address dispatcher)
        external
        view
        returns (uint256 balance, uint256 settled, uint256 pendingWithdrawal, uint64 unlockAt)
    {
        Account memory a = accounts[user][dispatcher];
        Withdrawal memory w = withdrawals[user][dispatcher];
        return (a.balance, a.settled, w.amount, w.unlockAt);
    }

    function getBatch(bytes32 batchId) external view returns (Batch memory) {
        return batches[batchId];
    }
}
