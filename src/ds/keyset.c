/* A TEE-DS group's keys per epoch: codec and merge (see keyset.h). */
#include "ds/keyset.h"

#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/mem.h"

#include <string.h>

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

size_t teex_ds_keyset_encode(const struct teex_ds_keyset *k, uint8_t *out) {
  memcpy(out, "TXK1", 4);
  put_u32(out + 4, k->n);
  for (uint32_t i = 0; i < k->n; i++) {
    put_u32(out + 8 + i * 36, k->epoch[i]);
    memcpy(out + 12 + i * 36, k->key[i], 32);
  }
  return 8 + (size_t)k->n * 36;
}

int teex_ds_keyset_decode(const uint8_t *p, size_t n, struct teex_ds_keyset *k,
                          struct teex_err *err) {
  memset(k, 0, sizeof(*k));
  if (n == 32) {
    k->n = 1;
    k->epoch[0] = 0;
    memcpy(k->key[0], p, 32);
    return 0;
  }
  if (n < 8 || memcmp(p, "TXK1", 4) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "not a group key set");
  uint32_t cnt = get_u32(p + 4);
  if (cnt == 0 || cnt > TEEX_DS_KEYSET_MAX || n != 8 + (size_t)cnt * 36)
    return teex_err_set(err, TEEX_EFORMAT,
                        "group key set: bad count or length");
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t e = get_u32(p + 8 + i * 36);
    if (i > 0 && e <= k->epoch[i - 1]) {
      teex_wipe(k, sizeof(*k));
      return teex_err_set(err, TEEX_EFORMAT,
                          "group key set: epochs not increasing");
    }
    k->epoch[i] = e;
    memcpy(k->key[i], p + 12 + i * 36, 32);
  }
  k->n = cnt;
  return 0;
}

const uint8_t *teex_ds_keyset_get(const struct teex_ds_keyset *k, uint32_t e) {
  for (uint32_t i = 0; i < k->n; i++)
    if (k->epoch[i] == e)
      return k->key[i];
  return NULL;
}

int teex_ds_keyset_add(struct teex_ds_keyset *k, uint32_t e,
                       const uint8_t key[32], struct teex_err *err) {
  const uint8_t *have = teex_ds_keyset_get(k, e);
  if (have != NULL)
    return teex_ct_equal(have, key, 32)
               ? 0
               : teex_err_set(err, TEEX_EAUTH,
                              "two different keys for group key epoch %u", e);
  if (k->n >= TEEX_DS_KEYSET_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "at most %d group key epochs",
                        TEEX_DS_KEYSET_MAX);
  uint32_t i = k->n;
  while (i > 0 && k->epoch[i - 1] > e) {
    k->epoch[i] = k->epoch[i - 1];
    memcpy(k->key[i], k->key[i - 1], 32);
    i--;
  }
  k->epoch[i] = e;
  memcpy(k->key[i], key, 32);
  k->n++;
  return 0;
}

int teex_ds_keyset_merge(struct teex_ds_keyset *k,
                         const struct teex_ds_keyset *src,
                         struct teex_err *err) {
  for (uint32_t i = 0; i < src->n; i++) {
    int rc = teex_ds_keyset_add(k, src->epoch[i], src->key[i], err);
    if (rc != 0)
      return rc;
  }
  return 0;
}

uint32_t teex_ds_keyset_current(const struct teex_ds_keyset *k) {
  return k->n ? k->epoch[k->n - 1] : 0;
}

_Static_assert(TEEX_DS_KEYSET_ENC_MAX == TEEX_DS_KEYS_ENC_MAX,
               "include/teex/ds.h and keyset.h agree on the largest set");
