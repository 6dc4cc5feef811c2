/* The report-data binding: the canonical encoding of a component's role,
 * public keys, issue time and a verifier's nonce, whose SHA-512 is the
 * evidence's report data (see docs/attestation.md, "Report data").
 *
 *   "teex-report-data-v1" 0x00, then fields tag u8 | len u16 | value in
 *   increasing tag order, each at most once:
 *     1 role (1..31 bytes, required)   2 issued_at (u64, required)
 *     3 TLS SPKI SHA-256 (32)          4 secp256k1 public key x||y (64)
 *     5 X25519 public key (32)         6 verifier nonce (32) */
#include "teex/tee.h"

#include "tee/tee_internal.h"
#include "teex/crypto.h"
#include "teex/mem.h"

#include <string.h>

#define BINDING_DOMAIN "teex-report-data-v1"
#define BINDING_DOMAIN_LEN (sizeof BINDING_DOMAIN) /* with the NUL */

enum {
  TAG_ROLE = 1,
  TAG_ISSUED_AT = 2,
  TAG_TLS = 3,
  TAG_SECP256K1 = 4,
  TAG_X25519 = 5,
  TAG_NONCE = 6,
};

int teex_tee_role_valid(const char *s) {
  if (s == NULL)
    return 0;
  size_t n = strnlen(s, TEEX_TEE_ROLE_MAX + 1);
  if (n == 0 || n > TEEX_TEE_ROLE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return 0;
  }
  return 1;
}

static size_t put_field(uint8_t *out, size_t off, uint8_t tag, const void *v,
                        size_t n) {
  out[off] = tag;
  tee_put16(out + off + 1, (uint16_t)n);
  memcpy(out + off + 3, v, n);
  return off + 3 + n;
}

int teex_tee_binding_encode(const struct teex_tee_binding *b,
                            uint8_t out[TEEX_TEE_BINDING_MAX], size_t *len) {
  if (!teex_tee_role_valid(b->role))
    return TEEX_EINVAL;
  size_t off = 0;
  memcpy(out, BINDING_DOMAIN, BINDING_DOMAIN_LEN);
  off = BINDING_DOMAIN_LEN;
  off = put_field(out, off, TAG_ROLE, b->role, strlen(b->role));
  uint8_t t[8];
  tee_put64(t, b->issued_at);
  off = put_field(out, off, TAG_ISSUED_AT, t, 8);
  if (b->has_tls)
    off = put_field(out, off, TAG_TLS, b->tls_spki_sha256, 32);
  if (b->has_secp256k1)
    off = put_field(out, off, TAG_SECP256K1, b->secp256k1_pub, 64);
  if (b->has_x25519)
    off = put_field(out, off, TAG_X25519, b->x25519_pub, 32);
  if (b->has_nonce)
    off = put_field(out, off, TAG_NONCE, b->nonce, TEEX_TEE_NONCE_LEN);
  *len = off;
  return 0;
}

int teex_tee_binding_decode(const uint8_t *p, size_t len,
                            struct teex_tee_binding *b, struct teex_err *err) {
  memset(b, 0, sizeof *b);
  if (len > TEEX_TEE_BINDING_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "binding longer than %d bytes",
                        TEEX_TEE_BINDING_MAX);
  if (len < BINDING_DOMAIN_LEN ||
      memcmp(p, BINDING_DOMAIN, BINDING_DOMAIN_LEN) != 0)
    return teex_err_set(err, TEEX_EFORMAT,
                        "binding does not start with " BINDING_DOMAIN);
  size_t off = BINDING_DOMAIN_LEN;
  int last = 0;
  while (off < len) {
    if (len - off < 3)
      return teex_err_set(err, TEEX_EFORMAT, "binding field truncated");
    uint8_t tag = p[off];
    size_t n = tee_get16(p + off + 1);
    const uint8_t *v = p + off + 3;
    if (n > len - off - 3)
      return teex_err_set(err, TEEX_EFORMAT, "binding field %u truncated", tag);
    if (tag <= last)
      return teex_err_set(err, TEEX_EFORMAT,
                          "binding field %u out of order or repeated", tag);
    last = tag;
    switch (tag) {
    case TAG_ROLE:
      if (n == 0 || n > TEEX_TEE_ROLE_MAX)
        return teex_err_set(err, TEEX_EFORMAT, "binding role length %zu", n);
      memcpy(b->role, v, n);
      b->role[n] = '\0';
      if (!teex_tee_role_valid(b->role) || strlen(b->role) != n)
        return teex_err_set(err, TEEX_EFORMAT, "binding role is not a name");
      break;
    case TAG_ISSUED_AT:
      if (n != 8)
        return teex_err_set(err, TEEX_EFORMAT, "binding issued_at length");
      b->issued_at = tee_get64(v);
      break;
    case TAG_TLS:
      if (n != 32)
        return teex_err_set(err, TEEX_EFORMAT, "binding TLS key length");
      b->has_tls = 1;
      memcpy(b->tls_spki_sha256, v, 32);
      break;
    case TAG_SECP256K1:
      if (n != 64)
        return teex_err_set(err, TEEX_EFORMAT, "binding secp256k1 length");
      b->has_secp256k1 = 1;
      memcpy(b->secp256k1_pub, v, 64);
      teex_eth_address(b->secp256k1_pub, b->eth_address);
      break;
    case TAG_X25519:
      if (n != 32)
        return teex_err_set(err, TEEX_EFORMAT, "binding X25519 length");
      b->has_x25519 = 1;
      memcpy(b->x25519_pub, v, 32);
      break;
    case TAG_NONCE:
      if (n != TEEX_TEE_NONCE_LEN)
        return teex_err_set(err, TEEX_EFORMAT, "binding nonce length");
      b->has_nonce = 1;
      memcpy(b->nonce, v, TEEX_TEE_NONCE_LEN);
      break;
    default:
      return teex_err_set(err, TEEX_EFORMAT, "binding field %u unknown", tag);
    }
    off += 3 + n;
  }
  if (b->role[0] == '\0' || last < TAG_ISSUED_AT)
    return teex_err_set(err, TEEX_EFORMAT,
                        "binding lacks its role or issue time");
  return 0;
}

int teex_tee_report_data(const struct teex_tee_binding *b,
                         uint8_t out[TEEX_TEE_REPORT_DATA_LEN]) {
  uint8_t enc[TEEX_TEE_BINDING_MAX];
  size_t n;
  int rc = teex_tee_binding_encode(b, enc, &n);
  if (rc != 0)
    return rc;
  teex_sha512(enc, n, out);
  return 0;
}

int teex_tee_report_data_check(const struct teex_tee_binding *b,
                               const uint8_t rd[TEEX_TEE_REPORT_DATA_LEN],
                               struct teex_err *err) {
  uint8_t want[TEEX_TEE_REPORT_DATA_LEN];
  if (teex_tee_report_data(b, want) != 0)
    return teex_err_set(err, TEEX_EATTEST, "binding has an invalid role");
  if (!teex_ct_equal(want, rd, sizeof want))
    return teex_err_set(err, TEEX_EATTEST,
                        "report data does not match the bound keys");
  return 0;
}
