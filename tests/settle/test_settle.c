/* Settlement v1 off-chain side: receipt leaves, data share hashes, the
 * sorted-pair Merkle tree and its proofs — checked against an independent
 * implementation with ethers (tests/settle/oracle.mjs) and for their
 * properties. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/settle.h"

#include <stdio.h>
#include <string.h>

#define N_RECEIPTS 13

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed * 131 + i * 17 + 3);
}

static void u256(uint8_t w[32], uint64_t v) {
  memset(w, 0, 32);
  for (int i = 0; i < 8; i++)
    w[31 - i] = (uint8_t)(v >> (8 * i));
}

static struct teex_data_share shares[N_RECEIPTS][2];

static void make_receipt(struct teex_receipt *r, unsigned i) {
  memset(r, 0, sizeof *r);
  fill(r->task_id, 32, i);
  fill(r->service_id, 32, i + 100);
  fill(r->image_hash, 32, i + 200);
  fill(r->user, 20, i % 3);
  fill(r->dispatcher, 20, 77);
  fill(r->worker, 20, i % 5 + 10);
  fill(r->provider, 20, i % 2 + 20);
  fill(r->input_commitment, 32, i + 300);
  fill(r->output_commitment, 32, i + 400);
  uint64_t data = 0;
  r->nshares = i % 3; /* 0, 1 or 2 datasets */
  for (size_t k = 0; k < r->nshares; k++) {
    fill(shares[i][k].dataset_id, 32, i * 7 + (unsigned)k);
    fill(shares[i][k].payee, 20, 50 + (unsigned)k);
    u256(shares[i][k].amount, 1000 + k);
    data += 1000 + k;
  }
  r->shares = shares[i];
  u256(r->worker_amount, 7000000000000000ull + i);
  u256(r->provider_amount, 3000000000000000ull);
  u256(r->price, 10000000000000000ull + i + data);
}

static void hex0x(const uint8_t *p, size_t n, char *out) {
  out[0] = '0';
  out[1] = 'x';
  teex_hex_encode(p, n, out + 2);
}

static void test_against_ethers(void **state) {
  (void)state;
  struct teex_receipt r[N_RECEIPTS];
  uint8_t leaves[N_RECEIPTS][32];
  char json[65536];
  size_t o = 0;
  o += (size_t)snprintf(json + o, sizeof json - o, "[");
  for (unsigned i = 0; i < N_RECEIPTS; i++) {
    make_receipt(&r[i], i);
    assert_true(teex_settle_split_ok(&r[i]));
    teex_settle_receipt_leaf(&r[i], leaves[i]);
    char f[12][67];
    hex0x(r[i].task_id, 32, f[0]);
    hex0x(r[i].service_id, 32, f[1]);
    hex0x(r[i].image_hash, 32, f[2]);
    hex0x(r[i].user, 20, f[3]);
    hex0x(r[i].dispatcher, 20, f[4]);
    hex0x(r[i].worker, 20, f[5]);
    hex0x(r[i].provider, 20, f[6]);
    hex0x(r[i].input_commitment, 32, f[7]);
    hex0x(r[i].output_commitment, 32, f[8]);
    hex0x(r[i].price, 32, f[9]);
    hex0x(r[i].worker_amount, 32, f[10]);
    hex0x(r[i].provider_amount, 32, f[11]);
    o += (size_t)snprintf(
        json + o, sizeof json - o,
        "%s{\"taskId\":\"%s\",\"serviceId\":\"%s\",\"imageHash\":\"%s\","
        "\"user\":\"%s\",\"dispatcher\":\"%s\",\"worker\":\"%s\","
        "\"provider\":\"%s\",\"inputCommitment\":\"%s\","
        "\"outputCommitment\":\"%s\",\"price\":\"%s\",\"workerAmount\":\"%s\","
        "\"providerAmount\":\"%s\",\"shares\":[",
        i ? "," : "", f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8],
        f[9], f[10], f[11]);
    for (size_t k = 0; k < r[i].nshares; k++) {
      char d[67], p[43], a[67];
      hex0x(shares[i][k].dataset_id, 32, d);
      hex0x(shares[i][k].payee, 20, p);
      hex0x(shares[i][k].amount, 32, a);
      o += (size_t)snprintf(json + o, sizeof json - o,
                            "%s{\"datasetId\":\"%s\",\"payee\":\"%s\","
                            "\"amount\":\"%s\"}",
                            k ? "," : "", d, p, a);
    }
    o += (size_t)snprintf(json + o, sizeof json - o, "]}");
  }
  o += (size_t)snprintf(json + o, sizeof json - o, "]");
  assert_true(o < sizeof json - 1);

  char script[4096];
  snprintf(script, sizeof script, "%s/tests/settle/oracle.mjs",
           tu_source_dir());
  char *argv[] = {"/usr/bin/env", "node", script, NULL};
  char *out = NULL, *errout = NULL;
  int rc = tu_run(argv, json, o, &out, &errout);
  if (rc != 0)
    fprintf(stderr, "oracle failed: %s\n", errout);
  assert_int_equal(rc, 0);

  uint8_t root[32];
  assert_int_equal(teex_settle_merkle_root(&leaves[0][0], N_RECEIPTS, root), 0);
  /* Lines: the leaves, the root, then each leaf's proof. */
  char *lines[2 * N_RECEIPTS + 1];
  size_t nl = 0;
  for (char *p = out; nl < 2 * N_RECEIPTS + 1 && *p;) {
    char *nlp = strchr(p, '\n');
    if (nlp)
      *nlp = '\0';
    lines[nl++] = p;
    if (!nlp)
      break;
    p = nlp + 1;
  }
  assert_int_equal(nl, 2 * N_RECEIPTS + 1);
  char want[67];
  for (unsigned i = 0; i < N_RECEIPTS; i++) {
    hex0x(leaves[i], 32, want);
    assert_string_equal(lines[i], want);
  }
  hex0x(root, 32, want);
  assert_string_equal(lines[N_RECEIPTS], want);
  for (unsigned i = 0; i < N_RECEIPTS; i++) {
    uint8_t proof[TEEX_SETTLE_MAX_PROOF][32];
    size_t np;
    assert_int_equal(teex_settle_merkle_proof(&leaves[0][0], N_RECEIPTS, i,
                                              &proof[0][0], &np),
                     0);
    char joined[TEEX_SETTLE_MAX_PROOF * 67 + 1] = "";
    size_t jo = 0;
    for (size_t k = 0; k < np; k++) {
      hex0x(proof[k], 32, want);
      jo += (size_t)snprintf(joined + jo, sizeof joined - jo, "%s%s",
                             k ? "," : "", want);
    }
    assert_string_equal(lines[N_RECEIPTS + 1 + i], joined);
  }
  free(out);
  free(errout);
}

/* Every proof verifies for every tree size up to 40; a changed leaf, a
 * changed proof element or a proof for another root does not. */
static void test_merkle_properties(void **state) {
  (void)state;
  uint8_t leaves[40][32];
  for (unsigned i = 0; i < 40; i++)
    teex_keccak256(&i, sizeof i, leaves[i]);
  for (size_t n = 1; n <= 40; n++) {
    uint8_t root[32];
    assert_int_equal(teex_settle_merkle_root(&leaves[0][0], n, root), 0);
    if (n == 1)
      assert_memory_equal(root, leaves[0], 32);
    for (size_t i = 0; i < n; i++) {
      uint8_t proof[TEEX_SETTLE_MAX_PROOF][32];
      size_t np;
      assert_int_equal(
          teex_settle_merkle_proof(&leaves[0][0], n, i, &proof[0][0], &np), 0);
      assert_true(teex_settle_merkle_verify(leaves[i], &proof[0][0], np, root));
      uint8_t bad[32];
      memcpy(bad, leaves[i], 32);
      bad[0] ^= 1;
      assert_false(teex_settle_merkle_verify(bad, &proof[0][0], np, root));
      if (np > 0) {
        proof[np - 1][31] ^= 1;
        assert_false(
            teex_settle_merkle_verify(leaves[i], &proof[0][0], np, root));
      }
    }
  }
  uint8_t root[32];
  assert_int_equal(teex_settle_merkle_root(&leaves[0][0], 0, root),
                   TEEX_EINVAL);
  uint8_t proof[TEEX_SETTLE_MAX_PROOF][32];
  size_t np;
  assert_int_equal(
      teex_settle_merkle_proof(&leaves[0][0], 3, 3, &proof[0][0], &np),
      TEEX_EINVAL);
}

static void test_split_and_commitments(void **state) {
  (void)state;
  struct teex_receipt r;
  make_receipt(&r, 2); /* two data shares */
  assert_true(teex_settle_split_ok(&r));
  r.price[31] ^= 1;
  assert_false(teex_settle_split_ok(&r));
  /* Overflow of the sum is a mismatch, not a wrap. */
  memset(r.worker_amount, 0xFF, 32);
  memset(r.price, 0, 32);
  assert_false(teex_settle_split_ok(&r));
  /* No shares hash to keccak256(""). */
  uint8_t h[32], empty[32];
  teex_settle_data_shares_hash(NULL, 0, h);
  teex_keccak256("", 0, empty);
  assert_memory_equal(h, empty, 32);
  /* Salted commitments differ with the salt. */
  uint8_t s1[32] = {1}, s2[32] = {2}, c1[32], c2[32];
  teex_settle_commit(s1, "yes", 3, c1);
  teex_settle_commit(s2, "yes", 3, c2);
  assert_memory_not_equal(c1, c2, 32);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_ethers),
      cmocka_unit_test(test_merkle_properties),
      cmocka_unit_test(test_split_and_commitments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
