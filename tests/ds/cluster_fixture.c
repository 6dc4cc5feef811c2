/* A TEE-DS group on libraft's deterministic in-memory fixture, shared by
 * the cluster and linearizability tests (included, not compiled alone). */
#include "ds/consensus.h"
#include "ds/replica.h"
#include "teex/ds.h"

#include <raft.h>
#include <raft/fixture.h>
#include <string.h>

#define TC_MAX 5
/* Helpers a given test may not use. */
#define TC_FN static __attribute__((unused))

struct tc {
  struct raft_fixture f;
  unsigned n;
  struct teex_ds_replica *rep[TC_MAX];
  struct teex_ds_consensus *cons[TC_MAX];
  /* Group key rotation: replica i is handed a key epoch it lacks (copied
   * from a replica holding it, as the members' key hand-over does) unless
   * no_handover[i]; handed counts hand-overs. */
  int no_handover[TC_MAX];
  unsigned handed;
};

static int tc_need_key(void *arg, struct teex_ds_replica *r, uint32_t epoch) {
  struct tc *t = arg;
  unsigned self = 0;
  while (self < t->n && t->rep[self] != r)
    self++;
  if (self == t->n || t->no_handover[self])
    return TEEX_EPERM;
  static uint8_t buf[TEEX_DS_KEYS_ENC_MAX];
  for (unsigned i = 0; i < t->n; i++) {
    if (i == self || teex_ds_replica_key_epoch(t->rep[i]) < epoch)
      continue;
    size_t n = teex_ds_replica_keys_encode(t->rep[i], buf);
    int rc = teex_ds_replica_add_keys(r, buf, n, NULL);
    memset(buf, 0, sizeof buf);
    if (rc == 0)
      t->handed++;
    return rc;
  }
  return TEEX_ENOTFOUND;
}

/* The leader's clock: the fixture's global time, so TTLs are testable. */
TC_FN uint64_t tc_clock(void *arg) {
  struct tc *t = arg;
  return (uint64_t)raft_fixture_time(&t->f) + 1000000;
}

static const uint8_t tc_group_id[16] = "teex-ds-test-grp";

/* keys[i]: replica i's group key (all the same in a healthy group). */
TC_FN void tc_init_keys(struct tc *t, unsigned n, const uint8_t *keys[]) {
  memset(t, 0, sizeof(*t));
  t->n = n;
  assert_int_equal(raft_fixture_initialize(&t->f), 0);
  for (unsigned i = 0; i < n; i++) {
    struct teex_ds_replica_config cfg = {.group_key = keys[i],
                                         .clock_ms = tc_clock,
                                         .clock_arg = t,
                                         .need_key = tc_need_key,
                                         .need_key_arg = t};
    memcpy(cfg.group_id, tc_group_id, 16);
    struct teex_err err;
    assert_int_equal(teex_ds_replica_new(&cfg, &t->rep[i], &err), 0);
    assert_int_equal(
        teex_ds_raft_new(&teex_ds_replica_hooks, t->rep[i], &t->cons[i]), 0);
    assert_int_equal(raft_fixture_grow(&t->f, teex_ds_raft_fsm(t->cons[i])), 0);
    teex_ds_raft_attach(t->cons[i], raft_fixture_get(&t->f, i));
    teex_ds_replica_bind(t->rep[i], t->cons[i]);
  }
  struct raft_configuration conf;
  assert_int_equal(raft_fixture_configuration(&t->f, n, &conf), 0);
  assert_int_equal(raft_fixture_bootstrap(&t->f, &conf), 0);
  raft_configuration_close(&conf);
  assert_int_equal(raft_fixture_start(&t->f), 0);
  assert_true(raft_fixture_step_until_has_leader(&t->f, 10000));
}

static const uint8_t tc_key[32] = "0123456789abcdef0123456789abcdef";

TC_FN void tc_init(struct tc *t, unsigned n) {
  const uint8_t *keys[TC_MAX] = {tc_key, tc_key, tc_key, tc_key, tc_key};
  tc_init_keys(t, n, keys);
}

TC_FN void tc_close(struct tc *t) {
  raft_fixture_close(&t->f);
  for (unsigned i = 0; i < t->n; i++) {
    t->cons[i]->ops->free(t->cons[i]);
    teex_ds_replica_free(t->rep[i]);
  }
}

TC_FN unsigned tc_leader(struct tc *t) {
  return raft_fixture_leader_index(&t->f);
}

/* One outstanding operation. */
struct tc_op {
  int done;
  int status;
  struct teex_ds_result *res;
};

TC_FN void tc_done(void *arg, int status, struct teex_ds_result *res) {
  struct tc_op *op = arg;
  op->done = 1;
  op->status = status;
  op->res = res;
}

TC_FN void tc_op_clear(struct tc_op *op) {
  if (op->res) {
    teex_ds_result_free(op->res);
    free(op->res);
  }
  memset(op, 0, sizeof(*op));
}

/* Steps the fixture until op is done or max_steps pass. */
TC_FN int tc_wait(struct tc *t, struct tc_op *op, int max_steps) {
  for (int i = 0; i < max_steps && !op->done; i++)
    raft_fixture_step(&t->f);
  return op->done;
}

TC_FN int tc_submit_on(struct tc *t, unsigned i, const struct teex_ds_cmd *c,
                       struct tc_op *op) {
  struct teex_err err;
  memset(op, 0, sizeof(*op));
  return teex_ds_replica_submit(t->rep[i], c, tc_done, op, &err);
}

/* Submits on the leader and waits: the result's status (or the error). */
TC_FN int tc_run(struct tc *t, const struct teex_ds_cmd *c, struct tc_op *op) {
  int rc = tc_submit_on(t, tc_leader(t), c, op);
  if (rc != 0)
    return rc;
  assert_true(tc_wait(t, op, 20000));
  return op->status != 0 ? op->status : op->res->status;
}

TC_FN struct teex_ds_cmd tc_set_cmd(const char *k, const char *v) {
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)v;
  c.val_len = strlen(v);
  return c;
}

TC_FN struct teex_ds_cmd tc_get_cmd(const char *k) {
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  return c;
}

/* Steps until every live replica applied up to the leader's last index. */
TC_FN void tc_settle(struct tc *t) {
  unsigned l = tc_leader(t);
  raft_index idx = raft_last_index(raft_fixture_get(&t->f, l));
  for (unsigned i = 0; i < t->n; i++)
    if (raft_fixture_alive(&t->f, i))
      assert_true(raft_fixture_step_until_applied(&t->f, i, idx, 20000));
}
