/* TEE-DS client library (include/teex/ds_client.h). */
#include "teex/ds_client.h"

#include "ds/wire.h"
#include "teex/mem.h"
#include "teex/proto/ds.pb-c.h"
#include "teex/rpc.h"
#include "teex/rpc_sync.h"

#include <stdlib.h>
#include <string.h>

#define RETRY_MS 25u /* pause before trying the next replica */

struct op;

struct conn {
  struct teex_ds_client *c;
  size_t idx;
  struct teex_rpc_client *rpc; /* NULL when not connected */
  int ready;
};

struct teex_ds_client {
  uv_loop_t *loop;
  struct teex_tls_ctx *tls;
  char *replicas[TEEX_DS_CLIENT_MAX_REPLICAS];
  size_t n;
  char ns[TEEX_DS_NS_MAX + 1];
  uint8_t grant[TEEX_DS_GRANT_MAX];
  size_t grant_len;
  uint32_t timeout_ms;
  uint32_t connect_timeout_ms;
  struct conn conns[TEEX_DS_CLIENT_MAX_REPLICAS];
  size_t leader;             /* where to send first */
  struct op *ops, *ops_tail; /* in the order they were started */
  unsigned live;             /* connections open + operations alive */
  int closing;
};

struct op {
  struct teex_ds_client *c;
  uint8_t *req;
  size_t req_len;
  int read_only;
  int follower; /* a follower read: any replica answers */
  teex_ds_done_cb cb;
  void *arg;
  uint64_t deadline;
  size_t target;
  int in_call, waiting, finished, timer_closed;
  uv_timer_t timer;
  struct op *next, *prev;
};

static void client_maybe_free(struct teex_ds_client *c) {
  if (!c->closing || c->live > 0)
    return;
  for (size_t i = 0; i < c->n; i++)
    free(c->replicas[i]);
  free(c);
}

static void op_maybe_free(struct op *op) {
  if (!op->finished || op->in_call || !op->timer_closed)
    return;
  struct teex_ds_client *c = op->c;
  teex_wipe(op->req, op->req_len);
  free(op->req);
  free(op);
  c->live--;
  client_maybe_free(c);
}

static void timer_closed(uv_handle_t *h) {
  struct op *op = h->data;
  op->timer_closed = 1;
  op_maybe_free(op);
}

static void op_finish(struct op *op, int status, struct teex_ds_result *res) {
  if (op->finished)
    return;
  op->finished = 1;
  struct teex_ds_client *c = op->c;
  if (op->prev)
    op->prev->next = op->next;
  else
    c->ops = op->next;
  if (op->next)
    op->next->prev = op->prev;
  else
    c->ops_tail = op->prev;
  uv_timer_stop(&op->timer);
  uv_close((uv_handle_t *)&op->timer, timer_closed);
  op->cb(op->arg, status, res);
}

static void op_send(struct op *op);

static void op_timer(uv_timer_t *t) {
  op_send(t->data);
}

/* Tries the next replica after a pause. */
static void op_retry(struct op *op, int next) {
  if (op->finished)
    return;
  if (next)
    op->target = (op->target + 1) % op->c->n;
  uv_timer_start(&op->timer, op_timer, next ? RETRY_MS : 0, 0);
}

static int retryable(int code) {
  return code == TEEX_ECLOSED || code == TEEX_ECONN || code == TEEX_ETIMEDOUT ||
         code == TEEX_ESTATE || code == TEEX_EBUSY || code == TEEX_ECANCELED ||
         code == TEEX_EAGAIN;
}

static void call_done(void *arg, int code, const char *msg,
                      const uint8_t *payload, size_t len) {
  (void)msg;
  struct op *op = arg;
  op->in_call = 0;
  struct teex_ds_client *c = op->c;
  if (op->finished || c->closing) {
    op_finish(op, TEEX_ECANCELED, NULL);
    op_maybe_free(op);
    return;
  }
  if (code != 0) {
    if (retryable(code) && op->read_only)
      op_retry(op, 1);
    else
      op_finish(op, code, NULL); /* a refusal, or a write of unknown outcome */
    op_maybe_free(op);
    return;
  }
  struct teex_ds_wire_response r;
  struct teex_err err;
  int rc = teex_ds_wire_response_decode(payload, len, &r, &err);
  if (rc != 0) {
    op_finish(op, rc, NULL);
  } else if (r.not_leader) {
    /* Certainly not applied: safe to retry, reads and writes alike. */
    size_t hint = c->n;
    for (size_t i = 0; i < c->n; i++)
      if (r.leader_addr[0] && strcmp(c->replicas[i], r.leader_addr) == 0)
        hint = i;
    if (hint < c->n && hint != op->target) {
      op->target = hint;
      c->leader = hint;
      op_retry(op, 0);
    } else {
      op_retry(op, 1); /* no leader known yet: wait for the election */
    }
  } else {
    struct teex_ds_result *res = malloc(sizeof(*res));
    if (res == NULL) {
      teex_ds_result_free(&r.res);
      op_finish(op, TEEX_ENOMEM, NULL);
    } else {
      *res = r.res;
      if (!op->follower) /* only the leader answers these */
        c->leader = op->target;
      op_finish(op, 0, res);
    }
  }
  op_maybe_free(op);
}

static void conn_state(struct teex_rpc_client *rpc, int code,
                       const char *reason, void *arg);

static void op_call(struct op *op, struct conn *k) {
  uint64_t now = uv_now(op->c->loop);
  uint32_t left = (uint32_t)(op->deadline - now);
  struct teex_err err;
  if (teex_rpc_client_call(k->rpc, TEEX_DS_METHOD_EXEC, op->req, op->req_len,
                           left ? left : 1, call_done, NULL, op, &err) != 0) {
    op_retry(op, 1);
    return;
  }
  op->in_call = 1;
}

/* The replica op waits for did not complete its connect + handshake in
 * time: try the next one (the connection attempt goes on; conn_state no
 * longer concerns op). */
static void op_connect_timer(uv_timer_t *t) {
  struct op *op = t->data;
  if (op->finished || !op->waiting)
    return;
  op->waiting = 0;
  op->target = (op->target + 1) % op->c->n;
  op_send(op);
}

static void op_send(struct op *op) {
  struct teex_ds_client *c = op->c;
  if (op->finished)
    return;
  if (uv_now(c->loop) >= op->deadline) {
    op_finish(op, TEEX_ETIMEDOUT, NULL);
    op_maybe_free(op);
    return;
  }
  struct conn *k = &c->conns[op->target];
  if (k->rpc == NULL) {
    struct teex_rpc_limits lim = {.max_message = TEEX_DS_WIRE_MAX};
    struct teex_err err;
    if (teex_rpc_client_connect(c->loop, c->tls, c->replicas[op->target], &lim,
                                conn_state, k, &k->rpc, &err) != 0) {
      k->rpc = NULL;
      op_retry(op, 1);
      return;
    }
    c->live++;
  }
  if (!k->ready) {
    op->waiting = 1;
    /* conn_state sends it, unless this replica takes too long to answer. */
    uint64_t left = op->deadline - uv_now(c->loop);
    uv_timer_start(&op->timer, op_connect_timer,
                   left < c->connect_timeout_ms ? left : c->connect_timeout_ms,
                   0);
    return;
  }
  op_call(op, k);
}

static void conn_state(struct teex_rpc_client *rpc, int code,
                       const char *reason, void *arg) {
  (void)rpc;
  (void)reason;
  struct conn *k = arg;
  struct teex_ds_client *c = k->c;
  if (code == 0 && k->rpc != NULL) {
    k->ready = 1;
  } else {
    k->rpc = NULL;
    k->ready = 0;
    c->live--;
  }
  /* Operations waiting for this replica: send, or try the next one. */
  for (struct op *op = c->ops, *next; op != NULL; op = next) {
    next = op->next;
    if (!op->waiting || op->target != k->idx)
      continue;
    op->waiting = 0;
    uv_timer_stop(&op->timer);
    if (c->closing)
      op_finish(op, TEEX_ECANCELED, NULL);
    else if (k->ready)
      op_call(op, k);
    else
      op_retry(op, 1);
    op_maybe_free(op);
  }
  client_maybe_free(c);
}

int teex_ds_client_new(uv_loop_t *loop, const struct teex_ds_client_config *cfg,
                       struct teex_ds_client **out, struct teex_err *err) {
  if (cfg->n_replicas == 0 || cfg->n_replicas > TEEX_DS_CLIENT_MAX_REPLICAS ||
      cfg->tls == NULL || cfg->ns == NULL || strlen(cfg->ns) == 0 ||
      strlen(cfg->ns) > TEEX_DS_NS_MAX || cfg->grant_len > TEEX_DS_GRANT_MAX)
    return teex_err_set(err, TEEX_EINVAL,
                        "ds client: needs 1..%d replicas, a TLS context and "
                        "a namespace (and a grant of at most %d bytes)",
                        TEEX_DS_CLIENT_MAX_REPLICAS, TEEX_DS_GRANT_MAX);
  struct teex_ds_client *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  c->loop = loop;
  c->tls = cfg->tls;
  c->n = cfg->n_replicas;
  c->timeout_ms =
      cfg->timeout_ms ? cfg->timeout_ms : TEEX_DS_CLIENT_DEFAULT_TIMEOUT_MS;
  c->connect_timeout_ms = cfg->connect_timeout_ms
                              ? cfg->connect_timeout_ms
                              : TEEX_DS_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS;
  memcpy(c->ns, cfg->ns, strlen(cfg->ns) + 1);
  if (cfg->grant != NULL && cfg->grant_len > 0) {
    memcpy(c->grant, cfg->grant, cfg->grant_len);
    c->grant_len = cfg->grant_len;
  }
  for (size_t i = 0; i < c->n; i++) {
    c->conns[i].c = c;
    c->conns[i].idx = i;
    c->replicas[i] = strdup(cfg->replicas[i]);
    if (c->replicas[i] == NULL) {
      c->closing = 1;
      client_maybe_free(c);
      return teex_err_set(err, TEEX_ENOMEM, "out of memory");
    }
  }
  *out = c;
  return 0;
}

int teex_ds_client_exec(struct teex_ds_client *c, const struct teex_ds_cmd *cmd,
                        enum teex_ds_read_mode mode, teex_ds_done_cb cb,
                        void *arg, struct teex_err *err) {
  if (c->closing)
    return teex_err_set(err, TEEX_ESTATE, "ds client: closing");
  if (mode != TEEX_DS_READ_LINEARIZABLE && mode != TEEX_DS_READ_FOLLOWER)
    return teex_err_set(err, TEEX_EINVAL, "ds client: bad read mode");
  struct op *op = calloc(1, sizeof(*op));
  if (op == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  int rc = teex_ds_wire_request_encode_granted(
      cmd, c->ns, c->grant_len > 0 ? c->grant : NULL, c->grant_len,
      (uint32_t)mode, &op->req, &op->req_len, err);
  if (rc != 0) {
    free(op);
    return teex_err_wrap(err, 0, "ds client");
  }
  op->c = c;
  op->cb = cb;
  op->arg = arg;
  op->read_only = cmd->op == TEEX_DS_GET || cmd->op == TEEX_DS_SCAN ||
                  cmd->op == TEEX_DS_COUNT;
  op->follower = mode == TEEX_DS_READ_FOLLOWER;
  op->deadline = uv_now(c->loop) + c->timeout_ms;
  /* Follower reads spread over the replicas; the rest go to the leader. */
  op->target = mode == TEEX_DS_READ_FOLLOWER
                   ? (size_t)((uintptr_t)op >> 4) % c->n
                   : c->leader;
  uv_timer_init(c->loop, &op->timer);
  op->timer.data = op;
  /* Appended: operations waiting for a connection are sent in the order
   * they were started, so a pipeline's commands reach the leader in order. */
  op->prev = c->ops_tail;
  if (c->ops_tail)
    c->ops_tail->next = op;
  else
    c->ops = op;
  c->ops_tail = op;
  c->live++;
  /* Start from the loop, so cb never runs inside this call. */
  uv_timer_start(&op->timer, op_timer, 0, 0);
  return 0;
}

void teex_ds_client_close(struct teex_ds_client *c) {
  if (c == NULL || c->closing)
    return;
  c->closing = 1;
  c->live++; /* hold the client while closing */
  while (c->ops != NULL) {
    struct op *op = c->ops;
    op->waiting = 0;
    op_finish(op, TEEX_ECANCELED, NULL);
    op_maybe_free(op);
  }
  for (size_t i = 0; i < c->n; i++)
    if (c->conns[i].rpc != NULL)
      teex_rpc_client_close(c->conns[i].rpc);
  c->live--;
  client_maybe_free(c);
}

/* ---- blocking wrapper ---- */

struct teex_ds_sync {
  uv_loop_t loop;
  struct teex_ds_client *c;
};

int teex_ds_sync_open(const struct teex_ds_client_config *cfg,
                      struct teex_ds_sync **out, struct teex_err *err) {
  struct teex_ds_sync *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  if (uv_loop_init(&s->loop) != 0) {
    free(s);
    return teex_err_set(err, TEEX_EIO, "event loop");
  }
  int rc = teex_ds_client_new(&s->loop, cfg, &s->c, err);
  if (rc != 0) {
    uv_loop_close(&s->loop);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

struct sync_wait {
  int done, status;
  struct teex_ds_result *res;
};

static void sync_done(void *arg, int status, struct teex_ds_result *res) {
  struct sync_wait *w = arg;
  w->done = 1;
  w->status = status;
  w->res = res;
}

int teex_ds_sync_exec(struct teex_ds_sync *s, const struct teex_ds_cmd *cmd,
                      enum teex_ds_read_mode mode, struct teex_ds_result *res,
                      struct teex_err *err) {
  struct sync_wait w = {0, 0, NULL};
  memset(res, 0, sizeof(*res));
  /* The private loop has not run since the last call: its cached time may
   * be long past, and the operation's deadline would then be too. */
  uv_update_time(&s->loop);
  int rc = teex_ds_client_exec(s->c, cmd, mode, sync_done, &w, err);
  if (rc != 0)
    return rc;
  while (!w.done)
    uv_run(&s->loop, UV_RUN_ONCE);
  if (w.status != 0)
    return teex_err_set(err, w.status, "ds: %s%s", teex_strerror(w.status),
                        w.status == TEEX_EPERM
                            ? " (namespace not granted to this client)"
                        : (w.status == TEEX_ECLOSED || w.status == TEEX_ESTATE)
                            ? " (the write's outcome is unknown)"
                            : "");
  *res = *w.res;
  free(w.res);
  return 0;
}

void teex_ds_sync_close(struct teex_ds_sync *s) {
  if (s == NULL)
    return;
  teex_ds_client_close(s->c);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  free(s);
}

int teex_ds_replica_info_get(struct teex_tls_ctx *tls, const char *addr,
                             uint32_t timeout_ms,
                             struct teex_ds_replica_info *out,
                             struct teex_err *err) {
  memset(out, 0, sizeof(*out));
  struct teex_rpc_sync *rpc = NULL;
  int rc = teex_rpc_sync_connect(addr, tls, timeout_ms, &rpc, err);
  if (rc != 0)
    return rc;
  struct teex_buf resp;
  teex_buf_init(&resp, 64 * 1024, 0);
  rc = teex_rpc_sync_call(rpc, TEEX_DS_METHOD_STATUS, NULL, 0, timeout_ms,
                          &resp, err);
  if (rc == 0) {
    Teex__Ds__StatusResponse *m =
        teex__ds__status_response__unpack(NULL, resp.len, resp.data);
    if (m == NULL) {
      rc = teex_err_set(err, TEEX_EFORMAT, "malformed status");
    } else {
      out->id = m->id;
      out->leader = m->leader;
      out->leader_id = m->leader_id;
      snprintf(out->leader_addr, sizeof(out->leader_addr), "%s",
               m->leader_addr);
      out->term = m->term;
      out->last_index = m->last_index;
      out->last_applied = m->last_applied;
      out->keys = m->keys;
      out->clock_ms = m->clock_ms;
      out->failed = m->failed;
      snprintf(out->failure, sizeof(out->failure), "%s", m->failure);
      out->voting = m->voting;
      out->catch_up_to = m->catch_up_to;
      out->read_barriers = m->read_barriers;
      out->reads = m->reads;
      out->lease_reads = m->lease_reads;
      out->coalesced = m->coalesced;
      if (m->applied_chain.len == 32)
        memcpy(out->applied_chain, m->applied_chain.data, 32);
      out->anchor_index = m->anchor_index;
      snprintf(out->freshness, sizeof(out->freshness), "%s",
               m->freshness ? m->freshness : "");
      teex__ds__status_response__free_unpacked(m, NULL);
    }
  }
  teex_buf_free(&resp);
  teex_rpc_sync_close(rpc);
  return rc;
}
