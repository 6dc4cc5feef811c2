// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Eip712 — the teex EIP-712 domain (docs/settlement.md §1) and
/// signature recovery shared by every teex contract.
abstract contract Eip712 {
    /// A signature whose v, s or recovered address is unacceptable.
    error InvalidSignature();

    struct Sig {
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NAME_HASH = keccak256("teex");
    bytes32 internal constant VERSION_HASH = keccak256("1");
    // secp256k1 order / 2: larger s values are the malleable twin (EIP-2).
    uint256 internal constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    constructor() {
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// The EIP-712 domain separator of this contract on the current chain.
    function domainSeparator() public view returns (bytes32) {
        // A fork changes the chain id; the cached value would then sign for the old chain.
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
    }

    /// Recovers the signer of an EIP-712 digest; address(0) when the
    /// signature is malformed (callers compare against a non-zero address).
    function _recover(bytes32 digest, uint8 v, bytes32 r, bytes32 s) internal pure returns (address) {
        if (v != 27 && v != 28) return address(0);
        if (uint256(s) > HALF_ORDER || s == 0 || r == 0) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
