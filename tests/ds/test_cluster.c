/* TEE-DS on a 3-replica group in libraft's deterministic in-memory fixture:
 * replication, failover, partitions, encryption of the log, wrong keys,
 * replays, namespaces, TTL and membership. */
#include "testutil.h"

#include "ds/cluster_fixture.c"
#include "teex/crypto.h"

#include <stdio.h>

/* Calls fn on every command entry in replica i's in-memory raft log. */
static void each_entry(struct tc *t, unsigned i,
                       void (*fn)(const struct raft_entry *, void *),
                       void *arg) {
  struct raft *r = raft_fixture_get(&t->f, i);
  struct raft_log *log = &r->log;
  for (size_t k = log->front; k != log->back; k = (k + 1) % log->size)
    if (log->entries[k].type == RAFT_COMMAND)
      fn(&log->entries[k], arg);
}

static void assert_same_state(struct tc *t) {
  struct teex_ds_status s0, s;
  teex_ds_replica_status(t->rep[0], &s0);
  uint8_t d0[32], d[32];
  teex_ds_kv_digest(teex_ds_replica_kv(t->rep[0]), d0);
  for (unsigned i = 1; i < t->n; i++) {
    teex_ds_replica_status(t->rep[i], &s);
    assert_int_equal(s.last_applied, s0.last_applied);
    assert_memory_equal(s.applied_chain, s0.applied_chain, 32);
    teex_ds_kv_digest(teex_ds_replica_kv(t->rep[i]), d);
    assert_memory_equal(d, d0, 32);
  }
}

static void test_replicate_same_order_same_results(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  unsigned l = tc_leader(&t);
  struct teex_ds_status st;
  teex_ds_replica_status(t.rep[l], &st);
  assert_true(st.leader);
  assert_int_equal(st.leader_id, st.self_id);
  /* 30 commands in flight at once, of every kind. */
  struct tc_op ops[30];
  char keys[30][16], vals[30][16];
  for (int i = 0; i < 30; i++) {
    snprintf(keys[i], sizeof(keys[i]), "app/k%d", i % 7);
    snprintf(vals[i], sizeof(vals[i]), "v%d", i);
    struct teex_ds_cmd c = tc_set_cmd(keys[i], vals[i]);
    if (i % 5 == 1)
      c.flags = TEEX_DS_IF_ABSENT;
    if (i % 5 == 2) {
      c = (struct teex_ds_cmd){.op = TEEX_DS_INCR, .grant = "app", .delta = 1};
      c.key = (const uint8_t *)"app/counter";
      c.key_len = 11;
    }
    if (i % 5 == 3) {
      c = tc_get_cmd(keys[i]);
    }
    if (i % 5 == 4) {
      c = tc_get_cmd(keys[i]);
      c.op = TEEX_DS_DEL;
    }
    assert_int_equal(tc_submit_on(&t, l, &c, &ops[i]), 0);
  }
  for (int i = 0; i < 30; i++)
    assert_true(tc_wait(&t, &ops[i], 20000));
  uint64_t prev = 0;
  for (int i = 0; i < 30; i++) {
    assert_int_equal(ops[i].status, 0);
    assert_true(ops[i].res->index > prev); /* applied in submission order */
    prev = ops[i].res->index;
    if (i % 5 == 2)
      assert_int_equal(ops[i].res->num, i / 5 + 1);
    tc_op_clear(&ops[i]);
  }
  tc_settle(&t);
  assert_same_state(&t);
  /* A follower cannot propose. */
  unsigned f = (l + 1) % 3;
  struct teex_ds_cmd c = tc_set_cmd("app/x", "y");
  assert_int_equal(tc_submit_on(&t, f, &c, &ops[0]), TEEX_ESTATE);
  assert_false(ops[0].done);
  tc_close(&t);
}

static void test_leader_kill_no_acked_write_lost(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  struct tc_op op;
  char k[16], v[16];
  for (int i = 0; i < 10; i++) {
    snprintf(k, sizeof(k), "app/w%d", i);
    snprintf(v, sizeof(v), "val%d", i);
    struct teex_ds_cmd c = tc_set_cmd(k, v);
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  unsigned old = tc_leader(&t);
  raft_fixture_kill(&t.f, old);
  assert_true(raft_fixture_step_until_has_no_leader(&t.f, 10000));
  assert_true(raft_fixture_step_until_has_leader(&t.f, 10000));
  unsigned nl = tc_leader(&t);
  assert_int_not_equal(nl, old);
  struct teex_ds_status st;
  teex_ds_replica_status(t.rep[nl], &st);
  assert_true(st.term > 1);
  for (int i = 0; i < 10; i++) {
    snprintf(k, sizeof(k), "app/w%d", i);
    snprintf(v, sizeof(v), "val%d", i);
    struct teex_ds_cmd c = tc_get_cmd(k);
    struct teex_err err;
    memset(&op, 0, sizeof(op));
    assert_int_equal(teex_ds_replica_read(t.rep[nl], &c, tc_done, &op, &err),
                     0);
    assert_true(tc_wait(&t, &op, 20000));
    assert_int_equal(op.status, 0);
    assert_int_equal(op.res->status, 0);
    assert_int_equal(op.res->val_len, strlen(v));
    assert_memory_equal(op.res->val, v, strlen(v));
    tc_op_clear(&op);
  }
  struct teex_ds_cmd c = tc_set_cmd("app/after", "kill");
  assert_int_equal(tc_run(&t, &c, &op), 0);
  tc_op_clear(&op);
  /* The old leader comes back and catches up. */
  raft_fixture_revive(&t.f, old);
  tc_settle(&t);
  assert_same_state(&t);
  tc_close(&t);
}

static void test_partitioned_minority_cannot_commit(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  unsigned old = tc_leader(&t);
  unsigned a = (old + 1) % 3, b = (old + 2) % 3;
  raft_fixture_disconnect(&t.f, old, a);
  raft_fixture_disconnect(&t.f, old, b);
  struct tc_op lost;
  struct teex_ds_cmd c = tc_set_cmd("app/minority", "never");
  assert_int_equal(tc_submit_on(&t, old, &c, &lost), 0);
  /* The majority elects a leader of its own and commits. */
  for (int i = 0; i < 200000; i++) {
    raft_fixture_step(&t.f);
    struct raft *ra = raft_fixture_get(&t.f, a),
                *rb = raft_fixture_get(&t.f, b);
    if (raft_state(ra) == RAFT_LEADER || raft_state(rb) == RAFT_LEADER)
      break;
  }
  unsigned nl = raft_state(raft_fixture_get(&t.f, a)) == RAFT_LEADER ? a : b;
  assert_int_equal(raft_state(raft_fixture_get(&t.f, nl)), RAFT_LEADER);
  struct tc_op won;
  struct teex_ds_cmd c2 = tc_set_cmd("app/majority", "yes");
  assert_int_equal(tc_submit_on(&t, nl, &c2, &won), 0);
  assert_true(tc_wait(&t, &won, 20000));
  assert_int_equal(won.status, 0);
  /* The minority's proposal was never acknowledged as applied. */
  assert_false(lost.done && lost.status == 0);
  raft_fixture_reconnect(&t.f, old, a);
  raft_fixture_reconnect(&t.f, old, b);
  raft_fixture_step_until_elapsed(&t.f, 5000);
  assert_true(raft_fixture_step_until_has_leader(&t.f, 10000));
  tc_settle(&t);
  assert_same_state(&t);
  if (lost.done)
    assert_int_not_equal(lost.status, 0);
  for (unsigned i = 0; i < 3; i++) {
    struct teex_ds_result r;
    struct teex_ds_cmd g = tc_get_cmd("app/minority");
    assert_int_equal(teex_ds_replica_read_local(t.rep[i], &g, &r), 0);
    assert_int_equal(r.status, TEEX_ENOTFOUND);
    g = tc_get_cmd("app/majority");
    assert_int_equal(teex_ds_replica_read_local(t.rep[i], &g, &r), 0);
    assert_int_equal(r.status, 0);
    teex_ds_result_free(&r);
  }
  tc_op_clear(&won);
  tc_op_clear(&lost);
  tc_close(&t);
}

struct canary_scan {
  const char *needle;
  int hits, entries;
};

static void scan_entry(const struct raft_entry *e, void *arg) {
  struct canary_scan *s = arg;
  s->entries++;
  s->hits += tu_buf_contains_any_encoding(e->buf.base, e->buf.len, s->needle,
                                          strlen(s->needle));
}

static void test_log_and_snapshot_carry_only_ciphertext(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  const char *key = "app/CANARYKEY-5ee1d";
  const char *val = "CANARYVALUE-7f3a9c";
  struct teex_ds_cmd c = tc_set_cmd(key, val);
  /* Positive control: the plaintext command holds both canaries. */
  uint8_t *enc;
  size_t enc_len;
  struct teex_err err;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &enc_len, &err), 0);
  assert_true(tu_buf_contains_any_encoding(enc, enc_len, key, strlen(key)));
  assert_true(tu_buf_contains_any_encoding(enc, enc_len, val, strlen(val)));
  free(enc);
  struct tc_op op;
  assert_int_equal(tc_run(&t, &c, &op), 0);
  tc_op_clear(&op);
  tc_settle(&t);
  for (unsigned i = 0; i < 3; i++) {
    struct canary_scan sk = {"CANARYKEY-5ee1d", 0, 0};
    struct canary_scan sv = {val, 0, 0};
    each_entry(&t, i, scan_entry, &sk);
    each_entry(&t, i, scan_entry, &sv);
    assert_true(sk.entries >= 1);
    assert_int_equal(sk.hits, 0);
    assert_int_equal(sv.hits, 0);
  }
  /* Snapshots too: plaintext state has it, the sealed snapshot does not. */
  uint8_t *plain, *sealed;
  size_t plain_len, sealed_len;
  assert_int_equal(
      teex_ds_kv_snapshot(teex_ds_replica_kv(t.rep[0]), &plain, &plain_len), 0);
  assert_true(tu_buf_contains_any_encoding(plain, plain_len, val, strlen(val)));
  assert_int_equal(
      teex_ds_replica_hooks.snapshot(t.rep[0], &sealed, &sealed_len), 0);
  assert_false(
      tu_buf_contains_any_encoding(sealed, sealed_len, val, strlen(val)));
  assert_false(
      tu_buf_contains_any_encoding(sealed, sealed_len, "CANARYKEY", 9));
  /* The sealed snapshot restores on a replica with the key, bit for bit,
   * and is refused by one without it. */
  struct teex_ds_replica *fresh, *stranger;
  struct teex_ds_replica_config cfg = {.group_key = tc_key};
  memcpy(cfg.group_id, tc_group_id, 16);
  assert_int_equal(teex_ds_replica_new(&cfg, &fresh, &err), 0);
  uint8_t other_key[32] = {1};
  cfg.group_key = other_key;
  assert_int_equal(teex_ds_replica_new(&cfg, &stranger, &err), 0);
  assert_int_equal(teex_ds_replica_hooks.restore(fresh, sealed, sealed_len), 0);
  assert_int_equal(teex_ds_replica_hooks.restore(stranger, sealed, sealed_len),
                   TEEX_EAUTH);
  uint8_t d0[32], d1[32];
  teex_ds_kv_digest(teex_ds_replica_kv(t.rep[0]), d0);
  teex_ds_kv_digest(teex_ds_replica_kv(fresh), d1);
  assert_memory_equal(d0, d1, 32);
  teex_ds_replica_free(fresh);
  teex_ds_replica_free(stranger);
  free(plain);
  free(sealed);
  tc_close(&t);
}

static void test_wrong_group_key_halts_not_diverges(void **state) {
  (void)state;
  uint8_t bad[32];
  memcpy(bad, tc_key, 32);
  bad[0] ^= 1;
  const uint8_t *keys[3] = {tc_key, tc_key, bad};
  struct tc t;
  tc_init_keys(&t, 3, keys);
  assert_int_not_equal(tc_leader(&t), 2); /* server 0 times out first */
  struct tc_op op;
  for (int i = 0; i < 5; i++) {
    struct teex_ds_cmd c = tc_set_cmd("app/k", i % 2 ? "odd" : "even");
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  raft_fixture_step_until_elapsed(&t.f, 2000);
  struct teex_ds_status s0, s2;
  teex_ds_replica_status(t.rep[0], &s0);
  teex_ds_replica_status(t.rep[2], &s2);
  assert_int_equal(s2.failed, TEEX_EAUTH);
  assert_non_null(strstr(s2.failure, "cannot decrypt"));
  assert_int_equal(s0.failed, 0);
  /* It stopped at the first command entry: nothing of the group's state,
   * rather than a different state. */
  assert_true(s2.last_applied < s0.last_applied);
  assert_int_equal(s2.keys, 0);
  assert_int_equal(s0.keys, 1);
  /* The two good replicas agree. */
  struct teex_ds_status s1;
  teex_ds_replica_status(t.rep[1], &s1);
  assert_int_equal(s1.last_applied, s0.last_applied);
  assert_memory_equal(s1.applied_chain, s0.applied_chain, 32);
  tc_close(&t);
}

/* Replays replica 0's committed command entries, unpadded as the
 * consensus hands them to the state machine, into r (stopping at the first
 * one it refuses); returns how many it applied. */
static int replay_into(struct tc *t, struct teex_ds_replica *r) {
  struct raft_log *log = &raft_fixture_get(&t->f, 0)->log;
  int applied = 0;
  uint64_t index = log->offset;
  for (size_t k = log->front; k != log->back; k = (k + 1) % log->size) {
    index++;
    const struct raft_entry *e = &log->entries[k];
    if (e->type != RAFT_COMMAND)
      continue;
    const uint8_t *p = e->buf.base;
    size_t n = e->buf.len - p[e->buf.len - 1]; /* data | zeros | pad */
    void *res = NULL;
    if (teex_ds_replica_hooks.apply(r, index, p, n, &res) != 0)
      return applied;
    teex_ds_replica_hooks.result_free(r, res);
    applied++;
  }
  return applied;
}

/* The freshness anchor's chain check: replicas that apply the group's
 * entries compute its hash chain; one told the right chain at an index goes
 * on, one told another chain halts there as forked rather than serve a
 * state the anchor disowns. */
static void test_anchor_chain_watch(void **state) {
  (void)state;
  struct tc t;
  struct tc_op op;
  struct teex_ds_status st, s1, s2;
  uint8_t want[32], wrong[32];
  uint64_t at;
  tc_init(&t, 3);
  for (int i = 0; i < 4; i++) {
    struct teex_ds_cmd c = tc_set_cmd("app/w", i % 2 ? "odd" : "even");
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  tc_settle(&t);
  teex_ds_replica_status(t.rep[0], &st);
  at = st.last_applied;
  memcpy(want, st.applied_chain, 32);
  struct teex_ds_cmd c = tc_set_cmd("app/after", "x");
  assert_int_equal(tc_run(&t, &c, &op), 0);
  tc_op_clear(&op);
  tc_settle(&t);
  teex_ds_replica_status(t.rep[0], &st);

  memcpy(wrong, want, 32);
  wrong[7] ^= 1;
  struct teex_ds_replica_config cfg = {.group_key = tc_key};
  memcpy(cfg.group_id, tc_group_id, 16);
  struct teex_err err;
  struct teex_ds_replica *good, *bad;
  assert_int_equal(teex_ds_replica_new(&cfg, &good, &err), 0);
  assert_int_equal(teex_ds_replica_new(&cfg, &bad, &err), 0);
  teex_ds_replica_watch(good, at, want);
  teex_ds_replica_watch(bad, at, wrong);
  assert_int_equal(teex_ds_replica_watch_result(good), TEEX_DS_WATCH_PENDING);
  assert_int_equal(replay_into(&t, good), 5);
  assert_int_equal(replay_into(&t, bad), 3); /* halts at the 4th */
  teex_ds_replica_status(good, &s1);
  teex_ds_replica_status(bad, &s2);
  assert_int_equal(teex_ds_replica_watch_result(good), TEEX_DS_WATCH_MATCHED);
  assert_int_equal(s1.failed, 0);
  assert_memory_equal(s1.applied_chain, st.applied_chain, 32);
  assert_int_equal(teex_ds_replica_watch_result(bad), TEEX_DS_WATCH_FORKED);
  assert_int_equal(s2.failed, TEEX_EROLLBACK);
  assert_non_null(strstr(s2.failure, "forked"));
  /* The chain binds the entries themselves: the same commands proposed
   * again (another run, other nonces) give another chain, although every
   * result is the same. */
  tc_close(&t);
  tc_init(&t, 3);
  for (int i = 0; i < 4; i++) {
    struct teex_ds_cmd c2 = tc_set_cmd("app/w", i % 2 ? "odd" : "even");
    assert_int_equal(tc_run(&t, &c2, &op), 0);
    tc_op_clear(&op);
  }
  tc_settle(&t);
  struct teex_ds_status again;
  teex_ds_replica_status(t.rep[0], &again);
  assert_int_equal(again.last_applied, at);
  assert_memory_not_equal(again.applied_chain, want, 32);
  teex_ds_replica_free(good);
  teex_ds_replica_free(bad);
  tc_close(&t);
}

static uint8_t *g_replay;
static size_t g_replay_len;
static void grab_last(const struct raft_entry *e, void *arg) {
  (void)arg;
  free(g_replay);
  /* The log holds the sealed entry plus consensus_raft.c's padding (its
   * last byte says how long): replay the sealed entry itself. */
  const uint8_t *b = e->buf.base;
  g_replay_len = e->buf.len - b[e->buf.len - 1];
  g_replay = malloc(g_replay_len);
  memcpy(g_replay, b, g_replay_len);
}

struct raw_done {
  int done, status;
  struct teex_ds_result *res;
};
static void raw_cb(void *arg, int status, void *result) {
  struct raw_done *d = arg;
  d->done = 1;
  d->status = status;
  d->res = result;
}

static void test_replayed_entry_refused_everywhere(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  struct tc_op op;
  struct teex_ds_cmd c = tc_set_cmd("app/balance", "100");
  assert_int_equal(tc_run(&t, &c, &op), 0);
  tc_op_clear(&op);
  unsigned l = tc_leader(&t);
  each_entry(&t, l, grab_last, NULL);
  c = tc_set_cmd("app/balance", "0");
  assert_int_equal(tc_run(&t, &c, &op), 0);
  tc_op_clear(&op);
  /* Re-propose the old sealed entry verbatim, as an attacker who could
   * inject into the log would. */
  struct raw_done d = {0};
  assert_int_equal(
      t.cons[l]->ops->propose(t.cons[l], g_replay, g_replay_len, raw_cb, &d),
      0);
  for (int i = 0; i < 20000 && !d.done; i++)
    raft_fixture_step(&t.f);
  assert_int_equal(d.status, 0);
  assert_int_equal(d.res->status, TEEX_EREPLAY);
  teex_ds_replica_hooks.result_free(t.rep[l], d.res);
  tc_settle(&t);
  for (unsigned i = 0; i < 3; i++) {
    struct teex_ds_status st;
    teex_ds_replica_status(t.rep[i], &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.failed, 0);
    struct teex_ds_result r;
    struct teex_ds_cmd g = tc_get_cmd("app/balance");
    assert_int_equal(teex_ds_replica_read_local(t.rep[i], &g, &r), 0);
    assert_memory_equal(r.val, "0", 1);
    teex_ds_result_free(&r);
  }
  assert_same_state(&t);
  free(g_replay);
  g_replay = NULL;
  tc_close(&t);
}

static void test_namespace_and_limits_in_group(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  struct tc_op op;
  struct teex_ds_cmd c = tc_set_cmd("bank/secret", "x");
  assert_int_equal(tc_run(&t, &c, &op), TEEX_EPERM);
  tc_op_clear(&op);
  struct teex_ds_cmd g = tc_get_cmd("bank/secret");
  struct teex_err err;
  memset(&op, 0, sizeof(op));
  assert_int_equal(
      teex_ds_replica_read(t.rep[tc_leader(&t)], &g, tc_done, &op, &err), 0);
  assert_true(tc_wait(&t, &op, 20000));
  assert_int_equal(op.res->status, TEEX_EPERM);
  tc_op_clear(&op);
  static uint8_t big[TEEX_DS_VALUE_MAX + 1];
  c = tc_set_cmd("app/big", "");
  c.val = big;
  c.val_len = sizeof(big);
  assert_int_equal(tc_submit_on(&t, tc_leader(&t), &c, &op), TEEX_ETOOBIG);
  assert_false(op.done);
  tc_settle(&t);
  for (unsigned i = 0; i < 3; i++)
    assert_int_equal(teex_ds_kv_count(teex_ds_replica_kv(t.rep[i])), 0);
  tc_close(&t);
}

static void test_ttl_by_leader_clock(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  struct tc_op op;
  struct teex_ds_cmd c = tc_set_cmd("app/session", "tok");
  c.ttl_ms = 3000;
  assert_int_equal(tc_run(&t, &c, &op), 0);
  uint64_t set_clock = op.res->clock_ms;
  tc_op_clear(&op);
  struct teex_ds_cmd g = tc_get_cmd("app/session");
  assert_int_equal(tc_run(&t, &g, &op), 0);
  tc_op_clear(&op);
  raft_fixture_step_until_elapsed(&t.f, 3500);
  assert_int_equal(tc_run(&t, &g, &op), TEEX_ENOTFOUND);
  assert_true(op.res->clock_ms >= set_clock + 3000);
  tc_op_clear(&op);
  tc_settle(&t);
  assert_same_state(&t);
  tc_close(&t);
}

/* EXPIRE and PERSIST replicate with the leader's clock; every replica ends
 * with the same expiry; COUNT runs as a linearizable read (barrier) and as a
 * local read on a follower. */
static void test_expire_count_replicated(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  struct tc_op op;
  const char *keys[] = {"app/s/1", "app/s/2", "app/s/3", "app/t"};
  for (int i = 0; i < 4; i++) {
    struct teex_ds_cmd c = tc_set_cmd(keys[i], "v");
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  struct teex_ds_cmd e = {.op = TEEX_DS_EXPIRE, .grant = "app"};
  e.key = (const uint8_t *)"app/s/1";
  e.key_len = 7;
  e.ttl_ms = 2000;
  assert_int_equal(tc_run(&t, &e, &op), 0);
  uint64_t exp = op.res->expire_at_ms;
  assert_int_equal(exp, op.res->clock_ms + 2000);
  tc_op_clear(&op);
  e.key = (const uint8_t *)"app/s/2"; /* expire, then persist */
  assert_int_equal(tc_run(&t, &e, &op), 0);
  tc_op_clear(&op);
  e.ttl_ms = 0;
  assert_int_equal(tc_run(&t, &e, &op), 0);
  assert_true(op.res->num > 0); /* it had the expiry set just before */
  tc_op_clear(&op);
  e.key = (const uint8_t *)"app/nope";
  e.key_len = 8;
  assert_int_equal(tc_run(&t, &e, &op), TEEX_ENOTFOUND);
  tc_op_clear(&op);
  tc_settle(&t);
  assert_same_state(&t);
  /* every replica's GET reports the leader-set expiry */
  struct teex_ds_cmd g = tc_get_cmd("app/s/1");
  for (unsigned i = 0; i < t.n; i++) {
    struct teex_ds_result r;
    assert_int_equal(teex_ds_replica_read_local(t.rep[i], &g, &r), 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.expire_at_ms, exp);
    teex_ds_result_free(&r);
  }
  struct teex_ds_cmd cnt = {.op = TEEX_DS_COUNT, .grant = "app"};
  cnt.key = (const uint8_t *)"app/s/";
  cnt.key_len = 6;
  struct teex_err err;
  memset(&op, 0, sizeof(op));
  assert_int_equal(
      teex_ds_replica_read(t.rep[tc_leader(&t)], &cnt, tc_done, &op, &err), 0);
  assert_true(tc_wait(&t, &op, 20000));
  assert_int_equal(op.status, 0);
  assert_int_equal(op.res->num, 3);
  tc_op_clear(&op);
  /* once the group clock passes the expiry, one key fewer everywhere */
  raft_fixture_step_until_elapsed(&t.f, 2500);
  struct teex_ds_cmd tick = tc_set_cmd("app/t", "w");
  assert_int_equal(tc_run(&t, &tick, &op), 0);
  tc_op_clear(&op);
  tc_settle(&t);
  unsigned follower = (tc_leader(&t) + 1) % t.n;
  struct teex_ds_result r;
  assert_int_equal(teex_ds_replica_read_local(t.rep[follower], &cnt, &r), 0);
  assert_int_equal(r.num, 2);
  teex_ds_result_free(&r);
  assert_same_state(&t);
  tc_close(&t);
}

static void test_concurrent_incr_and_cas(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  unsigned l = tc_leader(&t);
  struct tc_op ops[10];
  int seen[11] = {0};
  for (int i = 0; i < 10; i++) {
    struct teex_ds_cmd c = {.op = TEEX_DS_INCR, .grant = "app", .delta = 1};
    c.key = (const uint8_t *)"app/n";
    c.key_len = 5;
    assert_int_equal(tc_submit_on(&t, l, &c, &ops[i]), 0);
  }
  for (int i = 0; i < 10; i++) {
    assert_true(tc_wait(&t, &ops[i], 20000));
    assert_int_equal(ops[i].res->status, 0);
    seen[ops[i].res->num]++;
    tc_op_clear(&ops[i]);
  }
  for (int i = 1; i <= 10; i++)
    assert_int_equal(seen[i], 1); /* no lost update, no duplicate */
  /* Two CAS from the same expected value: exactly one wins. */
  for (int i = 0; i < 2; i++) {
    struct teex_ds_cmd c = {.op = TEEX_DS_CAS, .grant = "app"};
    c.key = (const uint8_t *)"app/n";
    c.key_len = 5;
    c.expect = (const uint8_t *)"10";
    c.expect_len = 2;
    c.val = (const uint8_t *)(i ? "B" : "A");
    c.val_len = 1;
    assert_int_equal(tc_submit_on(&t, l, &c, &ops[i]), 0);
  }
  assert_true(tc_wait(&t, &ops[0], 20000));
  assert_true(tc_wait(&t, &ops[1], 20000));
  assert_int_equal(ops[0].res->status, 0);
  assert_int_equal(ops[1].res->status, TEEX_ESTATE);
  assert_memory_equal(ops[1].res->val, "A", 1);
  tc_op_clear(&ops[0]);
  tc_op_clear(&ops[1]);
  tc_close(&t);
}

struct change_done {
  int done, status;
};
static void on_change(void *arg, int status) {
  struct change_done *d = arg;
  d->done = 1;
  d->status = status;
}

static void test_add_voter_catches_up_from_sealed_snapshot(void **state) {
  (void)state;
  struct tc t;
  tc_init(&t, 3);
  /* Snapshots every 8 entries, keeping 2: a newcomer must install one. */
  for (unsigned i = 0; i < 3; i++) {
    raft_set_snapshot_threshold(raft_fixture_get(&t.f, i), 8);
    raft_set_snapshot_trailing(raft_fixture_get(&t.f, i), 2);
  }
  struct tc_op op;
  char k[16];
  for (int i = 0; i < 30; i++) {
    snprintf(k, sizeof(k), "app/s%d", i);
    struct teex_ds_cmd c = tc_set_cmd(k, "snap");
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  tc_settle(&t);
  unsigned l = tc_leader(&t);
  assert_true(raft_fixture_get(&t.f, l)->log.snapshot.last_index > 0);
  /* A fourth replica joins. */
  struct teex_ds_replica_config cfg = {
      .group_key = tc_key, .clock_ms = tc_clock, .clock_arg = &t};
  memcpy(cfg.group_id, tc_group_id, 16);
  struct teex_err err;
  assert_int_equal(teex_ds_replica_new(&cfg, &t.rep[3], &err), 0);
  assert_int_equal(
      teex_ds_raft_new(&teex_ds_replica_hooks, t.rep[3], &t.cons[3]), 0);
  assert_int_equal(raft_fixture_grow(&t.f, teex_ds_raft_fsm(t.cons[3])), 0);
  teex_ds_raft_attach(t.cons[3], raft_fixture_get(&t.f, 3));
  teex_ds_replica_bind(t.rep[3], t.cons[3]);
  t.n = 4;
  assert_int_equal(raft_start(raft_fixture_get(&t.f, 3)), 0);
  struct change_done d = {0, 0};
  assert_int_equal(t.cons[3]->ops->add_voter(t.cons[3], 4, "4", on_change, &d),
                   TEEX_ESTATE); /* not the leader */
  assert_int_equal(t.cons[l]->ops->add_voter(t.cons[l], 4, "4", on_change, &d),
                   0);
  for (int i = 0; i < 200000 && !d.done; i++)
    raft_fixture_step(&t.f);
  assert_true(d.done);
  assert_int_equal(d.status, 0);
  struct teex_ds_cmd c = tc_set_cmd("app/after-join", "1");
  assert_int_equal(tc_run(&t, &c, &op), 0);
  tc_op_clear(&op);
  tc_settle(&t);
  uint8_t d0[32], d3[32];
  teex_ds_kv_digest(teex_ds_replica_kv(t.rep[l]), d0);
  teex_ds_kv_digest(teex_ds_replica_kv(t.rep[3]), d3);
  assert_memory_equal(d0, d3, 32);
  assert_int_equal(teex_ds_kv_count(teex_ds_replica_kv(t.rep[3])), 31);
  /* The snapshot carried the applied hash chain: the newcomer's chain is
   * the group's, although it never applied the first entries. */
  struct teex_ds_status sl, s3;
  teex_ds_replica_status(t.rep[l], &sl);
  teex_ds_replica_status(t.rep[3], &s3);
  assert_int_equal(s3.last_applied, sl.last_applied);
  assert_memory_equal(s3.applied_chain, sl.applied_chain, 32);
  /* it caught up by installing the sealed snapshot, not by replay alone */
  assert_true(raft_fixture_get(&t.f, 3)->log.snapshot.last_index > 0);
  /* and it can be removed again */
  memset(&d, 0, sizeof(d));
  assert_int_equal(t.cons[l]->ops->remove(t.cons[l], 4, on_change, &d), 0);
  for (int i = 0; i < 200000 && !d.done; i++)
    raft_fixture_step(&t.f);
  assert_int_equal(d.status, 0);
  tc_close(&t);
}

/* A sealed snapshot carries the applied hash chain and its recent points:
 * a replica restored from it checks an anchor the snapshot covers (the
 * honest chain matches; another chain halts it as forked, refusing the
 * snapshot), and its chain continues as the group's. */
static void test_snapshot_carries_hash_chain(void **state) {
  (void)state;
  struct tc t;
  struct tc_op op;
  char k[16];
  tc_init(&t, 3);
  for (int i = 0; i < 20; i++) {
    snprintf(k, sizeof(k), "app/c%d", i);
    struct teex_ds_cmd c = tc_set_cmd(k, "v");
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  tc_settle(&t);
  unsigned l = tc_leader(&t);
  struct teex_ds_status a, b;
  teex_ds_replica_status(t.rep[l], &a); /* the anchor: (index, chain) */
  for (int i = 20; i < 30; i++) {
    snprintf(k, sizeof(k), "app/c%d", i);
    struct teex_ds_cmd c = tc_set_cmd(k, "v");
    assert_int_equal(tc_run(&t, &c, &op), 0);
    tc_op_clear(&op);
  }
  tc_settle(&t);
  teex_ds_replica_status(t.rep[l], &b);
  assert_true(b.last_applied > a.last_applied);
  uint8_t *sealed;
  size_t sealed_len;
  assert_int_equal(
      teex_ds_replica_hooks.snapshot(t.rep[l], &sealed, &sealed_len), 0);
  assert_memory_equal(sealed, "TXS3", 4);
  struct teex_ds_replica_config cfg = {.group_key = tc_key};
  memcpy(cfg.group_id, tc_group_id, 16);
  struct teex_err err;
  struct teex_ds_replica *honest, *forked, *later, *plain;
  assert_int_equal(teex_ds_replica_new(&cfg, &honest, &err), 0);
  assert_int_equal(teex_ds_replica_new(&cfg, &forked, &err), 0);
  assert_int_equal(teex_ds_replica_new(&cfg, &later, &err), 0);
  assert_int_equal(teex_ds_replica_new(&cfg, &plain, &err), 0);
  /* Honest: the anchor below the snapshot is checked at restore. */
  teex_ds_replica_watch(honest, a.last_applied, a.applied_chain);
  assert_int_equal(teex_ds_replica_hooks.restore(honest, sealed, sealed_len),
                   0);
  assert_int_equal(teex_ds_replica_watch_result(honest), TEEX_DS_WATCH_MATCHED);
  struct teex_ds_status h;
  teex_ds_replica_status(honest, &h);
  assert_memory_equal(h.applied_chain, b.applied_chain, 32);
  assert_int_equal(h.failed, 0);
  /* Tampered or rolled back: another chain at the anchored index. */
  uint8_t wrong[32];
  memcpy(wrong, a.applied_chain, 32);
  wrong[3] ^= 0x40;
  teex_ds_replica_watch(forked, a.last_applied, wrong);
  assert_int_equal(teex_ds_replica_hooks.restore(forked, sealed, sealed_len),
                   TEEX_EROLLBACK);
  assert_int_equal(teex_ds_replica_watch_result(forked), TEEX_DS_WATCH_FORKED);
  struct teex_ds_status f;
  teex_ds_replica_status(forked, &f);
  assert_int_equal(f.failed, TEEX_EROLLBACK);
  assert_non_null(strstr(f.failure, "forked"));
  assert_int_equal(teex_ds_kv_count(teex_ds_replica_kv(forked)), 0);
  /* An anchor past the snapshot stays pending until applied. */
  teex_ds_replica_watch(later, b.last_applied + 5, wrong);
  assert_int_equal(teex_ds_replica_hooks.restore(later, sealed, sealed_len), 0);
  assert_int_equal(teex_ds_replica_watch_result(later), TEEX_DS_WATCH_PENDING);
  /* Every snapshot byte is authenticated: one flipped bit is refused. */
  sealed[sealed_len / 2] ^= 1;
  assert_int_equal(teex_ds_replica_hooks.restore(plain, sealed, sealed_len),
                   TEEX_EAUTH);
  teex_ds_replica_free(honest);
  teex_ds_replica_free(forked);
  teex_ds_replica_free(later);
  teex_ds_replica_free(plain);
  free(sealed);
  tc_close(&t);
}

/* Group key rotation: the leader makes epoch 1 under client writes; the
 * follower handed the key applies on, every entry before and after the
 * rotation (no acknowledged write lost, states equal); the follower that
 * is refused the key (as a removed replica is) halts at the first entry
 * sealed under epoch 1 rather than skip it or read it; snapshots are then
 * sealed under epoch 1 (TXS3) and restore only where that key is held. */
static void test_key_rotation(void **state) {
  (void)state;
  struct tc t;
  struct tc_op op;
  char k[32], v[32];
  tc_init(&t, 3);
  unsigned l = tc_leader(&t), kept = (l + 1) % 3, cut = (l + 2) % 3;
  t.no_handover[cut] = 1;
  for (int i = 0; i < 40; i++) {
    if (i == 20) {
      uint8_t nk[32];
      teex_random(nk, sizeof nk);
      uint32_t epoch = 0;
      struct teex_err err;
      assert_int_equal(teex_ds_replica_rotate(t.rep[l], nk, &epoch, &err), 0);
      assert_int_equal(epoch, 1);
      assert_int_equal(teex_ds_replica_key_epoch(t.rep[l]), 1);
    }
    snprintf(k, sizeof k, "app/k%d", i);
    snprintf(v, sizeof v, "v%d", i);
    struct teex_ds_cmd c = tc_set_cmd(k, v);
    assert_int_equal(tc_run(&t, &c, &op), 0);
    assert_int_equal(op.status, 0);
    tc_op_clear(&op);
  }
  unsigned li = tc_leader(&t);
  raft_index idx = raft_last_index(raft_fixture_get(&t.f, li));
  assert_true(raft_fixture_step_until_applied(&t.f, kept, idx, 20000));
  /* kept: handed epoch 1 once, same state as the leader */
  assert_int_equal(t.handed, 1);
  assert_int_equal(teex_ds_replica_key_epoch(t.rep[kept]), 1);
  uint8_t d0[32], d1[32];
  teex_ds_kv_digest(teex_ds_replica_kv(t.rep[li]), d0);
  teex_ds_kv_digest(teex_ds_replica_kv(t.rep[kept]), d1);
  assert_memory_equal(d0, d1, 32);
  struct teex_ds_status st;
  teex_ds_replica_status(t.rep[kept], &st);
  assert_int_equal(st.keys, 40);
  assert_int_equal(st.failed, 0);
  /* cut: halted at the first epoch-1 entry, holding epoch 0 only, with
   * exactly the 20 writes before the rotation */
  for (int i = 0; i < 200; i++)
    raft_fixture_step(&t.f);
  teex_ds_replica_status(t.rep[cut], &st);
  assert_int_equal(st.failed, TEEX_EAUTH);
  assert_non_null(strstr(st.failure, "no group key of epoch 1"));
  assert_int_equal(st.keys, 20);
  assert_int_equal(teex_ds_replica_key_epoch(t.rep[cut]), 0);
  /* a snapshot is sealed under epoch 1 */
  uint8_t *sealed;
  size_t sealed_len;
  assert_int_equal(
      teex_ds_replica_hooks.snapshot(t.rep[kept], &sealed, &sealed_len), 0);
  assert_memory_equal(sealed, "TXS3", 4);
  assert_int_equal(sealed[20], 1);
  struct teex_ds_replica_config cfg = {.group_key = tc_key};
  memcpy(cfg.group_id, tc_group_id, 16);
  struct teex_err err;
  struct teex_ds_replica *old, *fresh;
  assert_int_equal(teex_ds_replica_new(&cfg, &old, &err), 0);
  assert_int_equal(teex_ds_replica_hooks.restore(old, sealed, sealed_len),
                   TEEX_EAUTH);
  static uint8_t keys[TEEX_DS_KEYS_ENC_MAX];
  size_t kn = teex_ds_replica_keys_encode(t.rep[kept], keys);
  assert_int_equal(kn, 8 + 2 * 36);
  cfg.group_keys = keys;
  cfg.group_keys_len = kn;
  assert_int_equal(teex_ds_replica_new(&cfg, &fresh, &err), 0);
  assert_int_equal(teex_ds_replica_hooks.restore(fresh, sealed, sealed_len), 0);
  teex_ds_kv_digest(teex_ds_replica_kv(fresh), d1);
  assert_memory_equal(d0, d1, 32);
  /* an epoch already held with another key is refused, nothing merged */
  keys[12] ^= 1;
  assert_int_equal(teex_ds_replica_add_keys(fresh, keys, kn, &err), TEEX_EAUTH);
  assert_int_equal(teex_ds_replica_key_epoch(fresh), 1);
  memset(keys, 0, sizeof keys);
  teex_ds_replica_free(old);
  teex_ds_replica_free(fresh);
  free(sealed);
  tc_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replicate_same_order_same_results),
      cmocka_unit_test(test_leader_kill_no_acked_write_lost),
      cmocka_unit_test(test_partitioned_minority_cannot_commit),
      cmocka_unit_test(test_log_and_snapshot_carry_only_ciphertext),
      cmocka_unit_test(test_wrong_group_key_halts_not_diverges),
      cmocka_unit_test(test_anchor_chain_watch),
      cmocka_unit_test(test_replayed_entry_refused_everywhere),
      cmocka_unit_test(test_namespace_and_limits_in_group),
      cmocka_unit_test(test_ttl_by_leader_clock),
      cmocka_unit_test(test_expire_count_replicated),
      cmocka_unit_test(test_concurrent_incr_and_cas),
      cmocka_unit_test(test_add_voter_catches_up_from_sealed_snapshot),
      cmocka_unit_test(test_snapshot_carries_hash_chain),
      cmocka_unit_test(test_key_rotation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
