/* The settlement v1 EIP-712 statements, hashed with fixed layouts, against
 * ethers' TypedDataEncoder (tests/settle/statements_oracle.mjs): digests
 * equal, and ethers recovers our signatures to the signer's address. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/statements.h"

#include <stdio.h>
#include <string.h>

static void h0x(const uint8_t *p, size_t n, char *out) {
  out[0] = '0';
  out[1] = 'x';
  teex_hex_encode(p, n, out + 2);
}

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed * 37 + i * 11 + 1);
}

struct item {
  const char *kind;
  char value[2048];
  uint8_t digest[32];
  uint8_t sig[65];
};

static void test_against_ethers(void **state) {
  (void)state;
  uint8_t sk[32], pub[64], signer[20];
  fill(sk, 32, 9);
  assert_int_equal(teex_secp256k1_public(sk, pub), 0);
  teex_eth_address(pub, signer);
  struct teex_domain d = {.chain_id = 31337};
  fill(d.verifying_contract, 20, 5);
  char f[16][67];
  struct item items[5];
  int n = 0;

  struct teex_payment_auth a;
  memset(&a, 0, sizeof a);
  fill(a.user, 20, 1);
  fill(a.dispatcher, 20, 2);
  fill(a.task_id, 32, 3);
  fill(a.service_id, 32, 4);
  fill(a.image_hash, 32, 5);
  fill(a.datasets_hash, 32, 6);
  a.price = (teex_amount)12345678901234567ull * 1000u;
  a.cumulative = a.price * 3 + 1;
  teex_stmt_payment_auth_digest(&d, &a, items[n].digest);
  h0x(a.user, 20, f[0]);
  h0x(a.dispatcher, 20, f[1]);
  h0x(a.task_id, 32, f[2]);
  h0x(a.service_id, 32, f[3]);
  h0x(a.image_hash, 32, f[4]);
  h0x(a.datasets_hash, 32, f[5]);
  char p1[40], p2[40];
  teex_amount_format(a.price, p1);
  teex_amount_format(a.cumulative, p2);
  items[n].kind = "PaymentAuthorization";
  snprintf(items[n].value, sizeof items[n].value,
           "{\"user\":\"%s\",\"dispatcher\":\"%s\",\"taskId\":\"%s\","
           "\"serviceId\":\"%s\",\"imageHash\":\"%s\",\"datasetsHash\":\"%s\","
           "\"price\":\"%s\",\"cumulative\":\"%s\"}",
           f[0], f[1], f[2], f[3], f[4], f[5], p1, p2);
  n++;

  struct teex_receipt r;
  memset(&r, 0, sizeof r);
  fill(r.task_id, 32, 11);
  fill(r.service_id, 32, 12);
  fill(r.image_hash, 32, 13);
  fill(r.user, 20, 14);
  fill(r.dispatcher, 20, 15);
  fill(r.worker, 20, 16);
  fill(r.provider, 20, 17);
  fill(r.input_commitment, 32, 18);
  fill(r.output_commitment, 32, 19);
  teex_amount_word(100, r.price);
  teex_amount_word(70, r.worker_amount);
  teex_amount_word(20, r.provider_amount);
  struct teex_data_share sh;
  fill(sh.dataset_id, 32, 20);
  fill(sh.payee, 20, 21);
  teex_amount_word(10, sh.amount);
  r.shares = &sh;
  r.nshares = 1;
  teex_stmt_receipt_digest(&d, &r, items[n].digest);
  uint8_t shares_hash[32];
  teex_settle_data_shares_hash(&sh, 1, shares_hash);
  h0x(r.task_id, 32, f[0]);
  h0x(r.service_id, 32, f[1]);
  h0x(r.image_hash, 32, f[2]);
  h0x(r.user, 20, f[3]);
  h0x(r.dispatcher, 20, f[4]);
  h0x(r.worker, 20, f[5]);
  h0x(r.provider, 20, f[6]);
  h0x(r.input_commitment, 32, f[7]);
  h0x(r.output_commitment, 32, f[8]);
  h0x(shares_hash, 32, f[9]);
  items[n].kind = "Receipt";
  snprintf(items[n].value, sizeof items[n].value,
           "{\"taskId\":\"%s\",\"serviceId\":\"%s\",\"imageHash\":\"%s\","
           "\"user\":\"%s\",\"dispatcher\":\"%s\",\"worker\":\"%s\","
           "\"provider\":\"%s\",\"inputCommitment\":\"%s\","
           "\"outputCommitment\":\"%s\",\"price\":100,\"workerAmount\":70,"
           "\"providerAmount\":20,\"dataSharesHash\":\"%s\"}",
           f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]);
  n++;

  struct teex_service_listing l;
  fill(l.service_id, 32, 30);
  fill(l.provider, 20, 31);
  l.version = 4000000000u;
  fill(l.signing_key, 20, 32);
  fill(l.encryption_key, 32, 33);
  fill(l.image_hash, 32, 34);
  teex_stmt_service_listing_digest(&d, &l, items[n].digest);
  h0x(l.service_id, 32, f[0]);
  h0x(l.provider, 20, f[1]);
  h0x(l.signing_key, 20, f[2]);
  h0x(l.encryption_key, 32, f[3]);
  h0x(l.image_hash, 32, f[4]);
  items[n].kind = "ServiceListing";
  snprintf(items[n].value, sizeof items[n].value,
           "{\"serviceId\":\"%s\",\"provider\":\"%s\",\"version\":%u,"
           "\"signingKey\":\"%s\",\"encryptionKey\":\"%s\","
           "\"imageHash\":\"%s\"}",
           f[0], f[1], l.version, f[2], f[3], f[4]);
  n++;

  uint8_t enclave[20], meas[32];
  fill(enclave, 20, 40);
  fill(meas, 32, 41);
  teex_stmt_enclave_registration_digest(&d, enclave, TEEX_ENCLAVE_DISPATCHER,
                                        meas, 1790000000ull, items[n].digest);
  h0x(enclave, 20, f[0]);
  h0x(meas, 32, f[1]);
  items[n].kind = "EnclaveRegistration";
  snprintf(items[n].value, sizeof items[n].value,
           "{\"enclave\":\"%s\",\"role\":2,\"measurement\":\"%s\","
           "\"issuedAt\":1790000000}",
           f[0], f[1]);
  n++;

  teex_stmt_enclave_revocation_digest(&d, enclave, items[n].digest);
  items[n].kind = "EnclaveRevocation";
  snprintf(items[n].value, sizeof items[n].value, "{\"enclave\":\"%s\"}", f[0]);
  n++;

  static char json[16384];
  size_t o = 0;
  char vc[43];
  h0x(d.verifying_contract, 20, vc);
  o += (size_t)snprintf(json + o, sizeof json - o, "[");
  for (int i = 0; i < n; i++) {
    assert_int_equal(teex_stmt_sign(sk, items[i].digest, items[i].sig), 0);
    assert_true(items[i].sig[64] == 27 || items[i].sig[64] == 28);
    uint8_t back[20];
    assert_int_equal(teex_stmt_recover(items[i].digest, items[i].sig, back), 0);
    assert_memory_equal(back, signer, 20);
    char sig[133];
    h0x(items[i].sig, 65, sig);
    o += (size_t)snprintf(json + o, sizeof json - o,
                          "%s{\"kind\":\"%s\",\"domain\":{\"chainId\":31337,"
                          "\"verifyingContract\":\"%s\"},\"value\":%s,"
                          "\"sig\":\"%s\"}",
                          i ? "," : "", items[i].kind, vc, items[i].value, sig);
  }
  o += (size_t)snprintf(json + o, sizeof json - o, "]");

  char script[4096];
  snprintf(script, sizeof script, "%s/tests/settle/statements_oracle.mjs",
           tu_source_dir());
  char *argv[] = {"/usr/bin/env", "node", script, NULL};
  char *out = NULL, *err = NULL;
  int rc = tu_run(argv, json, o, &out, &err);
  if (rc != 0)
    fprintf(stderr, "oracle: %s\n", err);
  assert_int_equal(rc, 0);
  char *line = out;
  char signer_hex[43];
  teex_eth_address_hex(signer, signer_hex);
  for (int i = 0; i < n; i++) {
    char want[67];
    h0x(items[i].digest, 32, want);
    char *nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = 0;
    assert_string_equal(line, want);
    line = nl + 1;
    nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = 0;
    assert_string_equal(line, signer_hex);
    line = nl + 1;
  }
  free(out);
  free(err);
}

static void test_signature_rules(void **state) {
  (void)state;
  uint8_t sk[32], digest[32], sig[65], addr[20];
  fill(sk, 32, 3);
  teex_keccak256("x", 1, digest);
  assert_int_equal(teex_stmt_sign(sk, digest, sig), 0);
  uint8_t bad[65];
  memcpy(bad, sig, 65);
  bad[64] -= 27; /* v must be 27 or 28 for the contracts */
  assert_int_equal(teex_stmt_recover(digest, bad, addr), TEEX_EBADSIG);
  teex_amount v;
  uint8_t w[32] = {0};
  w[15] = 1;
  assert_int_equal(teex_amount_from_word(w, &v), TEEX_ETOOBIG);
  w[15] = 0;
  w[31] = 7;
  assert_int_equal(teex_amount_from_word(w, &v), 0);
  assert_true(v == 7);
}

/* Every field of the off-chain statements changes the digest, and the
 * tags keep the three kinds apart. */
static void test_offchain_statements(void **state) {
  (void)state;
  struct teex_assignment a;
  memset(&a, 0, sizeof a);
  a.chain_id = 31337;
  a.price = 5;
  a.expires_at = 1800000000;
  uint8_t base[32], d[32];
  teex_stmt_assignment_digest(&a, base);
  uint8_t *fields[] = {a.dispatcher, a.worker,     a.user,
                       a.task_id,    a.service_id, a.image_hash};
  for (size_t i = 0; i < 6; i++) {
    fields[i][0] ^= 1;
    teex_stmt_assignment_digest(&a, d);
    assert_memory_not_equal(d, base, 32);
    fields[i][0] ^= 1;
  }
  a.price++;
  teex_stmt_assignment_digest(&a, d);
  assert_memory_not_equal(d, base, 32);
  a.price--;
  a.expires_at++;
  teex_stmt_assignment_digest(&a, d);
  assert_memory_not_equal(d, base, 32);
  a.expires_at--;
  a.chain_id = 1;
  teex_stmt_assignment_digest(&a, d);
  assert_memory_not_equal(d, base, 32);
  a.chain_id = 31337;

  /* Without datasets the digest is the original preimage (no datasets
   * word), recomputed here by hand; with datasets it names them. */
  {
    uint8_t pre[18 + 8 + 60 + 96 + 32 + 8], want[32], *q = pre;
    memcpy(q, "teex/assignment/v1", 18), q += 18;
    for (int i = 7; i >= 0; i--)
      *q++ = (uint8_t)(a.chain_id >> (8 * i));
    memset(q, 0, 60 + 96), q += 60 + 96;
    teex_amount_word(a.price, q), q += 32;
    for (int i = 7; i >= 0; i--)
      *q++ = (uint8_t)(a.expires_at >> (8 * i));
    teex_keccak256(pre, sizeof pre, want);
    assert_memory_equal(base, want, 32);
  }
  uint8_t ids[2][32], h0[32], h2[32], empty[32];
  memset(ids[0], 0xd1, 32);
  memset(ids[1], 0xd2, 32);
  teex_stmt_datasets_hash(ids[0], 0, h0);
  teex_keccak256("", 0, empty);
  assert_memory_equal(h0, empty, 32);
  teex_stmt_datasets_hash(ids[0], 2, h2);
  assert_memory_not_equal(h2, h0, 32);
  uint8_t swapped[2][32];
  memcpy(swapped[0], ids[1], 32);
  memcpy(swapped[1], ids[0], 32);
  teex_stmt_datasets_hash(swapped[0], 2, d);
  assert_memory_not_equal(d, h2, 32); /* order matters */
  memcpy(a.datasets_hash, h2, 32);
  teex_stmt_assignment_digest(&a, d);
  assert_memory_not_equal(d, base, 32);
  uint8_t d2[32];
  a.datasets_hash[5] ^= 1;
  teex_stmt_assignment_digest(&a, d2);
  assert_memory_not_equal(d2, d, 32);
  memset(a.datasets_hash, 0, 32);

  uint8_t z[32] = {0}, r1[32], r2[32], p1[32];
  teex_stmt_result_digest(z, z, z, z, z, r1);
  uint8_t one[32] = {1};
  teex_stmt_result_digest(z, z, z, z, one, r2);
  assert_memory_not_equal(r1, r2, 32);
  teex_stmt_service_proof_digest(z, z, p1);
  assert_memory_not_equal(p1, r1, 32);
  /* A known answer pins the layout: keccak256("teex/service-proof/v1" ||
   * 64 zero bytes). */
  uint8_t pre[21 + 64] = "teex/service-proof/v1", want[32];
  teex_keccak256(pre, sizeof pre, want);
  assert_memory_equal(p1, want, 32);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_ethers),
      cmocka_unit_test(test_signature_rules),
      cmocka_unit_test(test_offchain_statements),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
