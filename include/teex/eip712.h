/* EIP-712 typed structured data: encodeType, hashStruct, the domain
 * separator and the signing digest keccak256(0x19 0x01 || domainSeparator ||
 * hashStruct(message)), with signing and recovery. Users sign payment
 * authorisations with it, so any wallet can produce them.
 *
 * Typed data is given as the JSON that eth_signTypedData_v4 takes:
 *   {"types": {"EIP712Domain": [...], "Mail": [{"name":..,"type":..}]},
 *    "primaryType": "Mail", "domain": {...}, "message": {...}}
 * Numbers may be JSON integers, decimal strings or 0x-hex strings (negative
 * decimal for intN); bytes and bytesN are 0x-hex; addresses 0x-hex. When
 * "EIP712Domain" is not in types it is inferred from the domain's fields
 * (name, version, chainId, verifyingContract, salt), as wallets do. */
#ifndef TEEX_EIP712_H
#define TEEX_EIP712_H

#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_EIP712_MAX_JSON (1u << 20)
#define TEEX_EIP712_MAX_DEPTH 32

/* The full signing digest of a typed-data JSON document. TEEX_EFORMAT with
 * a message naming the offending field. */
int teex_eip712_hash(const char *json, uint8_t digest[32],
                     struct teex_err *err);

/* The domain separator and the message's hashStruct separately. */
int teex_eip712_hash_parts(const char *json, uint8_t domain_separator[32],
                           uint8_t message_hash[32], struct teex_err *err);

/* encodeType(primary) for the types object of typed_json (a document as
 * above; only "types" is read): "Mail(Person from,Person to,string
 * contents)Person(string name,address wallet)". */
int teex_eip712_encode_type(const char *typed_json, const char *primary,
                            char *out, size_t cap, struct teex_err *err);

/* keccak256(0x19 0x01 || domain_separator || struct_hash). */
void teex_eip712_digest(const uint8_t domain_separator[32],
                        const uint8_t struct_hash[32], uint8_t digest[32]);

/* Signs a digest; sig = r || s || v with v in {27, 28} as wallets return. */
int teex_eip712_sign(const uint8_t sk[32], const uint8_t digest[32],
                     uint8_t sig[65]);
/* Recovers the signer's address (v in {0, 1, 27, 28}; high s rejected).
 * TEEX_EBADSIG. */
int teex_eip712_recover(const uint8_t digest[32], const uint8_t sig[65],
                        uint8_t addr[20]);

#endif
