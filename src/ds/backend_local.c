/* The in-process backend of the RESP proxy (include/teex/ds_proxy.h): a
 * TEE-DS group of replicas on libraft's deterministic in-memory fixture,
 * stepped from the libuv loop while commands are pending. Commands are
 * queued by exec (never run inside the caller, so a callback that execs
 * the next command does not re-enter raft) and proposed from an idle
 * handle, which then steps the fixture until their results are applied. */
#include "teex/ds_proxy.h"

#include "ds/consensus.h"
#include "ds/replica.h"
#include "teex/crypto.h"
#include "teex/mem.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_MAX 5
/* Entries between snapshots (libraft's default is 1024). */
#define LOCAL_SNAPSHOT_EVERY 128
/* Fixture steps per loop iteration, so sockets are served in between. */
#define STEPS_PER_TURN 4096

struct op {
  struct op *next;
  struct local *l;
  uint8_t *enc; /* the encoded command (our copy) */
  size_t enc_len;
  int read_mode;
  teex_ds_done_cb cb;
  void *arg;
};

struct local {
  struct teex_ds_backend base;
  uv_loop_t *loop;
  uv_idle_t idle;
  struct raft_fixture f;
  unsigned n;
  struct teex_ds_replica *rep[LOCAL_MAX];
  struct teex_ds_consensus *cons[LOCAL_MAX];
  struct op *head, *tail; /* queued, not yet proposed */
  size_t proposed;        /* proposed, result not yet back */
  int idle_on;
  int closing;
};

static void op_free(struct op *o) {
  if (o->enc) {
    teex_wipe(o->enc, o->enc_len);
    free(o->enc);
  }
  free(o);
}

static void on_idle(uv_idle_t *h);

/* A live follower has not yet applied what the leader applied: the
 * fixture only moves while stepped, so it is stepped until followers catch
 * up too (follower reads would otherwise stay stale while idle). */
static int lagging(struct local *l) {
  unsigned leader = raft_fixture_leader_index(&l->f);
  if (leader >= l->n)
    return 0;
  raft_index applied = raft_last_applied(raft_fixture_get(&l->f, leader));
  for (unsigned i = 0; i < l->n; i++)
    if (i != leader && raft_fixture_alive(&l->f, i) &&
        !l->cons[i]->ops->failed(l->cons[i]) &&
        raft_last_applied(raft_fixture_get(&l->f, i)) < applied)
      return 1;
  return 0;
}

static void idle_update(struct local *l) {
  int want = l->head != NULL || l->proposed > 0 || lagging(l);
  if (want && !l->idle_on) {
    uv_idle_start(&l->idle, on_idle);
    l->idle_on = 1;
  } else if (!want && l->idle_on) {
    uv_idle_stop(&l->idle);
    l->idle_on = 0;
  }
}

static void proposed_done(void *arg, int status, struct teex_ds_result *res) {
  struct op *o = arg;
  struct local *l = o->l;
  l->proposed--;
  o->cb(o->arg, status, res);
  op_free(o);
}

/* Answers a command at once from the local state of a follower (or the
 * leader when alone): a follower read. */
static void read_local(struct local *l, struct op *o,
                       const struct teex_ds_cmd *cmd) {
  unsigned leader = raft_fixture_leader_index(&l->f);
  unsigned i = l->n > 1 ? (leader + 1) % l->n : 0;
  struct teex_ds_result *res = calloc(1, sizeof(*res));
  int rc = res ? teex_ds_replica_read_local(l->rep[i], cmd, res) : TEEX_ENOMEM;
  if (rc != 0) {
    free(res);
    res = NULL;
  }
  o->cb(o->arg, rc, res);
  op_free(o);
}

static void propose_queued(struct local *l) {
  while (l->head != NULL) {
    struct op *o = l->head;
    l->head = o->next;
    if (l->head == NULL)
      l->tail = NULL;
    struct teex_ds_cmd_view *v = malloc(sizeof(*v));
    struct teex_err err;
    int rc = v ? teex_ds_cmd_decode(o->enc, o->enc_len, v, &err) : TEEX_ENOMEM;
    if (rc == 0 && o->read_mode == TEEX_DS_PROXY_READ_FOLLOWER &&
        (v->cmd.op == TEEX_DS_GET || v->cmd.op == TEEX_DS_SCAN ||
         v->cmd.op == TEEX_DS_COUNT)) {
      read_local(l, o, &v->cmd);
      free(v);
      continue;
    }
    unsigned leader = raft_fixture_leader_index(&l->f);
    if (rc == 0 && leader >= l->n)
      rc = TEEX_ESTATE;
    if (rc == 0) {
      /* Reads go through the log too: they then see the group clock of
       * now (a barrier read would see the clock of the last write). */
      l->proposed++;
      rc = teex_ds_replica_submit(l->rep[leader], &v->cmd, proposed_done, o,
                                  &err);
      if (rc != 0)
        l->proposed--;
    }
    free(v);
    if (rc != 0) {
      o->cb(o->arg, rc, NULL);
      op_free(o);
    }
  }
}

static void on_idle(uv_idle_t *h) {
  struct local *l = h->data;
  propose_queued(l);
  for (int i = 0; i < STEPS_PER_TURN && l->proposed > 0; i++) {
    raft_fixture_step(&l->f);
    /* results may have queued more commands */
    if (l->head != NULL)
      propose_queued(l);
  }
  for (int i = 0;
       i < STEPS_PER_TURN && l->proposed == 0 && l->head == NULL && lagging(l);
       i++)
    raft_fixture_step(&l->f);
  idle_update(l);
}

static int local_exec(struct teex_ds_backend *b, const struct teex_ds_cmd *cmd,
                      int read_mode, teex_ds_done_cb cb, void *arg,
                      struct teex_err *err) {
  struct local *l = (struct local *)b;
  if (l->closing)
    return teex_err_set(err, TEEX_ECANCELED, "ds local: closing");
  struct op *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds local: out of memory");
  int rc = teex_ds_cmd_encode(cmd, &o->enc, &o->enc_len, err);
  if (rc != 0) {
    free(o);
    return teex_err_wrap(err, 0, "ds local");
  }
  o->l = l;
  o->read_mode = read_mode;
  o->cb = cb;
  o->arg = arg;
  if (l->tail)
    l->tail->next = o;
  else
    l->head = o;
  l->tail = o;
  idle_update(l);
  return 0;
}

static void local_info(struct teex_ds_backend *b,
                       struct teex_ds_backend_info *out) {
  struct local *l = (struct local *)b;
  memset(out, 0, sizeof(*out));
  out->backend = "in-process group on the raft test fixture (development "
                 "mode: not replicated across machines, not persisted)";
  unsigned leader = raft_fixture_leader_index(&l->f);
  if (leader >= l->n)
    return;
  struct teex_ds_status st;
  teex_ds_replica_status(l->rep[leader], &st);
  out->known = 1;
  out->leader = st.leader;
  out->self_id = st.self_id;
  out->leader_id = st.leader_id;
  out->term = st.term;
  out->last_applied = st.last_applied;
  out->replicas = l->n;
  out->replicas_up = l->n;
}

static void on_idle_closed(uv_handle_t *h) {
  free(h->data);
}

static void local_free(struct teex_ds_backend *b) {
  struct local *l = (struct local *)b;
  if (l == NULL)
    return;
  l->closing = 1;
  while (l->head != NULL) {
    struct op *o = l->head;
    l->head = o->next;
    o->cb(o->arg, TEEX_ECANCELED, NULL);
    op_free(o);
  }
  l->tail = NULL;
  /* closing raft calls back what was proposed (TEEX_ECANCELED) */
  raft_fixture_close(&l->f);
  for (unsigned i = 0; i < l->n; i++) {
    l->cons[i]->ops->free(l->cons[i]);
    teex_ds_replica_free(l->rep[i]);
  }
  l->n = 0;
  uv_idle_stop(&l->idle);
  uv_close((uv_handle_t *)&l->idle, on_idle_closed);
}

static const struct teex_ds_backend_ops local_ops = {
    .exec = local_exec,
    .info = local_info,
    .free = local_free,
};

int teex_ds_backend_local_new(uv_loop_t *loop, unsigned replicas,
                              uint64_t (*clock_ms)(void *), void *clock_arg,
                              struct teex_ds_backend **out,
                              struct teex_err *err) {
  *out = NULL;
  if (replicas < 1 || replicas > LOCAL_MAX)
    return teex_err_set(err, TEEX_EINVAL, "ds local: %u replicas (1-%d)",
                        replicas, LOCAL_MAX);
  struct local *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "ds local: out of memory");
  l->base.ops = &local_ops;
  l->loop = loop;
  int rc = raft_fixture_initialize(&l->f);
  if (rc != 0) {
    free(l);
    return teex_err_set(err, TEEX_ENOMEM, "ds local: raft fixture: %d", rc);
  }
  uint8_t *key = teex_secret_alloc(32);
  if (key == NULL) {
    raft_fixture_close(&l->f);
    free(l);
    return teex_err_set(err, TEEX_ENOMEM, "ds local: out of memory");
  }
  teex_random(key, 32);
  struct teex_ds_replica_config cfg = {
      .group_key = key, .clock_ms = clock_ms, .clock_arg = clock_arg};
  teex_random(cfg.group_id, sizeof cfg.group_id);
  for (unsigned i = 0; i < replicas && rc == 0; i++) {
    rc = teex_ds_replica_new(&cfg, &l->rep[i], err);
    if (rc == 0 && (rc = teex_ds_raft_new(&teex_ds_replica_hooks, l->rep[i],
                                          &l->cons[i])) != 0) {
      teex_ds_replica_free(l->rep[i]);
      l->rep[i] = NULL;
    }
    if (rc == 0 &&
        (rc = raft_fixture_grow(&l->f, teex_ds_raft_fsm(l->cons[i]))) != 0) {
      l->cons[i]->ops->free(l->cons[i]);
      teex_ds_replica_free(l->rep[i]);
      l->rep[i] = NULL;
    }
    if (rc == 0) {
      struct raft *r = raft_fixture_get(&l->f, i);
      /* The fixture's in-memory log copies entries, so it slows as the
       * log grows: keep it short with frequent snapshots. */
      raft_set_snapshot_threshold(r, LOCAL_SNAPSHOT_EVERY);
      raft_set_snapshot_trailing(r, LOCAL_SNAPSHOT_EVERY / 2);
      teex_ds_raft_attach(l->cons[i], r);
      teex_ds_replica_bind(l->rep[i], l->cons[i]);
      l->n++;
    }
  }
  teex_secret_free(key);
  struct raft_configuration conf;
  if (rc == 0 && (rc = raft_fixture_configuration(&l->f, l->n, &conf)) == 0) {
    rc = raft_fixture_bootstrap(&l->f, &conf);
    raft_configuration_close(&conf);
  }
  if (rc == 0)
    rc = raft_fixture_start(&l->f);
  if (rc == 0 && !raft_fixture_step_until_has_leader(&l->f, 10000))
    rc = TEEX_ESTATE;
  uv_idle_init(loop, &l->idle);
  l->idle.data = l;
  if (rc != 0) {
    local_free(&l->base);
    return teex_err_set(err, rc < 0 ? rc : TEEX_EINTERNAL,
                        "ds local: cannot start the in-process group");
  }
  *out = &l->base;
  return 0;
}
