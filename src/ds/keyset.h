/* Internal: a TEE-DS group's keys, one per key epoch (group key rotation).
 *
 * Encoded (the plaintext sealed in STATE/group.key, and what a member hands
 * to another over RA-TLS after the 16-byte group id):
 *   "TXK1" | n u32 | n x (epoch u32 | key 32)      little-endian
 * 1 <= n <= TEEX_DS_KEYSET_MAX, epochs strictly increasing. A bare 32-byte
 * key (the format before rotation) decodes as epoch 0. The last epoch is
 * the current one: what new entries and snapshots are sealed under. */
#ifndef TEEX_DS_KEYSET_H
#define TEEX_DS_KEYSET_H

#include "teex/error.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_DS_KEYSET_MAX 64
#define TEEX_DS_KEYSET_ENC_MAX (8 + TEEX_DS_KEYSET_MAX * 36)

struct teex_ds_keyset {
  uint32_t n;
  uint32_t epoch[TEEX_DS_KEYSET_MAX];
  uint8_t key[TEEX_DS_KEYSET_MAX][32];
};

/* Into out (at least TEEX_DS_KEYSET_ENC_MAX bytes); returns the length. */
size_t teex_ds_keyset_encode(const struct teex_ds_keyset *k, uint8_t *out);
/* TEEX_EFORMAT on anything but the layout above. */
int teex_ds_keyset_decode(const uint8_t *p, size_t n, struct teex_ds_keyset *k,
                          struct teex_err *err);
/* The key of epoch e, or NULL. */
const uint8_t *teex_ds_keyset_get(const struct teex_ds_keyset *k, uint32_t e);
/* Adds (e, key) unless e is already there (then its key must be the same:
 * TEEX_EAUTH otherwise). Keeps epochs sorted. TEEX_ETOOBIG when full. */
int teex_ds_keyset_add(struct teex_ds_keyset *k, uint32_t e,
                       const uint8_t key[32], struct teex_err *err);
/* Adds every epoch of src that k lacks (same checks). */
int teex_ds_keyset_merge(struct teex_ds_keyset *k,
                         const struct teex_ds_keyset *src,
                         struct teex_err *err);
/* The current (highest) epoch; 0 for an empty set. */
uint32_t teex_ds_keyset_current(const struct teex_ds_keyset *k);

#endif
