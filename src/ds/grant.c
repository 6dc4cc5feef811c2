/* SM grants for a worker's access to a service's TEE-DS namespace (see
 * ds.h). No I/O: the SM signs, the replica's server verifies. */
#include "teex/crypto.h"
#include "teex/ds.h"

#include <string.h>

static const char DOMAIN[] = "teex ds grant v1";
#define GRANT_MAGIC "TXG1"
#define GRANT_FIXED (4 + 20 + 8 + 1)

static int ns_valid(const char *ns, size_t n) {
  if (n == 0 || n > TEEX_DS_NS_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = ns[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

static void grant_digest(const uint8_t *body, size_t n, uint8_t out[32]) {
  struct teex_keccak_ctx k;
  teex_keccak256_init(&k);
  teex_keccak256_update(&k, DOMAIN, sizeof DOMAIN - 1);
  teex_keccak256_update(&k, body, n);
  teex_keccak256_final(&k, out);
}

int teex_ds_grant_sign(const uint8_t sm_sk[32], const uint8_t worker[20],
                       const char *ns, uint64_t expires_at,
                       uint8_t out[TEEX_DS_GRANT_MAX], size_t *out_len) {
  size_t ns_len = ns != NULL ? strnlen(ns, TEEX_DS_NS_MAX + 1) : 0;
  if (!ns_valid(ns, ns_len))
    return TEEX_EINVAL;
  size_t n = 0;
  memcpy(out, GRANT_MAGIC, 4);
  n += 4;
  memcpy(out + n, worker, 20);
  n += 20;
  for (int i = 7; i >= 0; i--)
    out[n++] = (uint8_t)(expires_at >> (8 * i));
  out[n++] = (uint8_t)ns_len;
  memcpy(out + n, ns, ns_len);
  n += ns_len;
  uint8_t digest[32];
  grant_digest(out, n, digest);
  int rc = teex_secp256k1_sign(sm_sk, digest, out + n);
  if (rc != 0)
    return rc;
  *out_len = n + 65;
  return 0;
}

int teex_ds_grant_verify(const uint8_t *g, size_t len,
                         const uint8_t sm_addr[20], const uint8_t caller[20],
                         const char *ns, uint64_t now, struct teex_err *err) {
  if (len < GRANT_FIXED + 1 + 65 || len > TEEX_DS_GRANT_MAX ||
      memcmp(g, GRANT_MAGIC, 4) != 0)
    return teex_err_set(err, TEEX_EFORMAT, "grant: malformed");
  size_t ns_len = g[GRANT_FIXED - 1];
  if (len != GRANT_FIXED + ns_len + 65 ||
      !ns_valid((const char *)g + GRANT_FIXED, ns_len))
    return teex_err_set(err, TEEX_EFORMAT, "grant: malformed");
  uint8_t digest[32], signer[20];
  grant_digest(g, GRANT_FIXED + ns_len, digest);
  if (teex_eth_recover_address(digest, g + GRANT_FIXED + ns_len, signer) != 0 ||
      memcmp(signer, sm_addr, 20) != 0)
    return teex_err_set(err, TEEX_EBADSIG, "grant: not signed by the SM");
  if (memcmp(g + 4, caller, 20) != 0)
    return teex_err_set(err, TEEX_EPERM, "grant: issued to another worker");
  if (ns == NULL || strlen(ns) != ns_len ||
      memcmp(g + GRANT_FIXED, ns, ns_len) != 0)
    return teex_err_set(err, TEEX_EPERM, "grant: for another namespace");
  uint64_t exp = 0;
  for (int i = 0; i < 8; i++)
    exp = exp << 8 | g[24 + i];
  if (now >= exp)
    return teex_err_set(err, TEEX_EEXPIRED, "grant: expired");
  return 0;
}
