/* Data-key leases racing on one use counter in TEE-DS: two Service
 * Manager instances with the same identity (the same sealed bootstrap
 * state, as after a fail-over) on one namespace of a real 3-replica group,
 * each leasing from its own thread. The optimistic transactions never lose
 * a use: with max_uses 30 and 2 x 20 tasks, exactly 30 leases are granted
 * and 10 refused ("no use left"), and the counter reads 30 from either SM.
 * The same task leased through both SMs counts once. */
#include "ds/net_fixture.c"

#include "teex/chain.h"
#include "teex/image.h"
#include "teex/mem.h"
#include "teex/sm.h"

#include <pthread.h>

static const char PLAIN[] = "dataset for the race";
static const uint64_t NOW = 1800000000;

struct fx {
  struct net t;
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *ctx;
  struct teex_sm_config cfg[2];
  char state[2][600];
  struct teex_sm *sm[2];
  uint8_t provider_sk[32], provider[20], disp_sk[32], disp[20];
  uint8_t dataset[32];
  struct teex_sm_data_terms terms;
};

static void keypair(uint8_t sk[32], uint8_t addr[20]) {
  uint8_t pub[64];
  assert_int_equal(teex_secp256k1_keypair(sk, pub), 0);
  teex_eth_address(pub, addr);
}

static void use_ds(struct fx *f, int i) {
  struct teex_ds_client_config cc = {.replicas = f->t.addrs,
                                     .n_replicas = NET_N,
                                     .tls = f->ctx,
                                     .ns = "smns",
                                     .timeout_ms = 10000};
  struct teex_err err;
  if (teex_sm_use_ds(f->sm[i], &cc, &err) != 0)
    fail_msg("use ds: %s", err.msg);
  assert_string_equal(teex_sm_state_backend(f->sm[i]), "tee-ds");
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  struct net *t = &f->t;
  net_init(t);
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  struct teex_err err;
  assert_int_equal(
      teex_ratls_identity_new(t->enclave, NULL, &f->key, &f->cert, &err), 0);
  struct teex_tls_config tc = {.cert = f->cert,
                               .key = f->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  assert_int_equal(teex_tls_ctx_new(&f->ctx, &tc, 0, &err), 0);
  for (int i = 0; i < 2; i++) {
    snprintf(f->state[i], sizeof f->state[i], "%s/sm%d", t->dir, i);
    teex_tee_policy_init(&f->cfg[i].policy);
    f->cfg[i].state_dir = f->state[i];
    f->cfg[i].listing.chain_id = 31337;
    memset(f->cfg[i].listing.verifying_contract, 0x51, 20);
    f->cfg[i].registration.chain_id = 31337;
    memset(f->cfg[i].registration.verifying_contract, 0xE7, 20);
  }
  /* SM 0 makes the identity; SM 1 starts from a copy of its sealed state
   * (the bootstrap set), so both hold the same keys. */
  assert_int_equal(teex_sm_open(t->enclave, &f->cfg[0], &f->sm[0], &err), 0);
  teex_sm_close(f->sm[0]);
  char *cp[] = {"/bin/cp", "-a", f->state[0], f->state[1], NULL};
  assert_int_equal(tu_run(cp, NULL, 0, NULL, NULL), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(teex_sm_open(t->enclave, &f->cfg[i], &f->sm[i], &err), 0);
    use_ds(f, i);
  }
  uint8_t a0[20], a1[20];
  teex_sm_address(f->sm[0], a0);
  teex_sm_address(f->sm[1], a1);
  assert_memory_equal(a0, a1, 20);

  /* A dataset escrowed through SM 0. */
  keypair(f->provider_sk, f->provider);
  keypair(f->disp_sk, f->disp);
  uint8_t key[32], *ct;
  size_t ct_len;
  teex_random(key, 32);
  assert_int_equal(teex_image_encrypt(key, (const uint8_t *)PLAIN,
                                      sizeof PLAIN - 1, &ct, &ct_len, &err),
                   0);
  struct teex_sm_escrow e;
  memset(&e, 0, sizeof e);
  snprintf(e.name, sizeof e.name, "race");
  memcpy(e.provider, f->provider, 20);
  teex_dataset_id(f->provider, e.name, e.dataset_id);
  teex_sha256(PLAIN, sizeof PLAIN - 1, e.plaintext_hash);
  e.plaintext_size = sizeof PLAIN - 1;
  snprintf(e.cid, sizeof e.cid, "bafkreiracecid");
  memcpy(e.data_key, key, 32);
  e.ciphertext = ct;
  e.ciphertext_len = ct_len;
  uint8_t digest[32];
  teex_sm_escrow_digest(&e, 31337, a0, digest);
  assert_int_equal(teex_stmt_sign(f->provider_sk, digest, e.provider_sig), 0);
  if (teex_sm_escrow_data_key(f->sm[0], &e, &err) != 0)
    fail_msg("escrow: %s", err.msg);
  free(ct);
  memcpy(f->dataset, e.dataset_id, 32);
  f->terms.listed = 1;
  memcpy(f->terms.provider, f->provider, 20);
  f->terms.max_uses = 30;
  f->terms.expires_at = NOW + 3600;
  f->terms.approved = 1;
  f->terms.dispatcher_active = 1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < 2; i++)
    teex_sm_close(f->sm[i]);
  teex_tls_ctx_free(f->ctx);
  EVP_PKEY_free(f->key);
  X509_free(f->cert);
  net_close(&f->t);
  free(f);
  return 0;
}

/* A lease for task number `task` through SM i. */
static int lease(struct fx *f, int i, uint32_t task,
                 struct teex_sm_data_lease *out, struct teex_err *err) {
  struct teex_sm_lease_req req;
  memset(&req, 0, sizeof req);
  struct teex_assignment *a = &req.assignment;
  a->chain_id = 31337;
  memcpy(a->dispatcher, f->disp, 20);
  memset(a->worker, 0x3a, 20);
  memset(a->user, 0x05, 20);
  memset(a->task_id, 0x7a, 32);
  memcpy(a->task_id, &task, sizeof task);
  memset(a->service_id, 0x5e, 32);
  memset(a->image_hash, 0x1e, 32);
  a->price = 100;
  a->expires_at = NOW + 60;
  teex_stmt_datasets_hash(f->dataset, 1, a->datasets_hash);
  memcpy(req.worker, a->worker, 20);
  req.dataset_ids = f->dataset;
  req.n_datasets = 1;
  req.index = 0;
  uint8_t digest[32];
  teex_stmt_assignment_digest(a, digest);
  assert_int_equal(teex_stmt_sign(f->disp_sk, digest, req.dispatcher_sig), 0);
  return teex_sm_lease_data_key(f->sm[i], &req, &f->terms, NOW, out, err);
}

struct racer {
  struct fx *f;
  int sm;
  int ok, refused, other;
  char last[256];
};

static void *race(void *arg) {
  struct racer *r = arg;
  for (uint32_t k = 0; k < 20; k++) {
    struct teex_sm_data_lease l;
    struct teex_err err;
    int rc = lease(r->f, r->sm, 1000u * (uint32_t)(r->sm + 1) + k, &l, &err);
    if (rc == 0)
      r->ok++;
    else if (rc == TEEX_EPOLICY && strstr(err.msg, "no use left") != NULL)
      r->refused++;
    else {
      r->other++;
      snprintf(r->last, sizeof r->last, "%s", err.msg);
    }
    teex_wipe(&l, sizeof l);
  }
  return NULL;
}

static void test_racing_leases(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  /* One task through both SMs: counted once. */
  struct teex_sm_data_lease l;
  assert_int_equal(lease(f, 0, 7, &l, &err), 0);
  assert_int_equal(l.uses, 1);
  assert_int_equal(lease(f, 1, 7, &l, &err), 0);
  assert_int_equal(l.uses, 1);
  f->terms.max_uses = 31; /* that task plus 30 */

  struct racer r0 = {.f = f, .sm = 0}, r1 = {.f = f, .sm = 1};
  pthread_t t0, t1;
  assert_int_equal(pthread_create(&t0, NULL, race, &r0), 0);
  assert_int_equal(pthread_create(&t1, NULL, race, &r1), 0);
  pthread_join(t0, NULL);
  pthread_join(t1, NULL);
  if (r0.other + r1.other != 0)
    fail_msg("leases failed otherwise: %s | %s", r0.last, r1.last);
  assert_int_equal(r0.ok + r1.ok, 30);
  assert_int_equal(r0.refused + r1.refused, 10);
  uint32_t uses[2];
  for (int i = 0; i < 2; i++) {
    assert_int_equal(teex_sm_data_uses(f->sm[i], f->dataset, &uses[i], &err),
                     0);
    assert_int_equal(uses[i], 31);
  }
  teex_wipe(&l, sizeof l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_racing_leases, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
