/* Web3 Secret Storage (version 3 keystore JSON), so keys move to and from
 * geth, ethers and other wallets: scrypt or PBKDF2-HMAC-SHA256 key
 * derivation, AES-128-CTR, MAC = keccak256(dk[16..32) || ciphertext).
 * The password is taken as bytes: ethers NFKC-normalises it first, which
 * changes nothing for ASCII passwords. */
#ifndef TEEX_KEYSTORE_H
#define TEEX_KEYSTORE_H

#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_KEYSTORE_MAX_JSON (64u * 1024u)
/* Bounds on KDF work accepted from a file: scrypt memory 128*N*r at most
 * 1 GiB (geth's "standard" N=2^18, r=8 uses 256 MiB); PBKDF2 at most 2^24
 * iterations. */
#define TEEX_KEYSTORE_MAX_SCRYPT_MEM (1ull << 30)
#define TEEX_KEYSTORE_MAX_PBKDF2_ITER (1u << 24)

struct teex_keystore_params {
  uint64_t scrypt_n; /* power of two >= 2; geth standard 262144 */
  uint32_t scrypt_r; /* 8 */
  uint32_t scrypt_p; /* 1 */
};

/* geth's "standard" parameters: N = 2^18, r = 8, p = 1. */
extern const struct teex_keystore_params teex_keystore_standard;

/* Encrypts sk under password into a new keystore JSON document (random salt,
 * IV and UUID; scrypt). params NULL means teex_keystore_standard. *json_out
 * is NUL-terminated, owned by the caller (free()). */
int teex_keystore_encrypt(const uint8_t sk[32], const char *password,
                          const struct teex_keystore_params *params,
                          char **json_out, struct teex_err *err);

/* Decrypts a keystore (scrypt or pbkdf2; "crypto" or "Crypto"). Checks the
 * MAC in constant time (TEEX_EAUTH: wrong password or tampered file), that
 * the key is a valid secp256k1 scalar, and that it matches the "address"
 * field when there is one. sk receives the key (wipe it after use); addr
 * (may be NULL) its address. */
int teex_keystore_decrypt(const char *json, const char *password,
                          uint8_t sk[32], uint8_t addr[20],
                          struct teex_err *err);

#endif
