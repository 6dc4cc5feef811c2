/* The statestore's TEE-DS backend (include/teex/statestore.h) against a
 * real 3-replica group, this test process as an enclave in role sm
 * (namespace smns): values encrypted and names hidden before they leave
 * (canaries in no replica file and in nothing TEE-DS returns, with
 * positive controls), records that cannot be swapped, optimistic
 * transactions that never lose an increment, and a group that is down
 * failing clearly and losing nothing. */
#include "net_fixture.c"

#include "teex/statestore.h"

#include <pthread.h>

#define CANARY_NAME "svc/canary-name-5e0c1d"
#define CANARY_VAL "canary-value-93ab27f4"

struct fx {
  struct net t;
  EVP_PKEY *key;
  X509 *cert;
  struct teex_tls_ctx *ctx; /* our RA-TLS identity in role sm */
  uint8_t secret[64];
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  net_init(&f->t);
  net_start_all(&f->t);
  net_leader(&f->t);
  net_warm_up(&f->t);
  struct teex_err err;
  assert_int_equal(
      teex_ratls_identity_new(f->t.enclave, NULL, &f->key, &f->cert, &err), 0);
  struct teex_tls_config tc = {.cert = f->cert,
                               .key = f->key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &f->t.ver};
  assert_int_equal(teex_tls_ctx_new(&f->ctx, &tc, 0, &err), 0);
  teex_random(f->secret, sizeof f->secret);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  net_close(&f->t);
  teex_tls_ctx_free(f->ctx);
  EVP_PKEY_free(f->key);
  X509_free(f->cert);
  free(f);
  return 0;
}

static struct teex_statestore *open_state(struct fx *f, uint32_t timeout_ms) {
  struct teex_statestore_ds_config dc = {.client = {.replicas = f->t.addrs,
                                                    .n_replicas = NET_N,
                                                    .tls = f->ctx,
                                                    .ns = "smns",
                                                    .timeout_ms = timeout_ms,
                                                    .connect_timeout_ms = 500},
                                         .secret = f->secret,
                                         .secret_len = sizeof f->secret,
                                         .label = "sm"};
  struct teex_statestore *s;
  struct teex_err err;
  assert_int_equal(teex_statestore_open_ds(&dc, &s, &err), 0);
  assert_string_equal(teex_statestore_backend(s), "tee-ds");
  return s;
}

/* A raw client in the same namespace: what TEE-DS holds and returns. */
static struct teex_ds_sync *raw(struct fx *f) {
  struct teex_ds_client_config cc = {.replicas = f->t.addrs,
                                     .n_replicas = NET_N,
                                     .tls = f->ctx,
                                     .ns = "smns",
                                     .timeout_ms = 10000};
  struct teex_ds_sync *s;
  struct teex_err err;
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  return s;
}

static int found_one(const char *name, const uint8_t *val, size_t len,
                     void *arg) {
  if (strcmp(name, CANARY_NAME) == 0 && len == strlen(CANARY_VAL) &&
      memcmp(val, CANARY_VAL, len) == 0)
    (*(int *)arg)++;
  return 0;
}

static void test_encrypted_names_hidden(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_statestore *s = open_state(f, 10000);
  assert_int_equal(
      teex_statestore_put(s, CANARY_NAME, CANARY_VAL, strlen(CANARY_VAL), &err),
      0);
  assert_int_equal(teex_statestore_put(s, "svc/other", "x", 1, &err), 0);
  /* Positive control of the path: the SM reads its canary back. */
  struct teex_buf out;
  teex_buf_init(&out, 1024, TEEX_BUF_SECRET);
  assert_int_equal(teex_statestore_get(s, CANARY_NAME, &out, &err), 0);
  assert_int_equal(out.len, strlen(CANARY_VAL));
  assert_memory_equal(out.data, CANARY_VAL, out.len);
  int hits = 0;
  assert_int_equal(teex_statestore_scan(s, "svc", found_one, &hits, &err), 0);
  assert_int_equal(hits, 1);
  assert_int_equal(teex_statestore_get(s, "svc/absent", &out, &err),
                   TEEX_ENOTFOUND);
  assert_int_equal(teex_statestore_get(s, "no-category", &out, &err),
                   TEEX_EINVAL);

  /* What TEE-DS itself holds: keys "smns/svc/<64 hex>", no name, no value. */
  struct teex_ds_sync *r = raw(f);
  struct teex_ds_cmd c = {.op = TEEX_DS_SCAN, .grant = "smns", .limit = 16};
  c.key = (const uint8_t *)"smns/";
  c.key_len = 5;
  struct teex_ds_result res;
  assert_int_equal(
      teex_ds_sync_exec(r, &c, TEEX_DS_READ_LINEARIZABLE, &res, &err), 0);
  assert_int_equal(res.n_items, 2);
  for (size_t i = 0; i < res.n_items; i++) {
    const struct teex_ds_pair *p = &res.items[i];
    assert_int_equal(p->key_len, 5 + 4 + 64);
    assert_memory_equal(p->key, "smns/svc/", 9);
    assert_false(tu_buf_contains_any_encoding(
        p->key, p->key_len, (const uint8_t *)"canary-name", 11));
    assert_false(tu_buf_contains_any_encoding(
        p->val, p->val_len, (const uint8_t *)CANARY_VAL, strlen(CANARY_VAL)));
    assert_false(tu_buf_contains_any_encoding(
        p->val, p->val_len, (const uint8_t *)"canary-name", 11));
  }
  /* Swapping records: the canary's ciphertext under the other key does not
   * open (its TEE-DS key is the associated data). */
  const struct teex_ds_pair *a = &res.items[0], *b = &res.items[1];
  struct teex_ds_cmd set = {.op = TEEX_DS_SET, .grant = "smns"};
  set.key = b->key;
  set.key_len = b->key_len;
  set.val = a->val;
  set.val_len = a->val_len;
  struct teex_ds_result sr;
  assert_int_equal(
      teex_ds_sync_exec(r, &set, TEEX_DS_READ_LINEARIZABLE, &sr, &err), 0);
  assert_int_equal(sr.status, 0);
  teex_ds_result_free(&sr);
  teex_ds_result_free(&res);
  int auth = 0;
  if (teex_statestore_get(s, CANARY_NAME, &out, &err) == TEEX_EAUTH)
    auth++;
  if (teex_statestore_get(s, "svc/other", &out, &err) == TEEX_EAUTH)
    auth++;
  assert_int_equal(auth, 1); /* the one overwritten */
  assert_non_null(strstr(err.msg, "does not open"));
  teex_ds_sync_close(r);
  teex_buf_free(&out);
  teex_statestore_close(s);

  /* At rest: neither canary in any replica's files ... */
  for (int i = 0; i < NET_N; i++)
    net_stop(&f->t, i, SIGTERM);
  for (int i = 0; i < NET_N; i++) {
    char hit[512];
    assert_int_equal(tu_tree_contains(f->t.state[i], "canary-name", 11, hit),
                     0);
    assert_int_equal(
        tu_tree_contains(f->t.state[i], CANARY_VAL, strlen(CANARY_VAL), hit),
        0);
  }
  /* ... and the same search finds it written in clear (positive control). */
  char ctl[700];
  snprintf(ctl, sizeof ctl, "%s/raft/control", f->t.state[2]);
  assert_int_equal(tu_write_file(ctl, CANARY_VAL, strlen(CANARY_VAL)), 0);
  assert_int_equal(
      tu_tree_contains(f->t.state[2], CANARY_VAL, strlen(CANARY_VAL), NULL), 1);
}

/* ---- optimistic transactions ---- */

struct incr {
  const char *name;
  uint32_t max; /* 0: unlimited; else refuse at max (a max-uses counter) */
  int runs;
  struct teex_statestore *other; /* interfere once, from another handle */
};

static int incr_fn(struct teex_statestore_txn *txn, void *arg,
                   struct teex_err *err) {
  struct incr *x = arg;
  x->runs++;
  struct teex_buf v;
  teex_buf_init(&v, 16, 0);
  uint32_t n = 0;
  int rc = teex_statestore_txn_get(txn, x->name, &v, err);
  if (rc == 0 && v.len == 4)
    memcpy(&n, v.data, 4);
  else if (rc != TEEX_ENOTFOUND)
    goto out;
  if (x->other != NULL) {
    /* Between our read and our commit, someone else counts one. */
    struct incr y = {.name = x->name, .max = 0};
    struct teex_statestore *o = x->other;
    x->other = NULL;
    assert_int_equal(teex_statestore_run(o, incr_fn, &y, err), 0);
  }
  if (x->max != 0 && n >= x->max) {
    rc = teex_err_set(err, TEEX_EPOLICY, "no use left");
    goto out;
  }
  n++;
  rc = teex_statestore_txn_put(txn, x->name, &n, 4, err);
out:
  teex_buf_free(&v);
  return rc;
}

static uint32_t read_count(struct teex_statestore *s, const char *name) {
  struct teex_buf v;
  struct teex_err err;
  teex_buf_init(&v, 16, 0);
  uint32_t n = 0;
  assert_int_equal(teex_statestore_get(s, name, &v, &err), 0);
  assert_int_equal(v.len, 4);
  memcpy(&n, v.data, 4);
  teex_buf_free(&v);
  return n;
}

struct worker_arg {
  struct teex_statestore *s;
  int n, ok, refused, other;
  char last[256];
};

static void *count_thread(void *p) {
  struct worker_arg *w = p;
  for (int i = 0; i < w->n; i++) {
    struct incr x = {.name = "dsuse/limited", .max = 30};
    struct teex_err err;
    int rc = teex_statestore_run(w->s, incr_fn, &x, &err);
    if (rc == 0)
      w->ok++;
    else if (rc == TEEX_EPOLICY)
      w->refused++;
    else {
      w->other++;
      snprintf(w->last, sizeof w->last, "%s", err.msg);
    }
  }
  return NULL;
}

static void test_conflicts_lose_nothing(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_statestore *a = open_state(f, 10000), *b = open_state(f, 10000);
  /* Deterministic conflict: b commits between a's read and a's commit; a
   * runs again on fresh reads, and both increments count. */
  struct incr x = {.name = "dsuse/one", .other = b};
  assert_int_equal(teex_statestore_run(a, incr_fn, &x, &err), 0);
  assert_int_equal(x.runs, 2);
  assert_int_equal(read_count(a, "dsuse/one"), 2);
  assert_int_equal(read_count(b, "dsuse/one"), 2);

  /* Two handles (two threads, two connections) racing on a max-uses
   * counter of 30 with 2 x 20 attempts: exactly 30 granted, never more,
   * no increment lost. */
  struct worker_arg wa = {.s = a, .n = 20}, wb = {.s = b, .n = 20};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, count_thread, &wa), 0);
  assert_int_equal(pthread_create(&tb, NULL, count_thread, &wb), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  if (wa.other + wb.other != 0)
    fail_msg("failed increments: %d (%s) %d (%s)", wa.other, wa.last, wb.other,
             wb.last);
  assert_int_equal(wa.ok + wb.ok, 30);
  assert_int_equal(wa.refused + wb.refused, 10);
  assert_int_equal(read_count(a, "dsuse/limited"), 30);
  teex_statestore_close(a);
  teex_statestore_close(b);
}

/* The group down: a clear error, nothing changed; back up: all there. */
static void test_group_down(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_statestore *s = open_state(f, 1500);
  uint32_t one = 1;
  assert_int_equal(teex_statestore_put(s, "dsuse/kept", &one, 4, &err), 0);
  /* Idle for longer than the operation timeout: the next operation still
   * gets its whole timeout (the blocking client's loop time is refreshed;
   * it once timed out at once here). */
  net_sleep_ms(2000);
  struct teex_buf v;
  teex_buf_init(&v, 16, 0);
  if (teex_statestore_get(s, "dsuse/kept", &v, &err) != 0)
    fail_msg("get after idling: %s", err.msg);
  for (int i = 0; i < NET_N; i++)
    net_stop(&f->t, i, SIGKILL);
  int rc = teex_statestore_get(s, "dsuse/kept", &v, &err);
  assert_true(rc == TEEX_ETIMEDOUT || rc == TEEX_ECONN);
  assert_non_null(strstr(err.msg, "unreachable"));
  struct incr x = {.name = "dsuse/kept"};
  rc = teex_statestore_run(s, incr_fn, &x, &err);
  assert_true(rc == TEEX_ETIMEDOUT || rc == TEEX_ECONN);
  net_start_all(&f->t);
  net_leader(&f->t);
  /* The first operations may meet the election: retry briefly. */
  for (int i = 0; i < 40; i++) {
    x.runs = 0;
    if ((rc = teex_statestore_run(s, incr_fn, &x, &err)) == 0)
      break;
    net_sleep_ms(250);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(read_count(s, "dsuse/kept"), 2);
  teex_buf_free(&v);
  teex_statestore_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_encrypted_names_hidden, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_conflicts_lose_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_group_down, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
