/* The Service Manager's dataset keys (sm_data.c): escrow (provider
 * signature, id bound to the provider and name, ciphertext checked against
 * the listed plaintext hash and size, retries, no second key), leases
 * (every refusal the issue names: unapproved service, approved service at
 * another image hash, expired listing, uses beyond the maximum, revoked
 * dataset, an assignment that is forged, for another worker, expired, from
 * an unregistered dispatcher or not naming the dataset), a task counted once,
 * the use counter surviving a restart, and no data key in clear on disk. */
#include "testutil.h"

#include "teex/chain.h"
#include "teex/crypto.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/sm.h"

#include <stdio.h>
#include <string.h>

static const char PLAIN[] = "CANARY-DATA-PLAINTEXT-5c2e patient,age\nann,41\n";

struct fx {
  char *dir;
  char state[4096];
  uint8_t root[32];
  struct teex_tee *sm_tee;
  struct teex_sm *sm;
  struct teex_sm_config cfg;
  uint8_t provider_sk[32], provider[20];
  uint8_t disp_sk[32], disp[20], worker[20];
  uint8_t data_key[32];
  uint8_t *ct;
  size_t ct_len;
  struct teex_sm_escrow e;
  uint8_t ids[2][32]; /* the task's datasets: ours, then another */
  struct teex_sm_lease_req req;
  struct teex_sm_data_terms terms;
};

static const uint64_t NOW = 1800000000;

static void keypair(uint8_t sk[32], uint8_t addr[20]) {
  uint8_t pub[64];
  assert_int_equal(teex_secp256k1_keypair(sk, pub), 0);
  teex_eth_address(pub, addr);
}

static void sign_escrow(struct fx *f, struct teex_sm_escrow *e,
                        const uint8_t sk[32]) {
  uint8_t addr[20], digest[32];
  teex_sm_address(f->sm, addr);
  teex_sm_escrow_digest(e, 31337, addr, digest);
  assert_int_equal(teex_stmt_sign(sk, digest, e->provider_sig), 0);
}

/* Signs the lease request's assignment with key sk. */
static void sign_assignment(struct fx *f, const uint8_t sk[32]) {
  uint8_t digest[32];
  teex_stmt_assignment_digest(&f->req.assignment, digest);
  assert_int_equal(teex_stmt_sign(sk, digest, f->req.dispatcher_sig), 0);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct teex_err err;
  struct teex_tee_config c;
  f->dir = tu_mkdtemp("smdata");
  assert_int_equal(teex_tee_sim_init(f->dir, f->root, &err), 0);
  snprintf(f->state, sizeof f->state, "%s/sm-state", f->dir);
  memset(&c, 0, sizeof c);
  c.backend = "sim";
  c.data_dir = f->dir;
  c.role = "sm";
  if (teex_tee_open(&c, &f->sm_tee, &err) != 0)
    fail_msg("tee open: %s", err.msg);
  teex_tee_policy_init(&f->cfg.policy);
  f->cfg.state_dir = f->state;
  f->cfg.listing.chain_id = 31337;
  memset(f->cfg.listing.verifying_contract, 0x51, 20);
  f->cfg.registration.chain_id = 31337;
  memset(f->cfg.registration.verifying_contract, 0xE7, 20);
  if (teex_sm_open(f->sm_tee, &f->cfg, &f->sm, &err) != 0)
    fail_msg("sm open: %s", err.msg);
  keypair(f->provider_sk, f->provider);
  keypair(f->disp_sk, f->disp);
  memset(f->worker, 0x3a, 20);

  teex_random(f->data_key, 32);
  assert_int_equal(teex_image_encrypt(f->data_key, (const uint8_t *)PLAIN,
                                      sizeof PLAIN - 1, &f->ct, &f->ct_len,
                                      &err),
                   0);
  struct teex_sm_escrow *e = &f->e;
  snprintf(e->name, sizeof e->name, "%s", "cohort");
  memcpy(e->provider, f->provider, 20);
  teex_dataset_id(f->provider, e->name, e->dataset_id);
  teex_sha256(PLAIN, sizeof PLAIN - 1, e->plaintext_hash);
  e->plaintext_size = sizeof PLAIN - 1;
  snprintf(e->cid, sizeof e->cid, "%s", "bafkreidatasetcid");
  memcpy(e->data_key, f->data_key, 32);
  e->ciphertext = f->ct;
  e->ciphertext_len = f->ct_len;
  sign_escrow(f, e, f->provider_sk);

  /* A task using two datasets, ours second. */
  memset(f->ids[0], 0x0d, 32);
  memcpy(f->ids[1], e->dataset_id, 32);
  struct teex_assignment *a = &f->req.assignment;
  a->chain_id = 31337;
  memcpy(a->dispatcher, f->disp, 20);
  memcpy(a->worker, f->worker, 20);
  memset(a->user, 0x05, 20);
  memset(a->task_id, 0x7a, 32);
  memset(a->service_id, 0x5e, 32);
  memset(a->image_hash, 0x1e, 32);
  a->price = 100;
  a->expires_at = NOW + 60;
  teex_stmt_datasets_hash(f->ids[0], 2, a->datasets_hash);
  memcpy(f->req.worker, f->worker, 20);
  f->req.dataset_ids = f->ids[0];
  f->req.n_datasets = 2;
  f->req.index = 1;
  sign_assignment(f, f->disp_sk);

  f->terms.listed = 1;
  memcpy(f->terms.provider, f->provider, 20);
  f->terms.max_uses = 2;
  f->terms.max_output_bytes = 4096;
  f->terms.price = 250;
  f->terms.expires_at = NOW + 3600;
  f->terms.approved = 1;
  f->terms.dispatcher_active = 1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  teex_sm_close(f->sm);
  teex_tee_close(f->sm_tee);
  free(f->ct);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static int lease(struct fx *f, struct teex_sm_data_lease *out,
                 struct teex_err *err) {
  return teex_sm_lease_data_key(f->sm, &f->req, &f->terms, NOW, out, err);
}

static void expect_refusal(struct fx *f, int code, const char *words) {
  struct teex_err err = {0};
  struct teex_sm_data_lease l;
  int rc = lease(f, &l, &err);
  if (rc != code || strstr(err.msg, words) == NULL)
    fail_msg("expected %d '%s', got %d '%s'", code, words, rc, err.msg);
  static const uint8_t zero[32];
  assert_memory_equal(l.data_key, zero, 32); /* nothing released */
}

static void test_escrow(void **state) {
  struct fx *f = *state;
  struct teex_err err = {0};
  struct teex_sm_escrow e = f->e;

  /* Signed by someone else: refused. */
  uint8_t other_sk[32], other[20];
  keypair(other_sk, other);
  sign_escrow(f, &e, other_sk);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EBADSIG);
  /* Another provider cannot escrow under our id: the id names us. */
  memcpy(e.provider, other, 20);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "dataset id"));
  /* The listed hash must be the plaintext's. */
  e = f->e;
  e.plaintext_hash[0] ^= 1;
  sign_escrow(f, &e, f->provider_sk);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EATTEST);
  e = f->e;
  e.plaintext_size++;
  sign_escrow(f, &e, f->provider_sk);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EATTEST);
  /* A key the ciphertext does not open. */
  e = f->e;
  e.data_key[0] ^= 1;
  sign_escrow(f, &e, f->provider_sk);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EAUTH);

  if (teex_sm_escrow_data_key(f->sm, &f->e, &err) != 0)
    fail_msg("%s", err.msg);
  /* A retry is fine; another key for the same dataset is not. */
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &f->e, &err), 0);
  e = f->e;
  uint8_t *ct2;
  size_t ct2_len;
  teex_random(e.data_key, 32);
  assert_int_equal(teex_image_encrypt(e.data_key, (const uint8_t *)PLAIN,
                                      sizeof PLAIN - 1, &ct2, &ct2_len, &err),
                   0);
  e.ciphertext = ct2;
  e.ciphertext_len = ct2_len;
  sign_escrow(f, &e, f->provider_sk);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EEXIST);
  /* Before any listing (the daemon asks the chain), the provider may
   * replace it: a publish retried after its listing failed. */
  e.replace_unlisted = 1;
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), 0);
  struct teex_sm_data_lease l;
  f->e = e; /* leases now give the new key */
  assert_int_equal(
      teex_sm_lease_data_key(f->sm, &f->req, &f->terms, NOW, &l, &err), 0);
  assert_memory_equal(l.data_key, e.data_key, 32);
  /* A forged replacement still needs the provider's signature. */
  uint8_t bad_sk[32], bad[20];
  keypair(bad_sk, bad);
  sign_escrow(f, &e, bad_sk);
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &e, &err), TEEX_EBADSIG);
  free(ct2);
}

static void test_lease_and_uses(void **state) {
  struct fx *f = *state;
  struct teex_err err = {0};
  struct teex_sm_data_lease l;
  uint32_t uses = 9;
  expect_refusal(f, TEEX_ENOTFOUND, "no key escrowed");
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &f->e, &err), 0);
  if (lease(f, &l, &err) != 0)
    fail_msg("%s", err.msg);
  assert_memory_equal(l.data_key, f->data_key, 32);
  assert_string_equal(l.cid, "bafkreidatasetcid");
  assert_string_equal(l.name, "cohort");
  assert_memory_equal(l.provider, f->provider, 20);
  assert_true(l.price == 250);
  assert_memory_equal(l.plaintext_hash, f->e.plaintext_hash, 32);
  assert_int_equal(l.plaintext_size, sizeof PLAIN - 1);
  assert_int_equal(l.max_output_bytes, 4096);
  assert_int_equal(l.expires_at, NOW + 60);
  assert_int_equal(l.uses, 1);
  /* The same task again: not a new use. */
  assert_int_equal(lease(f, &l, &err), 0);
  assert_int_equal(l.uses, 1);
  assert_int_equal(teex_sm_data_uses(f->sm, f->e.dataset_id, &uses, &err), 0);
  assert_int_equal(uses, 1);
  /* A second task: the second and last use (max 2). */
  f->req.assignment.task_id[0] ^= 1;
  sign_assignment(f, f->disp_sk);
  assert_int_equal(lease(f, &l, &err), 0);
  assert_int_equal(l.uses, 2);
  /* A third task: no use left, nothing released, nothing counted. */
  f->req.assignment.task_id[0] ^= 2;
  sign_assignment(f, f->disp_sk);
  expect_refusal(f, TEEX_EPOLICY, "no use left");
  assert_int_equal(teex_sm_data_uses(f->sm, f->e.dataset_id, &uses, &err), 0);
  assert_int_equal(uses, 2);
  /* Unlimited uses (0) lets it through. */
  f->terms.max_uses = 0;
  assert_int_equal(lease(f, &l, &err), 0);
  assert_int_equal(l.uses, 3);

  /* The counter survives a restart; no data key or plaintext on disk. */
  teex_sm_close(f->sm);
  f->sm = NULL;
  if (teex_sm_open(f->sm_tee, &f->cfg, &f->sm, &err) != 0)
    fail_msg("reopen: %s", err.msg);
  assert_int_equal(teex_sm_data_uses(f->sm, f->e.dataset_id, &uses, &err), 0);
  assert_int_equal(uses, 3);
  char hit[512], ctl[4096];
  assert_int_equal(tu_tree_contains(f->state, "CANARY-DATA-PLAINTEXT", 21, hit),
                   0);
  assert_int_equal(tu_tree_contains(f->state, f->data_key, 32, hit), 0);
  /* Positive control: the same search finds the key written in the clear. */
  snprintf(ctl, sizeof ctl, "%s/control", f->state);
  assert_int_equal(tu_write_file(ctl, f->data_key, 32), 0);
  assert_int_equal(tu_tree_contains(f->state, f->data_key, 32, hit), 1);
}

static void test_lease_refusals(void **state) {
  struct fx *f = *state;
  struct teex_err err = {0};
  assert_int_equal(teex_sm_escrow_data_key(f->sm, &f->e, &err), 0);
  struct teex_sm_data_terms good = f->terms;
  struct teex_assignment ga = f->req.assignment;

  /* Unapproved service, or the approved service at another image hash:
   * the daemon asks the chain about the exact pair, false either way. */
  f->terms.approved = 0;
  expect_refusal(f, TEEX_EPERM, "does not approve service");
  f->terms = good;
  /* Expired listing, revoked dataset, not listed, listed by another. */
  f->terms.expires_at = NOW;
  expect_refusal(f, TEEX_EEXPIRED, "listing expired");
  f->terms = good;
  f->terms.revoked = 1;
  expect_refusal(f, TEEX_EPOLICY, "revoked");
  f->terms = good;
  f->terms.listed = 0;
  expect_refusal(f, TEEX_ENOTFOUND, "not listed");
  f->terms = good;
  f->terms.provider[0] ^= 1;
  expect_refusal(f, TEEX_EPERM, "another account");
  f->terms = good;

  /* The assignment: forged, unregistered dispatcher, another worker,
   * expired, another chain, no datasets, not naming this dataset. */
  uint8_t rogue_sk[32], rogue[20];
  keypair(rogue_sk, rogue);
  sign_assignment(f, rogue_sk);
  expect_refusal(f, TEEX_EBADSIG, "not signed by its dispatcher");
  sign_assignment(f, f->disp_sk);
  f->terms.dispatcher_active = 0;
  expect_refusal(f, TEEX_EPERM, "enclave registry");
  f->terms = good;
  f->req.worker[0] ^= 1;
  expect_refusal(f, TEEX_EPERM, "another worker");
  f->req.worker[0] ^= 1;
  f->req.assignment.expires_at = NOW;
  sign_assignment(f, f->disp_sk);
  expect_refusal(f, TEEX_EEXPIRED, "assignment expired");
  f->req.assignment = ga;
  f->req.assignment.chain_id = 1;
  sign_assignment(f, f->disp_sk);
  expect_refusal(f, TEEX_EINVAL, "chain");
  f->req.assignment = ga;
  memset(f->req.assignment.datasets_hash, 0, 32);
  sign_assignment(f, f->disp_sk);
  expect_refusal(f, TEEX_EPERM, "no dataset");
  f->req.assignment = ga;
  sign_assignment(f, f->disp_sk);
  /* The worker claims a dataset list the dispatcher did not sign. */
  uint8_t saved[32];
  memcpy(saved, f->ids[0], 32);
  f->ids[0][0] ^= 1;
  expect_refusal(f, TEEX_EPERM, "does not name these datasets");
  memcpy(f->ids[0], saved, 32);
  f->req.index = 2;
  expect_refusal(f, TEEX_EINVAL, "datasets per task");
  f->req.index = 0; /* a dataset of the task whose key we do not hold */
  expect_refusal(f, TEEX_ENOTFOUND, "no key escrowed");
  f->req.index = 1;
  /* After all refusals, nothing was counted; the good request works. */
  uint32_t uses = 9;
  assert_int_equal(teex_sm_data_uses(f->sm, f->e.dataset_id, &uses, &err), 0);
  assert_int_equal(uses, 0);
  struct teex_sm_data_lease l;
  assert_int_equal(lease(f, &l, &err), 0);
  assert_int_equal(l.uses, 1);
}

int main(void) {
  teex_crypto_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_escrow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_and_uses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_refusals, setup, teardown),
  };
  return cmocka_run_group_tests_name("sm data", tests, NULL, NULL);
}
