/* The TEE-DS group key provisioned by the Service Manager: a real `teex sm
 * run` whose policy admits the teex build in role ds, three replicas
 * initialised with --sm that each get the key from it (no replica makes or
 * hands over a key), a group that then works, and the SM refusing the key
 * to an enclave of another role. */
#include "net_fixture.c"

#include "teex/sm_client.h"

#define SREG "0x5151515151515151515151515151515151515151"
#define EREG "0xe7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7"

struct smfx {
  struct net t;
  int sm_pid;
  char sm_addr[64], sm_policy[600], sm_log[600];
  struct teex_tee_policy smpol; /* what enclaves require of the SM */
};

static void measure(const char *dir, const char *role, const char *exe,
                    uint8_t out[32]) {
  struct teex_tee_config c;
  memset(&c, 0, sizeof c);
  c.data_dir = dir;
  c.role = role;
  c.exe_path = exe;
  struct teex_tee *tee;
  struct teex_err err;
  assert_int_equal(teex_tee_open(&c, &tee, &err), 0);
  memcpy(out, teex_tee_self(tee)->mr_enclave, 32);
  teex_tee_close(tee);
}

static int setup(void **state) {
  struct smfx *f = calloc(1, sizeof(*f));
  struct net *t = &f->t;
  net_prepare(t);
  char root[65], ds[65], sm[65], text[1024];
  uint8_t m[32];
  teex_hex_encode(t->root, 32, root);
  measure(t->dir, "ds", tu_teex_bin(), m);
  teex_hex_encode(m, 32, ds);
  measure(t->dir, "sm", tu_teex_bin(), m);
  teex_hex_encode(m, 32, sm);
  /* What the SM accepts: the teex build as a TEE-DS replica. */
  char enclaves[600];
  snprintf(enclaves, sizeof enclaves, "%s/enclaves.conf", t->dir);
  int n = snprintf(text, sizeof text,
                   "[policy]\nroles = ds\nallow_simulated = true\n[roots]\n"
                   "net = %s\n[measurements]\nds = %s\n",
                   root, ds);
  assert_int_equal(tu_write_file(enclaves, text, (size_t)n), 0);
  /* What replicas require of the SM. */
  snprintf(f->sm_policy, sizeof f->sm_policy, "%s/sm-policy.conf", t->dir);
  n = snprintf(text, sizeof text,
               "[policy]\nroles = sm\nallow_simulated = true\n[roots]\n"
               "net = %s\n[measurements]\nsm = %s\n",
               root, sm);
  assert_int_equal(tu_write_file(f->sm_policy, text, (size_t)n), 0);
  struct teex_err err;
  teex_tee_policy_init(&f->smpol);
  assert_int_equal(teex_tee_policy_load(&f->smpol, f->sm_policy, &err), 0);
  char smstate[600], ready[600];
  snprintf(smstate, sizeof smstate, "%s/sm", t->dir);
  snprintf(ready, sizeof ready, "%s/sm.ready", t->dir);
  snprintf(f->sm_log, sizeof f->sm_log, "%s/sm.log", t->dir);
  char *argv[] = {(char *)tu_teex_bin(),
                  "sm",
                  "run",
                  "--data-dir",
                  t->dir,
                  "--state",
                  smstate,
                  "--listen",
                  "127.0.0.1:0",
                  "--client-listen",
                  "127.0.0.1:0",
                  "--policy",
                  enclaves,
                  "--service-registry",
                  SREG,
                  "--enclave-registry",
                  EREG,
                  "--ready-file",
                  ready,
                  NULL};
  f->sm_pid = tu_spawn(argv, f->sm_log);
  assert_true(f->sm_pid > 0);
  if (tu_wait_file(ready, 20000) != 0) {
    size_t len;
    char *log = (char *)tu_read_file(f->sm_log, &len);
    fail_msg("sm did not start: %s", log ? log : "");
  }
  struct teex_config c;
  teex_config_init(&c);
  assert_int_equal(teex_config_load(&c, ready, &err), 0);
  uint64_t port = 0;
  assert_int_equal(teex_config_get_u64(&c, "enclave_port", 0, &port, &err), 0);
  teex_config_free(&c);
  snprintf(f->sm_addr, sizeof f->sm_addr, "127.0.0.1:%llu",
           (unsigned long long)port);
  net_init_states(t, f->sm_addr, f->sm_policy);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct smfx *f = *state;
  if (f->sm_pid > 0)
    tu_stop(f->sm_pid, SIGKILL, 1000);
  net_close(&f->t);
  free(f);
  return 0;
}

static int count_in(const char *path, const char *needle) {
  size_t n;
  char *log = (char *)tu_read_file(path, &n);
  int c = 0;
  for (const char *p = log; p != NULL && (p = strstr(p, needle)) != NULL; p++)
    c++;
  free(log);
  return c;
}

static void test_group_key_from_sm(void **state) {
  struct smfx *f = *state;
  struct net *t = &f->t;
  /* No replica holds a key before it runs: the SM makes it. */
  for (int i = 0; i < NET_N; i++) {
    char k[700];
    snprintf(k, sizeof k, "%s/%s", t->state[i], TEEX_DS_KEY_FILE);
    assert_int_not_equal(access(k, F_OK), 0);
  }
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  NET_SET_OK(t, s, "app/k", "from-the-sm");
  char v[32];
  assert_int_equal(net_get(s, "app/k", TEEX_DS_READ_LINEARIZABLE, v, sizeof v),
                   0);
  assert_string_equal(v, "from-the-sm");
  teex_ds_sync_close(s);
  for (int i = 0; i < NET_N; i++) {
    assert_int_equal(count_in(t->log[i], "group key received from the SM"), 1);
    assert_int_equal(count_in(t->log[i], "group key handed"), 0);
  }
  assert_int_equal(count_in(f->sm_log, "ds group key released"), NET_N);
  /* Restarted, a replica unseals its own copy: no new request to the SM. */
  net_stop(t, 2, SIGTERM);
  net_start(t, 2);
  assert_int_equal(count_in(f->sm_log, "ds group key released"), NET_N);
}

static void test_sm_refuses_other_roles(void **state) {
  struct smfx *f = *state;
  struct net *t = &f->t;
  /* This test process in role sm (not ds, not the teex build). */
  EVP_PKEY *k;
  X509 *x;
  struct teex_err err;
  assert_int_equal(teex_ratls_identity_new(t->enclave, NULL, &k, &x, &err), 0);
  uint8_t gid[16] = {1}, key[32];
  int rc = teex_sm_client_ds_group_key(t->enclave, x, k, f->sm_addr, &f->smpol,
                                       gid, key, &err);
  assert_int_not_equal(rc, 0);
  /* Refused in the handshake (the SM's policy admits the teex build in role
   * ds only); the SM logs why, possibly a moment after the client saw it. */
  int logged = 0;
  for (int i = 0; i < 100 && !logged; i++)
    if (count_in(f->sm_log, "is not allowed by the policy") >= 1)
      logged = 1;
    else
      net_sleep_ms(20);
  assert_true(logged);
  assert_int_equal(count_in(f->sm_log, "ds group key released"), 0);
  EVP_PKEY_free(k);
  X509_free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_group_key_from_sm, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sm_refuses_other_roles, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
