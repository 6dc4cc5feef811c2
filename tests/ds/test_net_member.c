/* TEE-DS membership changes online, with real `teex ds run` processes and
 * the operator's CLI (`teex ds init --join`, `teex ds add-replica`,
 * `teex ds remove-replica`): the group grows 3 -> 4 -> 5 and shrinks back
 * to 3 (the leader among the removed) while clients write and read; the
 * recorded register histories are linearizable and every acknowledged
 * write is read back by a client started afterwards from a surviving
 * replica's group.conf; a replica whose evidence fails the group's policy
 * cannot be added (clear error, no key, membership unchanged); a client
 * that is not an operator cannot change the membership. */
#define NET_N 5
#define NET_INITIAL 3
#define NET_PORT_BASE 14000
#define NET_PORT_SPAN 1000
#include "net_fixture.c"

#include "linearizability.c"

#include "ds/group.h"
#include "ds/membership.h"

#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <uv.h>

struct mt {
  struct net net;
  char cert[600], key[600];
};

static int setup(void **state) {
  struct mt *m = calloc(1, sizeof(*m));
  struct net *t = &m->net;
  net_prepare(t);
  t->init_extra[0] = "--operator";
  t->init_extra[1] = "app";
  net_init_states(t, NULL, NULL);
  /* The operator's certificate and key as files, for the CLI. */
  snprintf(m->cert, sizeof m->cert, "%s/op.pem", t->dir);
  snprintf(m->key, sizeof m->key, "%s/op.key", t->dir);
  FILE *f = fopen(m->cert, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_X509(f, t->cert), 1);
  fclose(f);
  f = fopen(m->key, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_PrivateKey(f, t->key, NULL, NULL, 0, NULL, NULL),
                   1);
  fclose(f);
  *state = m;
  return 0;
}

static int teardown(void **state) {
  struct mt *m = *state;
  net_close(&m->net);
  free(m);
  return 0;
}

/* `teex ds init --join` of replica i (index; id i+1) from replica from's
 * group.conf. */
static void init_joiner(struct net *t, int i, int from) {
  char id[8], group[600], join[200];
  snprintf(id, sizeof id, "%d", i + 1);
  snprintf(group, sizeof group, "%s/group.conf", t->state[from]);
  snprintf(join, sizeof join, "%s,%s", t->peer[i], t->client[i]);
  char *a[] = {(char *)tu_teex_bin(),
               "ds",
               "init",
               "--data-dir",
               t->dir,
               "--state",
               t->state[i],
               "--id",
               id,
               "--group",
               group,
               "--join",
               join,
               NULL};
  char *eo = NULL;
  if (net_run_teex(a, NULL, &eo) != 0)
    fail_msg("ds init --join %d: %s", i + 1, eo ? eo : "");
  free(eo);
}

/* Spawns `teex ds add-replica|remove-replica` (its output in log) through
 * replica via's state directory; returns the pid. */
static int spawn_member_cmd(struct mt *m, const char *cmd, int via, int i,
                            const char *wait, const char *log) {
  struct net *t = &m->net;
  char id[8];
  snprintf(id, sizeof id, "%d", i + 1);
  char *a[20] = {(char *)tu_teex_bin(),
                 "ds",
                 (char *)cmd,
                 "--state",
                 t->state[via],
                 "--cert",
                 m->cert,
                 "--key",
                 m->key};
  int n = 9;
  if (wait != NULL) {
    a[n++] = "--wait";
    a[n++] = (char *)wait;
  }
  a[n++] = id;
  if (strcmp(cmd, "add-replica") == 0) {
    a[n++] = t->peer[i];
    a[n++] = t->client[i];
  }
  a[n] = NULL;
  int pid = tu_spawn(a, log);
  assert_true(pid > 0);
  return pid;
}

/* Exit status of pid (waits up to ms; -1 if still running: killed). */
static int wait_exit(int pid, int ms) {
  for (int i = 0; i < ms / 20; i++) {
    int ws;
    if (waitpid(pid, &ws, WNOHANG) == pid)
      return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
    net_sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static int file_contains(const char *path, const char *needle) {
  size_t n;
  char *s = (char *)tu_read_file(path, &n);
  int found = s != NULL && strstr(s, needle) != NULL;
  free(s);
  return found;
}

/* The ids group.conf of replica i lists, as a bit set. */
static unsigned conf_members(struct net *t, int i) {
  char path[600];
  snprintf(path, sizeof path, "%s/group.conf", t->state[i]);
  struct teex_ds_group g;
  struct teex_err err;
  if (teex_ds_group_load(&g, path, &err) != 0)
    return 0;
  unsigned bits = 0;
  for (size_t k = 0; k < g.n_members; k++)
    bits |= 1u << g.members[k].id;
  return bits;
}

/* conf_members once it equals want (a follower rewrites group.conf within
 * a tick of learning the commit), or its last value after 5 s. */
static unsigned conf_members_wait(struct net *t, int i, unsigned want) {
  unsigned got = 0;
  for (int k = 0; k < 250 && (got = conf_members(t, i)) != want; k++)
    net_sleep_ms(20);
  return got;
}

/* ---- the load: registers written and read while membership changes ---- */

#define WORKERS 4
#define OPS_PER_REG 40 /* + in-flight + the final read: within LIN_MAX_OPS */
#define MAX_REGS 400
#define PACE_MS 20

enum step {
  S_ADD4,
  S_ADD5,
  S_REMOVE_LEADER,
  S_REMOVE_ONE,
  S_DONE,
};

struct load;

struct worker {
  struct load *ld;
  int reg;
  struct lin_op *cur;
  uv_timer_t pace;
};

struct load {
  struct mt *m;
  uv_loop_t loop;
  struct teex_ds_client *c;
  struct lin_op (*ops)[LIN_MAX_OPS];
  size_t n[MAX_REGS];
  int regs;
  uint64_t clock;
  int64_t next_val;
  unsigned issued;
  int acked_writes, unknown_writes, running;
  /* The membership script, driven by a timer on the load's loop. */
  uv_timer_t script;
  enum step step;
  int cmd_pid, cmd_started;
  char cmd_log[600];
  int removed[2];
  int leader_before;
  struct worker w[WORKERS];
};

static void reg_key(int r, char *out, size_t cap) {
  snprintf(out, cap, "app/reg%d", r);
}

static void worker_next(struct worker *w);

static void pace_fire(uv_timer_t *h) {
  worker_next(h->data);
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
    } else {
      ld->acked_writes++;
    }
  } else if (status == 0 && op->kind == LIN_READ &&
             res->status == TEEX_ENOTFOUND) {
    op->ret = ++ld->clock;
    op->out = LIN_ABSENT;
  } else if (op->kind == LIN_WRITE) {
    op->ret = LIN_PENDING; /* outcome unknown */
    ld->unknown_writes++;
  } else {
    op->kind = 0; /* a failed read has no effect */
  }
  if (res != NULL) {
    teex_ds_result_free(res);
    free(res);
  }
  uv_timer_start(&w->pace, pace_fire, PACE_MS, 0);
}

static void worker_next(struct worker *w) {
  struct load *ld = w->ld;
  int r = (int)(ld->issued / OPS_PER_REG);
  if (ld->step == S_DONE || r >= MAX_REGS) {
    ld->running--;
    return;
  }
  ld->issued++;
  if (r + 1 > ld->regs)
    ld->regs = r + 1;
  struct lin_op *op = &ld->ops[r][ld->n[r]++];
  memset(op, 0, sizeof(*op));
  char key[32], val[32];
  reg_key(r, key, sizeof key);
  struct teex_ds_cmd c = {.grant = "app"};
  c.key = (const uint8_t *)key;
  c.key_len = strlen(key);
  if (ld->issued % 2 == 1) {
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

/* The index of the leader among the running replicas (blocking: it polls
 * status, a few ms while the load's loop waits). */
static int leader_now(struct net *t) {
  return net_leader(t);
}

static void script_fail(struct load *ld, const char *what) {
  struct net *t = &ld->m->net;
  size_t n;
  char *log = (char *)tu_read_file(ld->cmd_log, &n);
  fprintf(stderr, "---- %s ----\n%s\n", what, log ? log : "");
  free(log);
  for (int i = 0; i < NET_N; i++)
    if (t->pid[i] > 0 || access(t->log[i], F_OK) == 0)
      net_dump_log(t, i);
  fail_msg("%s", what);
}

/* One membership command at a time: start it, then poll until it exits. */
static void script_step(uv_timer_t *h) {
  struct load *ld = h->data;
  struct mt *m = ld->m;
  struct net *t = &m->net;
  if (ld->cmd_pid > 0) {
    int ws;
    if (waitpid(ld->cmd_pid, &ws, WNOHANG) != ld->cmd_pid)
      return;
    ld->cmd_pid = 0;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
      script_fail(ld, "membership command failed");
    if (ld->step == S_REMOVE_LEADER || ld->step == S_REMOVE_ONE) {
      int gone = ld->removed[ld->step == S_REMOVE_ONE];
      net_stop(t, gone, SIGTERM);
    }
    ld->step++;
    if (ld->step == S_DONE) {
      uv_timer_stop(h);
      return;
    }
  }
  snprintf(ld->cmd_log, sizeof ld->cmd_log, "%s/member-step%d.log", t->dir,
           (int)ld->step);
  switch (ld->step) {
  case S_ADD4:
  case S_ADD5: {
    int i = ld->step == S_ADD4 ? 3 : 4;
    init_joiner(t, i, 0);
    assert_int_equal(net_start_nowait(t, i, "60000"), 0);
    ld->cmd_pid = spawn_member_cmd(m, "add-replica", 0, i, NULL, ld->cmd_log);
    break;
  }
  case S_REMOVE_LEADER: {
    int l = leader_now(t);
    ld->leader_before = l;
    ld->removed[0] = l;
    /* Through a replica that stays (the client follows the hand-over). */
    ld->cmd_pid =
        spawn_member_cmd(m, "remove-replica", 3, l, NULL, ld->cmd_log);
    break;
  }
  case S_REMOVE_ONE: {
    /* One of the first three that is neither removed nor leading. */
    int l = leader_now(t), pick = -1;
    for (int i = 0; i < NET_INITIAL && pick < 0; i++)
      if (i != ld->removed[0] && i != l && t->pid[i] > 0)
        pick = i;
    assert_true(pick >= 0);
    ld->removed[1] = pick;
    ld->cmd_pid =
        spawn_member_cmd(m, "remove-replica", 4, pick, NULL, ld->cmd_log);
    break;
  }
  case S_DONE:
    break;
  }
}

static void script_tick(uv_timer_t *h) {
  struct load *ld = h->data;
  script_step(h);
  uv_update_time(&ld->loop); /* a step blocks for a while */
}

static void test_grow_and_shrink_under_load(void **state) {
  struct mt *m = *state;
  struct net *t = &m->net;
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  struct load *ld = calloc(1, sizeof(*ld));
  ld->m = m;
  ld->ops = calloc(MAX_REGS, sizeof(*ld->ops));
  assert_non_null(ld->ops);
  assert_int_equal(uv_loop_init(&ld->loop), 0);
  /* The client knows only the first three replicas: it learns the others
   * from not_leader answers. */
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_INITIAL,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_err err;
  assert_int_equal(teex_ds_client_new(&ld->loop, &cc, &ld->c, &err), 0);
  uv_timer_init(&ld->loop, &ld->script);
  ld->script.data = ld;
  uv_timer_start(&ld->script, script_tick, 300, 100);
  for (int i = 0; i < WORKERS; i++) {
    ld->w[i].ld = ld;
    uv_timer_init(&ld->loop, &ld->w[i].pace);
    ld->w[i].pace.data = &ld->w[i];
    ld->running++;
  }
  for (int i = 0; i < WORKERS; i++)
    worker_next(&ld->w[i]);
  /* A watchdog, so that a stuck step fails with the logs instead of
   * hanging until ctest's timeout. */
  time_t until = time(NULL) + 200;
  while (ld->running > 0 || ld->step != S_DONE) {
    uv_run(&ld->loop, UV_RUN_NOWAIT);
    net_sleep_ms(1);
    if (time(NULL) > until) {
      fprintf(stderr, "stuck at step %d (command pid %d), %d workers running\n",
              (int)ld->step, ld->cmd_pid, ld->running);
      for (int i = 0; i < WORKERS; i++)
        fprintf(stderr, "worker %d: op kind %d call %llu ret %llu\n", i,
                ld->w[i].cur ? ld->w[i].cur->kind : -1,
                ld->w[i].cur ? (unsigned long long)ld->w[i].cur->call : 0ull,
                ld->w[i].cur ? (unsigned long long)ld->w[i].cur->ret : 0ull);
      script_fail(ld, "membership script did not finish in 200 s");
    }
  }
  teex_ds_client_close(ld->c);
  uv_close((uv_handle_t *)&ld->script, NULL);
  for (int i = 0; i < WORKERS; i++)
    uv_close((uv_handle_t *)&ld->w[i].pace, NULL);
  uv_run(&ld->loop, UV_RUN_DEFAULT);
  uv_loop_close(&ld->loop);
  fprintf(stderr,
          "membership under load: %d registers, %d writes acknowledged, %d "
          "unknown; removed replicas %d (leader) and %d\n",
          ld->regs, ld->acked_writes, ld->unknown_writes, ld->removed[0] + 1,
          ld->removed[1] + 1);
  assert_true(ld->acked_writes > 50);
  assert_true(ld->regs < MAX_REGS); /* the load ran through every step */

  /* The survivors: 4, 5 and one of the first three; their group.conf
   * lists exactly them, and a new leader serves. */
  int keep = -1;
  for (int i = 0; i < NET_INITIAL; i++)
    if (i != ld->removed[0] && i != ld->removed[1])
      keep = i;
  unsigned want = (1u << (keep + 1)) | (1u << 4) | (1u << 5);
  for (int i = 0; i < NET_N; i++)
    if (i == keep || i >= NET_INITIAL)
      assert_int_equal(conf_members_wait(t, i, want), want);
  int l = net_leader(t);
  assert_int_not_equal(l, ld->leader_before);
  /* The removed leader logged the hand-over. */
  assert_true(file_contains(t->log[ld->leader_before],
                            "handing leadership over before removal"));

  /* A client started now from a survivor's group.conf finds the members
   * and reads back every register: that final read closes each history. */
  char gpath[600];
  snprintf(gpath, sizeof gpath, "%s/group.conf", t->state[4]);
  struct teex_ds_group g;
  assert_int_equal(teex_ds_group_load(&g, gpath, &err), 0);
  assert_int_equal(g.n_members, 3);
  const char *addrs[3];
  for (size_t i = 0; i < g.n_members; i++)
    addrs[i] = g.members[i].client;
  struct teex_ds_client_config c2 = {.replicas = addrs,
                                     .n_replicas = g.n_members,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_sync *s = NULL;
  assert_int_equal(teex_ds_sync_open(&c2, &s, &err), 0);
  for (int r = 0; r < ld->regs; r++) {
    char key[32], v[64];
    reg_key(r, key, sizeof key);
    struct lin_op *op = &ld->ops[r][ld->n[r]++];
    memset(op, 0, sizeof(*op));
    op->kind = LIN_READ;
    op->call = ++ld->clock;
    int rc = net_get(s, key, TEEX_DS_READ_LINEARIZABLE, v, sizeof v);
    assert_true(rc == 0 || rc == TEEX_ENOTFOUND);
    op->ret = ++ld->clock;
    op->out = rc == 0 ? strtoll(v, NULL, 10) : LIN_ABSENT;
    size_t k = 0;
    for (size_t i = 0; i < ld->n[r]; i++)
      if (ld->ops[r][i].kind != 0)
        ld->ops[r][k++] = ld->ops[r][i];
    int ok = lin_check(ld->ops[r], k, LIN_ABSENT, NULL);
    if (ok != 1) {
      fprintf(stderr, "history of %s is not linearizable:\n", key);
      for (size_t i = 0; i < k; i++)
        fprintf(stderr, "  %s %lld [%llu, %llu]\n",
                ld->ops[r][i].kind == LIN_WRITE ? "write" : "read",
                (long long)(ld->ops[r][i].kind == LIN_WRITE
                                ? ld->ops[r][i].arg
                                : ld->ops[r][i].out),
                (unsigned long long)ld->ops[r][i].call,
                (unsigned long long)ld->ops[r][i].ret);
    }
    assert_int_equal(ok, 1);
  }
  teex_ds_sync_close(s);

  /* `teex ds status` through a survivor shows the added replicas. */
  char *a[] = {(char *)tu_teex_bin(),
               "ds",
               "status",
               "--state",
               t->state[4],
               "--cert",
               m->cert,
               "--key",
               m->key,
               NULL};
  char *out = NULL;
  assert_int_equal(net_run_teex(a, &out, NULL), 0);
  char row4[64], row5[64];
  snprintf(row4, sizeof row4, "4    %s", t->client[3]);
  snprintf(row5, sizeof row5, "5    %s", t->client[4]);
  if (out == NULL || strstr(out, row4) == NULL || strstr(out, row5) == NULL)
    fail_msg("status does not show replicas 4 and 5:\n%s", out ? out : "");
  free(out);
  free(ld->ops);
  free(ld);
}

static void test_bad_evidence_cannot_be_added(void **state) {
  struct mt *m = *state;
  struct net *t = &m->net;
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
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
  init_joiner(t, 3, 0);
  t->exe[3] = bad;
  assert_int_equal(net_start_nowait(t, 3, "20000"), 0);
  char log[600];
  snprintf(log, sizeof log, "%s/add-bad.log", t->dir);
  int pid = spawn_member_cmd(m, "add-replica", 0, 3, "3000", log);
  int st = wait_exit(pid, 30000);
  size_t ln;
  char *out = (char *)tu_read_file(log, &ln);
  if (st == 0 || out == NULL ||
      strstr(out, "did not show up with evidence the group's policy "
                  "accepts") == NULL ||
      strstr(out, "last refused replica connection") == NULL)
    fail_msg("add-replica of a replica with bad evidence: exit %d:\n%s", st,
             out ? out : "");
  fprintf(stderr, "add-replica refused: %s", out);
  free(out);
  /* Nothing changed: three members everywhere, no key for the bad one. */
  for (int i = 0; i < NET_INITIAL; i++)
    assert_int_equal(conf_members(t, i), 0xeu);
  char key[600];
  snprintf(key, sizeof key, "%s/%s", t->state[3], TEEX_DS_KEY_FILE);
  assert_int_not_equal(access(key, F_OK), 0);
  net_stop(t, 3, SIGKILL);
  /* The group serves on. */
  struct teex_ds_sync *s = net_client(t, "app", 10000);
  NET_SET_OK(t, s, "app/after", "1");
  teex_ds_sync_close(s);

  /* A client that is not an operator cannot change the membership: the
   * enclave client (role sm) has a namespace but is no operator. Use the
   * CLI with a certificate the group does not list as an operator. */
  EVP_PKEY *k2 = NULL;
  X509 *c2 = NULL;
  struct teex_err err;
  assert_int_equal(teex_tls_selfsigned_new("not-operator", 1, &k2, &c2, &err),
                   0);
  struct teex_tls_config tc = {.cert = c2,
                               .key = k2,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &t->ver};
  struct teex_tls_ctx *tls2 = NULL;
  assert_int_equal(teex_tls_ctx_new(&tls2, &tc, 0, &err), 0);
  struct teex_ds_member_req r = {.op = TEEX_DS_MEMBER_REMOVE, .id = 2};
  struct teex_ds_member_list l;
  int rc = teex_ds_member_call(tls2, t->addrs, NET_INITIAL, &r, 1500, &l, &err);
  /* Its certificate is not even a listed client: refused in the handshake
   * (or by the operator check). */
  assert_int_not_equal(rc, 0);
  teex_tls_ctx_free(tls2);
  EVP_PKEY_free(k2);
  X509_free(c2);
  for (int i = 0; i < NET_INITIAL; i++)
    assert_int_equal(conf_members(t, i), 0xeu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_grow_and_shrink_under_load, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bad_evidence_cannot_be_added, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
