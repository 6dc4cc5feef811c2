/* SM grants (src/ds/grant.c): a signed grant verifies for its worker,
 * namespace and time, and every other case is refused with its own code —
 * another signer, worker or namespace, expiry, and any flipped byte or
 * wrong length. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/ds.h"

#include <string.h>

static void test_sign_verify(void **state) {
  (void)state;
  uint8_t sk[32], pub[64], sm[20], other_sk[32];
  assert_int_equal(teex_crypto_init(), 0);
  assert_int_equal(teex_secp256k1_keypair(sk, pub), 0);
  teex_eth_address(pub, sm);
  assert_int_equal(teex_secp256k1_keypair(other_sk, pub), 0);
  uint8_t worker[20], worker2[20];
  memset(worker, 0x11, 20);
  memset(worker2, 0x22, 20);
  uint8_t g[TEEX_DS_GRANT_MAX];
  size_t n;
  struct teex_err err;
  assert_int_equal(teex_ds_grant_sign(sk, worker, "sabc", 1000, g, &n), 0);
  assert_int_equal(n, 4 + 20 + 8 + 1 + 4 + 65);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker, "sabc", 999, &err),
                   0);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker, "sabc", 1000, &err),
                   TEEX_EEXPIRED);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker2, "sabc", 999, &err),
                   TEEX_EPERM);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker, "sabd", 999, &err),
                   TEEX_EPERM);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker, "sab", 999, &err),
                   TEEX_EPERM);
  uint8_t not_sm[20];
  memset(not_sm, 0x33, 20);
  assert_int_equal(
      teex_ds_grant_verify(g, n, not_sm, worker, "sabc", 999, &err),
      TEEX_EBADSIG);
  /* Every byte is covered: magic and length -> format, the rest -> sig. */
  for (size_t i = 0; i < n; i++) {
    uint8_t t[TEEX_DS_GRANT_MAX];
    memcpy(t, g, n);
    t[i] ^= 0x01;
    int rc = teex_ds_grant_verify(t, n, sm, worker, "sabc", 999, &err);
    if (rc == 0)
      fail_msg("byte %zu flipped: accepted", i);
  }
  assert_int_equal(
      teex_ds_grant_verify(g, n - 1, sm, worker, "sabc", 999, &err),
      TEEX_EFORMAT);
  assert_int_equal(teex_ds_grant_verify(g, 10, sm, worker, "sabc", 999, &err),
                   TEEX_EFORMAT);
  /* Signed by another key: refused as not the SM's. */
  assert_int_equal(teex_ds_grant_sign(other_sk, worker, "sabc", 1000, g, &n),
                   0);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker, "sabc", 999, &err),
                   TEEX_EBADSIG);
  /* Bad namespaces are not signed. */
  assert_int_equal(teex_ds_grant_sign(sk, worker, "a/b", 1000, g, &n),
                   TEEX_EINVAL);
  assert_int_equal(teex_ds_grant_sign(sk, worker, "", 1000, g, &n),
                   TEEX_EINVAL);
  char long_ns[TEEX_DS_NS_MAX + 2];
  memset(long_ns, 'a', sizeof long_ns - 1);
  long_ns[sizeof long_ns - 1] = 0;
  assert_int_equal(teex_ds_grant_sign(sk, worker, long_ns, 1000, g, &n),
                   TEEX_EINVAL);
  long_ns[TEEX_DS_NS_MAX] = 0;
  assert_int_equal(teex_ds_grant_sign(sk, worker, long_ns, 1000, g, &n), 0);
  assert_int_equal(n, TEEX_DS_GRANT_MAX);
  assert_int_equal(teex_ds_grant_verify(g, n, sm, worker, long_ns, 1, &err), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_sign_verify)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
