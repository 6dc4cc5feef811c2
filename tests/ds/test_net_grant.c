/* SM grants over the network, with real `teex ds run` processes: the group
 * maps role worker to "*" (namespaces only by grant) and names the SM's
 * address (--grant-signer). A worker enclave (sim evidence in role worker,
 * its secp256k1 key bound) reaches a service's namespace with a grant the
 * SM signed for its address, and is refused (TEEX_EPERM) for another
 * namespace, without a grant, with a grant for another worker, with one
 * signed by another key, and with an expired one — its evidence passing
 * every time. */
#include "net_fixture.c"

#include <time.h>

struct gnet {
  struct net net;
  uint8_t sm_sk[32], sm_addr[20];
  struct teex_tee *worker;
  uint8_t worker_sk[32], worker_addr[20];
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *tls;
  char signer[43];
};

static int setup(void **state) {
  struct gnet *g = calloc(1, sizeof(*g));
  struct net *t = &g->net;
  struct teex_err err;
  net_prepare(t);
  uint8_t pub[64];
  assert_int_equal(teex_secp256k1_keypair(g->sm_sk, pub), 0);
  teex_eth_address(pub, g->sm_addr);
  teex_eth_address_hex(g->sm_addr, g->signer);
  /* Enclave clients of role worker too. */
  struct teex_tee_config wc;
  memset(&wc, 0, sizeof wc);
  wc.data_dir = t->dir;
  wc.role = "worker";
  assert_int_equal(teex_tee_open(&wc, &g->worker, &err), 0);
  char root_hex[65], meas_hex[65], wmeas_hex[65], cpol[600], ptext[1024];
  teex_hex_encode(t->root, 32, root_hex);
  teex_hex_encode(teex_tee_self(t->enclave)->mr_enclave, 32, meas_hex);
  teex_hex_encode(teex_tee_self(g->worker)->mr_enclave, 32, wmeas_hex);
  int pn = snprintf(ptext, sizeof ptext,
                    "[policy]\nroles = sm, worker\nallow_simulated = true\n"
                    "[roots]\nnet = %s\n[measurements]\nsm = %s\n"
                    "worker = %s\n",
                    root_hex, meas_hex, wmeas_hex);
  snprintf(cpol, sizeof cpol, "%s/clients-policy.conf", t->dir);
  assert_int_equal(tu_write_file(cpol, ptext, (size_t)pn), 0);
  t->init_extra[0] = "--enclave";
  t->init_extra[1] = "worker=*";
  t->init_extra[2] = "--grant-signer";
  t->init_extra[3] = g->signer;
  net_init_states(t, NULL, NULL);
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);

  assert_int_equal(teex_secp256k1_keypair(g->worker_sk, pub), 0);
  teex_eth_address(pub, g->worker_addr);
  struct teex_ratls_keys keys = {.secp256k1_pub = pub};
  assert_int_equal(
      teex_ratls_identity_new(g->worker, &keys, &g->key, &g->cert, &err), 0);
  struct teex_tls_config tc = {.cert = g->cert,
                               .key = g->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  assert_int_equal(teex_tls_ctx_new(&g->tls, &tc, 0, &err), 0);
  {
    struct teex_tee_policy cp;
    teex_tee_policy_init(&cp);
    assert_int_equal(teex_tee_policy_load(&cp, cpol, &err), 0);
    struct teex_tee_identity id;
    if (teex_ratls_verify_cert(g->cert, &cp, NULL, &id, &err) != 0)
      fail_msg("worker evidence: %s", err.msg);
  }
  *state = g;
  return 0;
}

static int teardown(void **state) {
  struct gnet *g = *state;
  teex_tls_ctx_free(g->tls);
  EVP_PKEY_free(g->key);
  X509_free(g->cert);
  teex_tee_close(g->worker);
  net_close(&g->net);
  free(g);
  return 0;
}

/* INCR ns/count as the worker with this grant (NULL: none): the call's
 * error, or 0 with the new value in *num. */
static int incr(struct gnet *g, const char *ns, const uint8_t *grant,
                size_t grant_len, int64_t *num, struct teex_err *err) {
  struct teex_ds_client_config cc = {.replicas = g->net.addrs,
                                     .n_replicas = NET_N,
                                     .tls = g->tls,
                                     .ns = ns,
                                     .grant = grant,
                                     .grant_len = grant_len,
                                     .timeout_ms = 10000};
  struct teex_ds_sync *s;
  assert_int_equal(teex_ds_sync_open(&cc, &s, err), 0);
  char key[128];
  int kn = snprintf(key, sizeof key, "%s/count", ns);
  struct teex_ds_cmd c = {.op = TEEX_DS_INCR,
                          .key = (const uint8_t *)key,
                          .key_len = (size_t)kn,
                          .delta = 1};
  struct teex_ds_result r;
  int rc = teex_ds_sync_exec(s, &c, TEEX_DS_READ_LINEARIZABLE, &r, err);
  if (rc == 0) {
    assert_int_equal(r.status, 0);
    *num = r.num;
    teex_ds_result_free(&r);
  }
  teex_ds_sync_close(s);
  return rc;
}

/* The replicas logged a refusal for this reason (the client sees only
 * TEEX_EPERM). */
static void refused_for(struct gnet *g, const char *reason) {
  char want[160];
  snprintf(want, sizeof want, "reason=\"%s\"", reason);
  for (int tries = 0; tries < 50; tries++) {
    for (int i = 0; i < NET_N; i++) {
      size_t n;
      char *log = (char *)tu_read_file(g->net.log[i], &n);
      int found = log != NULL && strstr(log, want) != NULL;
      free(log);
      if (found)
        return;
    }
    net_sleep_ms(20);
  }
  fail_msg("no replica logged %s", want);
}

static void test_grants(void **state) {
  struct gnet *g = *state;
  struct teex_err err;
  uint8_t id_a[32], id_b[32];
  memset(id_a, 0xaa, 32);
  memset(id_b, 0xbb, 32);
  char ns_a[TEEX_DS_SERVICE_NS_LEN + 1], ns_b[TEEX_DS_SERVICE_NS_LEN + 1];
  teex_ds_service_ns(id_a, ns_a);
  teex_ds_service_ns(id_b, ns_b);
  uint64_t now = (uint64_t)time(NULL);
  uint8_t grant[TEEX_DS_GRANT_MAX];
  size_t n;
  int64_t num = 0;
  assert_int_equal(
      teex_ds_grant_sign(g->sm_sk, g->worker_addr, ns_a, now + 600, grant, &n),
      0);
  /* Granted: the namespace works, and keeps its state. */
  if (incr(g, ns_a, grant, n, &num, &err) != 0) {
    net_dump_log(&g->net, 0);
    fail_msg("granted incr: %s", err.msg);
  }
  assert_int_equal(num, 1);
  assert_int_equal(incr(g, ns_a, grant, n, &num, &err), 0);
  assert_int_equal(num, 2);
  /* The same grant for another service's namespace. */
  assert_int_equal(incr(g, ns_b, grant, n, &num, &err), TEEX_EPERM);
  refused_for(g, "grant: for another namespace");
  /* No grant at all: the evidence alone opens nothing. */
  assert_int_equal(incr(g, ns_a, NULL, 0, &num, &err), TEEX_EPERM);
  refused_for(g, "no SM grant for namespace");
  /* A grant the SM issued to another worker. */
  uint8_t other[20];
  memset(other, 0x42, 20);
  assert_int_equal(
      teex_ds_grant_sign(g->sm_sk, other, ns_a, now + 600, grant, &n), 0);
  assert_int_equal(incr(g, ns_a, grant, n, &num, &err), TEEX_EPERM);
  refused_for(g, "grant: issued to another worker");
  /* A grant the worker signed itself. */
  assert_int_equal(teex_ds_grant_sign(g->worker_sk, g->worker_addr, ns_b,
                                      now + 600, grant, &n),
                   0);
  assert_int_equal(incr(g, ns_b, grant, n, &num, &err), TEEX_EPERM);
  refused_for(g, "grant: not signed by the SM");
  /* An expired grant. */
  assert_int_equal(
      teex_ds_grant_sign(g->sm_sk, g->worker_addr, ns_a, now - 1, grant, &n),
      0);
  assert_int_equal(incr(g, ns_a, grant, n, &num, &err), TEEX_EPERM);
  refused_for(g, "grant: expired");
  /* Nothing of the refused calls landed: the count is still 2. */
  assert_int_equal(
      teex_ds_grant_sign(g->sm_sk, g->worker_addr, ns_a, now + 600, grant, &n),
      0);
  assert_int_equal(incr(g, ns_a, grant, n, &num, &err), 0);
  assert_int_equal(num, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_grants, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
