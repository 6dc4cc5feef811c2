/* TEE-DS faults with real `teex ds run` processes: SIGKILL of the leader
 * under load (a new leader serves, no acknowledged write is lost, and the
 * recorded client histories are linearizable), the same with the leader
 * paused (SIGSTOP) and resumed after the others moved on, SIGKILL of a
 * follower, of all
 * three followed by a restart (all acknowledged data back), and a replica
 * whose evidence fails the group's policy (a modified binary) that cannot
 * join. */
#include "net_fixture.c"

#include "linearizability.c"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int setup(void **state) {
  struct net *t = calloc(1, sizeof(*t));
  net_init(t);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  struct net *t = *state;
  net_close(t);
  free(t);
  return 0;
}

/* ---- leader kill under load, with recorded histories ---- */

#define KEYS 2
#define WORKERS_PER_KEY 2
#define OPS_PER_KEY 48 /* plus the final read: within LIN_MAX_OPS */
#define KILL_AFTER 16  /* completed operations before the leader dies */

struct load;

struct worker {
  struct load *ld;
  int key;
  struct lin_op *cur;
};

struct load {
  struct net *t;
  uv_loop_t loop;
  struct teex_ds_client *c;
  struct lin_op ops[KEYS][LIN_MAX_OPS];
  size_t n[KEYS];
  uint64_t clock;
  int64_t next_val;
  int completed, killed, running, acked_writes, lost_writes;
  int killed_idx;
  int pause; /* SIGSTOP the leader, SIGCONT it later, instead of SIGKILL */
  uv_timer_t resume;
  struct worker w[KEYS * WORKERS_PER_KEY];
};

static const char *key_name(int k) {
  return k == 0 ? "app/reg0" : "app/reg1";
}

static void worker_next(struct worker *w);

static void resume_leader(uv_timer_t *h) {
  struct load *ld = h->data;
  kill(ld->t->pid[ld->killed_idx], SIGCONT);
}

static void kill_leader(struct load *ld) {
  int l = net_leader(ld->t);
  ld->killed_idx = l;
  if (ld->pause) {
    /* A leader that stalls (a long GC pause, a frozen VM) and comes back
     * after the others elected a new one: it must not serve stale reads
     * or acknowledge writes it can no longer commit. */
    kill(ld->t->pid[l], SIGSTOP);
    uv_timer_start(&ld->resume, resume_leader, 800, 0);
  } else {
    net_stop(ld->t, l, SIGKILL);
  }
  ld->killed = 1;
}

static void op_done(void *arg, int status, struct teex_ds_result *res) {
  struct worker *w = arg;
  struct load *ld = w->ld;
  struct lin_op *op = w->cur;
  if (status == 0 && res->status == 0) {
    op->ret = ++ld->clock;
    if (op->kind == LIN_READ) {
      char v[32];
      size_t n = res->val_len < sizeof v - 1 ? res->val_len : sizeof v - 1;
      memcpy(v, res->val, n);
      v[n] = '\0';
      op->out = strtoll(v, NULL, 10);
    } else
      ld->acked_writes++;
  } else if (status == 0 && op->kind == LIN_READ &&
             res->status == TEEX_ENOTFOUND) {
    op->ret = ++ld->clock;
    op->out = LIN_ABSENT;
  } else if (op->kind == LIN_WRITE) {
    op->ret = LIN_PENDING; /* outcome unknown: may or may not have applied */
    ld->lost_writes++;
  } else {
    op->kind = 0; /* a failed read has no effect: drop it */
  }
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
  ld->completed++;
  if (ld->completed == KILL_AFTER && !ld->killed)
    kill_leader(ld);
  worker_next(w);
}

static void worker_next(struct worker *w) {
  struct load *ld = w->ld;
  int k = w->key;
  if (ld->n[k] >= OPS_PER_KEY) {
    ld->running--;
    return;
  }
  struct lin_op *op = &ld->ops[k][ld->n[k]++];
  memset(op, 0, sizeof(*op));
  char val[32];
  struct teex_ds_cmd c = {.grant = "app"};
  c.key = (const uint8_t *)key_name(k);
  c.key_len = strlen(key_name(k));
  if (ld->n[k] % 2 == 1) {
    op->kind = LIN_WRITE;
    op->arg = ++ld->next_val;
    snprintf(val, sizeof val, "%lld", (long long)op->arg);
    c.op = TEEX_DS_SET;
    c.val = (const uint8_t *)val;
    c.val_len = strlen(val);
  } else {
    op->kind = LIN_READ;
    c.op = TEEX_DS_GET;
  }
  op->call = ++ld->clock;
  w->cur = op;
  struct teex_err err;
  if (teex_ds_client_exec(ld->c, &c, TEEX_DS_READ_LINEARIZABLE, op_done, w,
                          &err) != 0)
    fail_msg("exec: %s", err.msg);
}

static void print_history(FILE *f, const struct lin_op *ops, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct lin_op *o = &ops[i];
    if (o->kind == LIN_WRITE)
      fprintf(f, "  write %lld  [%llu, %s%llu]\n", (long long)o->arg,
              (unsigned long long)o->call,
              o->ret == LIN_PENDING ? "pending " : "",
              o->ret == LIN_PENDING ? 0ull : (unsigned long long)o->ret);
    else
      fprintf(f, "  read -> %lld  [%llu, %llu]\n", (long long)o->out,
              (unsigned long long)o->call, (unsigned long long)o->ret);
  }
}

/* Keeps a failing history as a test artifact under the build directory. */
static void keep_history(const char *name, const struct lin_op *ops, size_t n) {
  const char *b = getenv("TEEX_BUILD_DIR");
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/ds-histories", b ? b : ".");
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/%s.txt", dir, name);
  FILE *f = fopen(path, "w");
  if (f != NULL) {
    print_history(f, ops, n);
    fclose(f);
    fprintf(stderr, "history kept in %s\n", path);
  }
}

static void run_load(struct net *t, int pause) {
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  struct load *ld = calloc(1, sizeof(*ld));
  ld->t = t;
  ld->pause = pause;
  assert_int_equal(uv_loop_init(&ld->loop), 0);
  uv_timer_init(&ld->loop, &ld->resume);
  ld->resume.data = ld;
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_N,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_err err;
  assert_int_equal(teex_ds_client_new(&ld->loop, &cc, &ld->c, &err), 0);
  for (int i = 0; i < KEYS * WORKERS_PER_KEY; i++) {
    ld->w[i].ld = ld;
    ld->w[i].key = i % KEYS;
    ld->running++;
  }
  for (int i = 0; i < KEYS * WORKERS_PER_KEY; i++)
    worker_next(&ld->w[i]);
  while (ld->running > 0)
    uv_run(&ld->loop, UV_RUN_ONCE);
  teex_ds_client_close(ld->c);
  uv_close((uv_handle_t *)&ld->resume, NULL);
  uv_run(&ld->loop, UV_RUN_DEFAULT);
  uv_loop_close(&ld->loop);
  assert_true(ld->killed);
  if (pause)
    kill(t->pid[ld->killed_idx], SIGCONT); /* in case the load ended first */
  /* A new leader serves: every key reads back through it, and that final
   * read ends each history. */
  int l = net_leader(t);
  if (!pause)
    assert_int_not_equal(l, ld->killed_idx);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  for (int k = 0; k < KEYS; k++) {
    char v[64];
    struct lin_op *op = &ld->ops[k][ld->n[k]++];
    memset(op, 0, sizeof(*op));
    op->kind = LIN_READ;
    op->call = ++ld->clock;
    int rc = net_get(s, key_name(k), TEEX_DS_READ_LINEARIZABLE, v, sizeof v);
    assert_true(rc == 0 || rc == TEEX_ENOTFOUND);
    op->ret = ++ld->clock;
    op->out = rc == 0 ? strtoll(v, NULL, 10) : LIN_ABSENT;
    /* Compact away dropped reads. */
    size_t m = 0;
    for (size_t i = 0; i < ld->n[k]; i++)
      if (ld->ops[k][i].kind != 0)
        ld->ops[k][m++] = ld->ops[k][i];
    size_t explored = 0;
    int ok = lin_check(ld->ops[k], m, LIN_ABSENT, &explored);
    if (ok != 1) {
      fprintf(stderr, "history of %s is not linearizable:\n", key_name(k));
      print_history(stderr, ld->ops[k], m);
      char name[64];
      snprintf(name, sizeof name, "leader-%s-reg%d", pause ? "pause" : "kill",
               k);
      keep_history(name, ld->ops[k], m);
    }
    assert_int_equal(ok, 1);
    /* Negative control: the same history plus a later read of an older
     * acknowledged value must be rejected. */
    int64_t stale = LIN_ABSENT;
    for (size_t i = 0; i < m; i++)
      if (ld->ops[k][i].kind == LIN_WRITE && ld->ops[k][i].ret != LIN_PENDING &&
          ld->ops[k][i].arg != ld->ops[k][m - 1].out) {
        stale = ld->ops[k][i].arg;
        break;
      }
    assert_true(stale != LIN_ABSENT && m < LIN_MAX_OPS);
    ld->ops[k][m] = (struct lin_op){.kind = LIN_READ,
                                    .out = stale,
                                    .call = ++ld->clock,
                                    .ret = ++ld->clock};
    assert_int_equal(lin_check(ld->ops[k], m + 1, LIN_ABSENT, NULL), 0);
  }
  teex_ds_sync_close(s);
  /* Most writes were acknowledged; only those in flight at the kill may
   * have an unknown outcome. */
  assert_true(ld->acked_writes >= KEYS * OPS_PER_KEY / 2 - 8);
  fprintf(stderr, "leader %s: %d writes acknowledged, %d unknown\n",
          pause ? "pause" : "kill", ld->acked_writes, ld->lost_writes);
  free(ld);
}

static void test_leader_killed_under_load(void **state) {
  run_load(*state, 0);
}

static void test_leader_paused_under_load(void **state) {
  run_load(*state, 1);
}

/* ---- follower kill ---- */

static void test_follower_killed(void **state) {
  struct net *t = *state;
  net_start_all(t);
  int l = net_leader(t);
  net_warm_up(t);
  int f = (l + 1) % NET_N;
  net_stop(t, f, SIGKILL);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  char k[32], v[32];
  for (int i = 0; i < 20; i++) {
    snprintf(k, sizeof k, "app/f%d", i);
    snprintf(v, sizeof v, "%d", i);
    NET_SET_OK(t, s, k, v);
  }
  net_start(t, f);
  /* It catches up: same applied index as the leader, same number of keys. */
  int caught = 0;
  for (int i = 0; i < 200 && !caught; i++) {
    struct teex_ds_replica_info a, b;
    if (net_info(t, l, &a) == 0 && net_info(t, f, &b) == 0 &&
        b.last_applied >= a.last_applied && b.keys == a.keys && a.keys >= 20)
      caught = 1;
    else
      net_sleep_ms(25);
  }
  assert_true(caught);
  for (int i = 0; i < 20; i++) {
    snprintf(k, sizeof k, "app/f%d", i);
    assert_int_equal(net_get(s, k, TEEX_DS_READ_LINEARIZABLE, v, sizeof v), 0);
    assert_int_equal(strtol(v, NULL, 10), i);
  }
  teex_ds_sync_close(s);
}

/* ---- all killed, then restarted ---- */

static void test_all_killed_then_restarted(void **state) {
  struct net *t = *state;
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  char k[32], v[64];
  for (int i = 0; i < 30; i++) {
    snprintf(k, sizeof k, "app/all%d", i);
    snprintf(v, sizeof v, "value-%d", i);
    NET_SET_OK(t, s, k, v);
  }
  teex_ds_sync_close(s);
  for (int i = 0; i < NET_N; i++)
    net_stop(t, i, SIGKILL);
  net_start_all(t);
  net_leader(t);
  s = net_client(t, "app", 10000);
  for (int i = 0; i < 30; i++) {
    char want[64];
    snprintf(k, sizeof k, "app/all%d", i);
    snprintf(want, sizeof want, "value-%d", i);
    assert_int_equal(net_get(s, k, TEEX_DS_READ_LINEARIZABLE, v, sizeof v), 0);
    assert_string_equal(v, want);
  }
  teex_ds_sync_close(s);
}

/* ---- bounded staleness of follower reads ---- */

static struct teex_ds_sync *client_of(struct net *t, int i, uint32_t ms) {
  const char *one[1] = {t->client[i]};
  struct teex_ds_client_config cc = {.replicas = one,
                                     .n_replicas = 1,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = ms};
  struct teex_ds_sync *s = NULL;
  struct teex_err err;
  assert_int_equal(teex_ds_sync_open(&cc, &s, &err), 0);
  return s;
}

/* A follower answers follower reads while it hears from a leader; cut off
 * from the group it refuses them instead of serving stale data. */
static void test_isolated_follower_refuses_reads(void **state) {
  struct net *t = *state;
  net_start_all(t);
  int l = net_leader(t);
  net_warm_up(t);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  NET_SET_OK(t, s, "app/k", "v1");
  teex_ds_sync_close(s);
  int f = (l + 1) % NET_N, other = (l + 2) % NET_N;
  struct teex_ds_sync *fs = client_of(t, f, 3000);
  char v[16];
  int seen = 0;
  for (int i = 0; i < 100 && !seen; i++) {
    if (net_get(fs, "app/k", TEEX_DS_READ_FOLLOWER, v, sizeof v) == 0 &&
        strcmp(v, "v1") == 0)
      seen = 1;
    else
      net_sleep_ms(20);
  }
  assert_true(seen);
  net_stop(t, l, SIGKILL);
  net_stop(t, other, SIGKILL);
  net_sleep_ms(400); /* past the 150 ms election timeout */
  int rc = net_get(fs, "app/k", TEEX_DS_READ_FOLLOWER, v, sizeof v);
  assert_int_not_equal(rc, 0);
  assert_int_not_equal(rc, TEEX_ENOTFOUND);
  teex_ds_sync_close(fs);
}

/* ---- leader lease ---- */

/* Linearizable reads on a leader are served under a lease (no barrier)
 * while no write is in flight; a leader that was paused past its lease
 * while the others elected a new leader and wrote must not answer from its
 * old state when it comes back — the read it finds waiting must go to a
 * barrier, which fails, not to the local state. */
static void test_deposed_leader_serves_no_stale_read(void **state) {
  struct net *t = *state;
  net_start_all(t);
  int l = net_leader(t);
  net_warm_up(t);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  NET_SET_OK(t, s, "app/lease", "v1");
  teex_ds_sync_close(s);

  /* Reads through the leader alone: most are served under the lease. */
  struct teex_ds_sync *ls = client_of(t, l, 2000);
  struct teex_ds_replica_info before, after;
  assert_int_equal(net_info(t, l, &before), 0);
  char v[16];
  for (int i = 0; i < 100; i++) {
    assert_int_equal(
        net_get(ls, "app/lease", TEEX_DS_READ_LINEARIZABLE, v, sizeof v), 0);
    assert_string_equal(v, "v1");
  }
  assert_int_equal(net_info(t, l, &after), 0);
  uint64_t batched = after.reads - before.reads;
  uint64_t leased = after.lease_reads - before.lease_reads;
  print_message(
      "100 linearizable reads: %llu under the lease, %llu through "
      "%llu barriers\n",
      (unsigned long long)leased, (unsigned long long)batched,
      (unsigned long long)(after.read_barriers - before.read_barriers));
  assert_int_equal(leased + batched, 100);
  assert_true(leased > 0);

  /* Pause it; the others elect a new leader, which writes v2. */
  assert_int_equal(kill(t->pid[l], SIGSTOP), 0);
  int nl = -1;
  for (int tries = 0; tries < 100 && nl < 0; tries++) {
    for (int i = 0; i < NET_N; i++) {
      struct teex_ds_replica_info info;
      if (i != l && net_info(t, i, &info) == 0 && info.leader)
        nl = i;
    }
    if (nl < 0)
      net_sleep_ms(50);
  }
  assert_true(nl >= 0);
  struct teex_ds_sync *ns = client_of(t, nl, 5000);
  NET_SET_OK(t, ns, "app/lease", "v2");
  teex_ds_sync_close(ns);

  /* A read waits in the old leader's socket; it resumes 300 ms later. */
  pid_t h = fork();
  assert_true(h >= 0);
  if (h == 0) {
    net_sleep_ms(300);
    kill(t->pid[l], SIGCONT);
    _exit(0);
  }
  int rc = net_get(ls, "app/lease", TEEX_DS_READ_LINEARIZABLE, v, sizeof v);
  int st;
  waitpid(h, &st, 0);
  kill(t->pid[l], SIGCONT); /* in any case */
  print_message("read on the resumed old leader: %s%s%s\n", teex_strerror(rc),
                rc == 0 ? " " : "", rc == 0 ? v : "");
  if (rc == 0 && strcmp(v, "v1") == 0) {
    for (int i = 0; i < NET_N; i++)
      net_dump_log(t, i);
    fail_msg("the deposed leader served the stale value v1");
  }
  assert_true(rc != 0 || strcmp(v, "v2") == 0);
  teex_ds_sync_close(ls);
}

/* ---- a replica whose evidence the policy refuses ---- */

static void test_bad_evidence_cannot_join(void **state) {
  struct net *t = *state;
  /* A modified replica: the teex binary plus one byte, so its measurement
   * is not the one the group's policy allows. */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/teex-modified", t->dir);
  size_t n;
  uint8_t *bin = tu_read_file(tu_teex_bin(), &n);
  assert_non_null(bin);
  uint8_t *b2 = realloc(bin, n + 1);
  assert_non_null(b2);
  b2[n] = 0x5a;
  assert_int_equal(tu_write_file(bad, b2, n + 1), 0);
  free(b2);
  assert_int_equal(chmod(bad, 0755), 0);
  t->exe[2] = bad;
  net_start(t, 0);
  net_start(t, 1);
  assert_int_equal(net_start_nowait(t, 2, "3000"), 0);
  /* It never gets the group key: the good replicas refuse its evidence in
   * the handshake, so it gives up. */
  int st = -1;
  for (int i = 0; i < 500; i++) {
    int ws;
    if (waitpid(t->pid[2], &ws, WNOHANG) == t->pid[2]) {
      st = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
      break;
    }
    net_sleep_ms(20);
  }
  t->pid[2] = 0;
  if (st <= 0)
    net_dump_log(t, 2);
  assert_true(st > 0);
  char key[600];
  snprintf(key, sizeof key, "%s/%s", t->state[2], TEEX_DS_KEY_FILE);
  assert_int_not_equal(access(key, F_OK), 0);
  size_t ln;
  char *log0 = (char *)tu_read_file(t->log[0], &ln);
  char *log1 = (char *)tu_read_file(t->log[1], &ln);
  assert_true((log0 && strstr(log0, "replica connection refused")) ||
              (log1 && strstr(log1, "replica connection refused")));
  free(log0);
  free(log1);
  /* The two good replicas form the group and serve. */
  net_leader(t);
  net_warm_up(t);
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  NET_SET_OK(t, s, "app/x", "1");
  teex_ds_sync_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_leader_killed_under_load, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_leader_paused_under_load, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_follower_killed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_all_killed_then_restarted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_isolated_follower_refuses_reads,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_evidence_cannot_join, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_deposed_leader_serves_no_stale_read,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
