/* Cryptographic primitives teex composes (never invents): hashes, HKDF,
 * AEAD, Ed25519, X25519, secp256k1 with Ethereum addresses, randomness and
 * encodings. Built on libsodium, OpenSSL 3, libsecp256k1 and nettle.
 *
 * Contexts are caller-allocated; sizes are in the prototypes; nothing here
 * does I/O or logs. Every function that takes a secret leaves no copy of it
 * behind. Call teex_crypto_init() once before anything else (it is cheap and
 * idempotent; every teex entry point calls it). */
#ifndef TEEX_CRYPTO_H
#define TEEX_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define TEEX_SHA256_LEN 32
#define TEEX_SHA512_LEN 64
#define TEEX_KECCAK256_LEN 32
#define TEEX_AEAD_KEY_LEN 32
#define TEEX_AEAD_NONCE_LEN 12  /* ChaCha20-Poly1305 (RFC 8439) */
#define TEEX_XAEAD_NONCE_LEN 24 /* XChaCha20-Poly1305 */
#define TEEX_AEAD_TAG_LEN 16
#define TEEX_ED25519_PK_LEN 32
#define TEEX_ED25519_SK_LEN 64
#define TEEX_ED25519_SIG_LEN 64
#define TEEX_X25519_LEN 32
#define TEEX_SECP256K1_SK_LEN 32
#define TEEX_SECP256K1_PUB_LEN 64 /* uncompressed x || y, no 0x04 prefix */
#define TEEX_SECP256K1_SIG_LEN 65 /* r || s || v, v in {0, 1} */
#define TEEX_ETH_ADDR_LEN 20
#define TEEX_ETH_ADDR_HEX_LEN 42 /* "0x" + 40 hex digits, EIP-55 case */

/* Initialises libsodium and the secp256k1 context. 0 or TEEX_ECRYPTO. */
int teex_crypto_init(void);

/* ---- hashes ---- */

/* Incremental contexts are plain data: copying one by value forks the hash
 * state (e.g. to precompute HMAC pads). */
struct teex_sha256_ctx {
  uint8_t opaque[128] __attribute__((aligned(8)));
};
void teex_sha256_init(struct teex_sha256_ctx *c);
void teex_sha256_update(struct teex_sha256_ctx *c, const void *p, size_t n);
void teex_sha256_final(struct teex_sha256_ctx *c, uint8_t out[32]);
void teex_sha256(const void *p, size_t n, uint8_t out[32]);
void teex_sha512(const void *p, size_t n, uint8_t out[64]);

/* Keccak-256 with Ethereum's original padding (0x01), not SHA3-256. */
struct teex_keccak_ctx {
  uint64_t state[25];
  size_t pos; /* bytes absorbed into the current block */
};
void teex_keccak256_init(struct teex_keccak_ctx *c);
void teex_keccak256_update(struct teex_keccak_ctx *c, const void *p, size_t n);
void teex_keccak256_final(struct teex_keccak_ctx *c, uint8_t out[32]);
void teex_keccak256(const void *p, size_t n, uint8_t out[32]);

void teex_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg,
                      size_t msg_len, uint8_t out[32]);

/* HKDF-SHA256 (RFC 5869): extract with salt (may be NULL/0), expand with
 * info into out_len bytes (at most 255 * 32). 0 or TEEX_EINVAL. */
int teex_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, const uint8_t *info, size_t info_len,
                     uint8_t *out, size_t out_len);

/* ---- AEAD ----
 * out receives ciphertext || 16-byte tag (pt_len + 16 bytes); in-place is
 * allowed (out == pt). Decrypt returns TEEX_EAUTH on any tampering and then
 * writes nothing meaningful to out (it is zeroed). */
int teex_aead_encrypt(const uint8_t key[32], const uint8_t nonce[12],
                      const void *ad, size_t ad_len, const void *pt,
                      size_t pt_len, uint8_t *out);
int teex_aead_decrypt(const uint8_t key[32], const uint8_t nonce[12],
                      const void *ad, size_t ad_len, const uint8_t *ct,
                      size_t ct_len, uint8_t *out);

/* XChaCha20-Poly1305: 24-byte nonces, safe to choose at random. */
int teex_xaead_encrypt(const uint8_t key[32], const uint8_t nonce[24],
                       const void *ad, size_t ad_len, const void *pt,
                       size_t pt_len, uint8_t *out);
int teex_xaead_decrypt(const uint8_t key[32], const uint8_t nonce[24],
                       const void *ad, size_t ad_len, const uint8_t *ct,
                       size_t ct_len, uint8_t *out);

/* Seal with a fresh random nonce: out = nonce(24) || ct || tag(16), i.e.
 * pt_len + TEEX_XAEAD_OVERHEAD bytes. Open checks and strips it; out gets
 * sealed_len - TEEX_XAEAD_OVERHEAD bytes. TEEX_EAUTH / TEEX_ETRUNC. */
#define TEEX_XAEAD_OVERHEAD (TEEX_XAEAD_NONCE_LEN + TEEX_AEAD_TAG_LEN)
int teex_xaead_seal(const uint8_t key[32], const void *ad, size_t ad_len,
                    const void *pt, size_t pt_len, uint8_t *out);
int teex_xaead_open(const uint8_t key[32], const void *ad, size_t ad_len,
                    const uint8_t *sealed, size_t sealed_len, uint8_t *out);

/* ---- Ed25519, X25519 ---- */
int teex_ed25519_keypair(uint8_t pk[32], uint8_t sk[64]);
/* Deterministic key pair from a 32-byte seed (RFC 8032 private key). */
int teex_ed25519_seed_keypair(const uint8_t seed[32], uint8_t pk[32],
                              uint8_t sk[64]);
int teex_ed25519_sign(const uint8_t sk[64], const void *msg, size_t msg_len,
                      uint8_t sig[64]);
/* 0 or TEEX_EBADSIG. */
int teex_ed25519_verify(const uint8_t pk[32], const void *msg, size_t msg_len,
                        const uint8_t sig[64]);
int teex_x25519_keypair(uint8_t pk[32], uint8_t sk[32]);
int teex_x25519_public(const uint8_t sk[32], uint8_t pk[32]);
/* TEEX_ECRYPTO for a low-order peer key (all-zero shared secret). */
int teex_x25519(uint8_t shared[32], const uint8_t sk[32],
                const uint8_t peer_pk[32]);

/* ---- secp256k1 and Ethereum ---- */
int teex_secp256k1_keypair(uint8_t sk[32], uint8_t pub[64]);
/* TEEX_EINVAL when sk is not a valid scalar. */
int teex_secp256k1_public(const uint8_t sk[32], uint8_t pub[64]);
/* Deterministic (RFC 6979), low-s, recoverable. sig = r || s || v. */
int teex_secp256k1_sign(const uint8_t sk[32], const uint8_t digest[32],
                        uint8_t sig[65]);
/* Accepts v in {0, 1, 27, 28}; rejects high-s. TEEX_EBADSIG. */
int teex_secp256k1_recover(const uint8_t digest[32], const uint8_t sig[65],
                           uint8_t pub[64]);
/* Parses a 33- or 65-byte SEC1 public key into 64 bytes. TEEX_EINVAL. */
int teex_secp256k1_parse_public(const uint8_t *sec1, size_t len,
                                uint8_t pub[64]);
void teex_eth_address(const uint8_t pub[64], uint8_t addr[20]);
int teex_eth_recover_address(const uint8_t digest[32], const uint8_t sig[65],
                             uint8_t addr[20]);
/* EIP-55 mixed-case checksum form, NUL-terminated. */
void teex_eth_address_hex(const uint8_t addr[20], char out[43]);
/* Parses "0x..." (40 hex digits). Mixed case must carry a valid EIP-55
 * checksum. TEEX_EINVAL. */
int teex_eth_address_parse(const char *s, uint8_t addr[20]);

/* ---- randomness and encodings ---- */
void teex_random(void *p, size_t n);
/* Lower-case hex; out must hold 2n+1 bytes; NUL-terminated. */
void teex_hex_encode(const void *p, size_t n, char *out);
/* Decodes hex (optional "0x" prefix, either case) into at most max bytes.
 * TEEX_EINVAL on odd length or a non-hex digit, TEEX_ETOOBIG past max. */
int teex_hex_decode(const char *s, uint8_t *out, size_t max, size_t *out_len);
/* Standard base64 with padding; out must hold teex_base64_len(n) bytes
 * (including the NUL). */
size_t teex_base64_len(size_t n);
void teex_base64_encode(const void *p, size_t n, char *out);
int teex_base64_decode(const char *s, uint8_t *out, size_t max,
                       size_t *out_len);

#endif
