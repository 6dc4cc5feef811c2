/* Sealed record format (see record.h and docs/internals/store.md). */
#include "store/record.h"

#include "teex/error.h"
#include "teex/mem.h"

#include <string.h>

/* Label opening every record's associated data; changing the format changes
 * the label. */
static const char rec_label[] = "teex-store-rec-v1";
#define REC_LABEL_LEN (sizeof rec_label - 1)
/* label || store_id || lkey || header || part || key nonce || key tag */
#define REC_AD_MAX                                                             \
  (REC_LABEL_LEN + 32 + STORE_LKEY_LEN + STORE_REC_HDR_LEN + 1 +               \
   TEEX_XAEAD_NONCE_LEN + TEEX_AEAD_TAG_LEN)

void store_put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

void store_put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}

void store_put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint16_t store_get_u16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t store_get_u32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

uint64_t store_get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

void store_mac_init(struct store_mac *m, const uint8_t key[32]) {
  uint8_t pad[64];
  memset(pad, 0x36, sizeof pad);
  for (int i = 0; i < 32; i++)
    pad[i] ^= key[i];
  teex_sha256_init(&m->inner);
  teex_sha256_update(&m->inner, pad, sizeof pad);
  memset(pad, 0x5c, sizeof pad);
  for (int i = 0; i < 32; i++)
    pad[i] ^= key[i];
  teex_sha256_init(&m->outer);
  teex_sha256_update(&m->outer, pad, sizeof pad);
  teex_wipe(pad, sizeof pad);
}

void store_mac(const struct store_mac *m, const void *msg, size_t n,
               uint8_t out[32]) {
  struct teex_sha256_ctx c = m->inner;
  uint8_t h[32];
  teex_sha256_update(&c, msg, n);
  teex_sha256_final(&c, h); /* wipes c */
  c = m->outer;
  teex_sha256_update(&c, h, sizeof h);
  teex_sha256_final(&c, out);
  teex_wipe(h, sizeof h);
}

void store_mac_wipe(struct store_mac *m) {
  teex_wipe(m, sizeof *m);
}

size_t store_rec_size(size_t key_len, size_t val_len) {
  return STORE_REC_OVERHEAD + key_len + val_len;
}

int store_rec_parse(const uint8_t *p, size_t n, struct store_rec *r) {
  if (n < STORE_REC_HDR_LEN)
    return TEEX_ETRUNC;
  if (p[0] != STORE_REC_FORMAT)
    return TEEX_EVERSION;
  if (p[1] != 0)
    return TEEX_EFORMAT;
  size_t key_len = store_get_u16(p + 2);
  size_t val_len = store_get_u32(p + 4);
  if (key_len == 0)
    return TEEX_EFORMAT;
  if (key_len > TEEX_STORE_KEY_MAX || val_len > TEEX_STORE_VALUE_MAX)
    return TEEX_ETOOBIG;
  /* Both lengths are bounded, so the sum cannot overflow. */
  size_t want = store_rec_size(key_len, val_len);
  if (n < want)
    return TEEX_ETRUNC;
  if (n > want)
    return TEEX_EFORMAT;
  r->key_len = key_len;
  r->val_len = val_len;
  r->version = store_get_u64(p + 8);
  r->hdr = p;
  r->key_part = p + STORE_REC_HDR_LEN;
  r->val_part = r->key_part + key_len + TEEX_XAEAD_OVERHEAD;
  return 0;
}

/* Builds the associated data of one part. For the value part it includes
 * the key part's nonce and tag, binding the value to this very key part. */
static size_t rec_ad(uint8_t ad[REC_AD_MAX], const uint8_t store_id[32],
                     const uint8_t lkey[STORE_LKEY_LEN], const uint8_t *hdr,
                     char part, const uint8_t *key_part, size_t key_len) {
  size_t n = 0;
  memcpy(ad + n, rec_label, REC_LABEL_LEN);
  n += REC_LABEL_LEN;
  memcpy(ad + n, store_id, 32);
  n += 32;
  memcpy(ad + n, lkey, STORE_LKEY_LEN);
  n += STORE_LKEY_LEN;
  memcpy(ad + n, hdr, STORE_REC_HDR_LEN);
  n += STORE_REC_HDR_LEN;
  ad[n++] = (uint8_t)part;
  if (part == 'V') {
    memcpy(ad + n, key_part, TEEX_XAEAD_NONCE_LEN);
    n += TEEX_XAEAD_NONCE_LEN;
    memcpy(ad + n, key_part + TEEX_XAEAD_NONCE_LEN + key_len,
           TEEX_AEAD_TAG_LEN);
    n += TEEX_AEAD_TAG_LEN;
  }
  return n;
}

int store_rec_seal(const uint8_t rec_key[32], const uint8_t store_id[32],
                   const uint8_t lkey[STORE_LKEY_LEN], uint64_t version,
                   const void *key, size_t key_len, const void *val,
                   size_t val_len, uint8_t *out) {
  if (key_len == 0 || key_len > TEEX_STORE_KEY_MAX ||
      val_len > TEEX_STORE_VALUE_MAX)
    return TEEX_EINVAL;
  out[0] = STORE_REC_FORMAT;
  out[1] = 0;
  store_put_u16(out + 2, (uint16_t)key_len);
  store_put_u32(out + 4, (uint32_t)val_len);
  store_put_u64(out + 8, version);
  uint8_t *key_part = out + STORE_REC_HDR_LEN;
  uint8_t *val_part = key_part + key_len + TEEX_XAEAD_OVERHEAD;
  uint8_t ad[REC_AD_MAX];
  size_t ad_len = rec_ad(ad, store_id, lkey, out, 'K', NULL, 0);
  int rc = teex_xaead_seal(rec_key, ad, ad_len, key, key_len, key_part);
  if (rc != 0)
    return rc;
  ad_len = rec_ad(ad, store_id, lkey, out, 'V', key_part, key_len);
  /* teex_xaead_seal with a zero-length plaintext reads nothing from val. */
  return teex_xaead_seal(rec_key, ad, ad_len, val_len ? val : "", val_len,
                         val_part);
}

int store_rec_open_key(const uint8_t rec_key[32], const uint8_t store_id[32],
                       const uint8_t lkey[STORE_LKEY_LEN],
                       const struct store_rec *r, uint8_t *key_out) {
  uint8_t ad[REC_AD_MAX];
  size_t ad_len = rec_ad(ad, store_id, lkey, r->hdr, 'K', NULL, 0);
  int rc = teex_xaead_open(rec_key, ad, ad_len, r->key_part,
                           r->key_len + TEEX_XAEAD_OVERHEAD, key_out);
  return rc == 0 ? 0 : TEEX_EAUTH;
}

int store_rec_open_val(const uint8_t rec_key[32], const uint8_t store_id[32],
                       const uint8_t lkey[STORE_LKEY_LEN],
                       const struct store_rec *r, uint8_t *val_out) {
  uint8_t ad[REC_AD_MAX];
  size_t ad_len =
      rec_ad(ad, store_id, lkey, r->hdr, 'V', r->key_part, r->key_len);
  uint8_t empty[1];
  int rc = teex_xaead_open(rec_key, ad, ad_len, r->val_part,
                           r->val_len + TEEX_XAEAD_OVERHEAD,
                           r->val_len ? val_out : empty);
  return rc == 0 ? 0 : TEEX_EAUTH;
}

void store_rec_term(const struct store_mac *acc,
                    const uint8_t lkey[STORE_LKEY_LEN],
                    const struct store_rec *r, uint8_t term[STORE_TERM_LEN]) {
  /* lkey || header || key nonce || key tag || value nonce || value tag */
  uint8_t msg[STORE_LKEY_LEN + STORE_REC_HDR_LEN +
              2 * (TEEX_XAEAD_NONCE_LEN + TEEX_AEAD_TAG_LEN)];
  size_t n = 0;
  memcpy(msg + n, lkey, STORE_LKEY_LEN);
  n += STORE_LKEY_LEN;
  memcpy(msg + n, r->hdr, STORE_REC_HDR_LEN);
  n += STORE_REC_HDR_LEN;
  memcpy(msg + n, r->key_part, TEEX_XAEAD_NONCE_LEN);
  n += TEEX_XAEAD_NONCE_LEN;
  memcpy(msg + n, r->key_part + TEEX_XAEAD_NONCE_LEN + r->key_len,
         TEEX_AEAD_TAG_LEN);
  n += TEEX_AEAD_TAG_LEN;
  memcpy(msg + n, r->val_part, TEEX_XAEAD_NONCE_LEN);
  n += TEEX_XAEAD_NONCE_LEN;
  memcpy(msg + n, r->val_part + TEEX_XAEAD_NONCE_LEN + r->val_len,
         TEEX_AEAD_TAG_LEN);
  n += TEEX_AEAD_TAG_LEN;
  store_mac(acc, msg, n, term);
}
