/* Sealed record format of the store (internal): layout, parser, sealing and
 * opening, and the record's term in the store digest. Pure functions: no
 * I/O, no allocation. The layout is described in docs/internals/store.md.
 *
 *   off  0  u8   format (1)
 *   off  1  u8   flags (0)
 *   off  2  u16  key length (1..TEEX_STORE_KEY_MAX), big-endian
 *   off  4  u32  value length (0..TEEX_STORE_VALUE_MAX)
 *   off  8  u64  record version (the store's write sequence number)
 *   off 16       key part:   nonce(24) || XChaCha20-Poly1305(key) || tag(16)
 *                value part: nonce(24) || XChaCha20-Poly1305(val) || tag(16)
 */
#ifndef TEEX_STORE_RECORD_H
#define TEEX_STORE_RECORD_H

#include "teex/crypto.h"
#include "teex/store.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_REC_FORMAT 1
#define STORE_REC_HDR_LEN 16
#define STORE_REC_OVERHEAD (STORE_REC_HDR_LEN + 2 * TEEX_XAEAD_OVERHEAD)
/* LMDB key of a record: namespace hash (16) || key hash (32). */
#define STORE_NS_HASH_LEN 16
#define STORE_KEY_HASH_LEN 32
#define STORE_LKEY_LEN (STORE_NS_HASH_LEN + STORE_KEY_HASH_LEN)
#define STORE_TERM_LEN 32

/* HMAC-SHA256 (RFC 2104) with the key's inner and outer pad blocks absorbed
 * once: each MAC then costs two SHA-256 compressions fewer than
 * teex_hmac_sha256, which halves the cost of the store's short keyed hashes.
 * Holds key material: keep it in locked memory, wipe with store_mac_wipe.
 * Relies on struct teex_sha256_ctx being a plain value (copied per MAC). */
struct store_mac {
  struct teex_sha256_ctx inner;
  struct teex_sha256_ctx outer;
};
void store_mac_init(struct store_mac *m, const uint8_t key[32]);
void store_mac(const struct store_mac *m, const void *msg, size_t n,
               uint8_t out[32]);
void store_mac_wipe(struct store_mac *m);

/* A parsed record: pointers into the caller's bytes. */
struct store_rec {
  size_t key_len;
  size_t val_len;
  uint64_t version;
  const uint8_t *hdr;      /* STORE_REC_HDR_LEN bytes */
  const uint8_t *key_part; /* key_len + TEEX_XAEAD_OVERHEAD bytes */
  const uint8_t *val_part; /* val_len + TEEX_XAEAD_OVERHEAD bytes */
};

/* Bytes of a record holding key_len and val_len bytes (no overflow for
 * lengths within the maxima). */
size_t store_rec_size(size_t key_len, size_t val_len);

/* Parses n bytes into r. Checks format, flags, bounds and the exact length.
 * 0, TEEX_ETRUNC, TEEX_EFORMAT, TEEX_EVERSION, TEEX_ETOOBIG. */
int store_rec_parse(const uint8_t *p, size_t n, struct store_rec *r);

/* Writes a record of store_rec_size(key_len, val_len) bytes into out, sealed
 * under rec_key and bound to store_id, the LMDB key lkey and version. */
int store_rec_seal(const uint8_t rec_key[32], const uint8_t store_id[32],
                   const uint8_t lkey[STORE_LKEY_LEN], uint64_t version,
                   const void *key, size_t key_len, const void *val,
                   size_t val_len, uint8_t *out);

/* Decrypts the key part into key_out (r->key_len bytes). TEEX_EAUTH. */
int store_rec_open_key(const uint8_t rec_key[32], const uint8_t store_id[32],
                       const uint8_t lkey[STORE_LKEY_LEN],
                       const struct store_rec *r, uint8_t *key_out);

/* Decrypts the value part into val_out (r->val_len bytes). TEEX_EAUTH. */
int store_rec_open_val(const uint8_t rec_key[32], const uint8_t store_id[32],
                       const uint8_t lkey[STORE_LKEY_LEN],
                       const struct store_rec *r, uint8_t *val_out);

/* The record's term in the digest accumulator: HMAC(acc_key, lkey || header
 * || both nonces and tags). The tags commit to the ciphertexts (a changed
 * ciphertext under the same tag fails at read), so open need not read or
 * hash whole values. */
void store_rec_term(const struct store_mac *acc,
                    const uint8_t lkey[STORE_LKEY_LEN],
                    const struct store_rec *r, uint8_t term[STORE_TERM_LEN]);

/* Big-endian helpers shared with store.c. */
void store_put_u16(uint8_t *p, uint16_t v);
void store_put_u32(uint8_t *p, uint32_t v);
void store_put_u64(uint8_t *p, uint64_t v);
uint16_t store_get_u16(const uint8_t *p);
uint32_t store_get_u32(const uint8_t *p);
uint64_t store_get_u64(const uint8_t *p);

#endif
