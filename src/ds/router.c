/* TEE-DS routing across groups (include/teex/ds_router.h). */
#include "teex/ds_router.h"

#include "teex/mem.h"

#include <stdlib.h>
#include <string.h>

#define BUSY_FIRST_MS 20u /* first pause while a namespace is frozen */
#define BUSY_MAX_MS 200u

struct gclient {
  uint64_t id;
  struct teex_ds_client *c;
};

struct rop;

struct teex_ds_router {
  uv_loop_t *loop;
  struct teex_ds_dir *dir;
  uint8_t *dir_text;
  size_t dir_len;
  uint8_t pk[32];
  struct teex_ds_router_tls tls[TEEX_DS_ROUTER_TLS_MAX];
  size_t n_tls;
  char ns[TEEX_DS_NS_MAX + 1];
  uint8_t grant[TEEX_DS_GRANT_MAX];
  size_t grant_len;
  uint32_t timeout_ms, connect_timeout_ms;
  void (*on_directory)(void *, const uint8_t *, size_t, uint64_t);
  void *on_directory_arg;
  struct gclient clients[TEEX_DS_DIR_GROUPS_MAX];
  size_t n_clients;
  uint64_t moves, waits;
  struct rop *ops;
  unsigned live;
  int closing;
};

struct rop {
  struct teex_ds_router *r;
  uint8_t *enc; /* the command, encoded (re-decoded for every attempt) */
  size_t enc_len;
  struct teex_ds_cmd_view view;
  enum teex_ds_read_mode mode;
  teex_ds_done_cb cb;
  void *arg;
  uint64_t deadline;
  uint64_t group; /* where the last attempt went */
  unsigned hops;
  uint32_t busy_ms;
  int in_call, finished, timer_closed;
  uv_timer_t timer;
  struct rop *next, *prev;
};

static void router_maybe_free(struct teex_ds_router *r) {
  if (!r->closing || r->live > 0)
    return;
  free(r->dir);
  free(r->dir_text);
  teex_wipe(r->grant, sizeof r->grant);
  free(r);
}

static void rop_maybe_free(struct rop *op) {
  if (!op->finished || op->in_call || !op->timer_closed)
    return;
  struct teex_ds_router *r = op->r;
  teex_wipe(op->enc, op->enc_len);
  free(op->enc);
  free(op);
  r->live--;
  router_maybe_free(r);
}

static void rop_timer_closed(uv_handle_t *h) {
  struct rop *op = h->data;
  op->timer_closed = 1;
  rop_maybe_free(op);
}

static void rop_finish(struct rop *op, int status, struct teex_ds_result *res) {
  if (op->finished) {
    if (res != NULL) {
      teex_ds_result_free(res);
      free(res);
    }
    return;
  }
  op->finished = 1;
  struct teex_ds_router *r = op->r;
  if (op->prev)
    op->prev->next = op->next;
  else
    r->ops = op->next;
  if (op->next)
    op->next->prev = op->prev;
  uv_timer_stop(&op->timer);
  uv_close((uv_handle_t *)&op->timer, rop_timer_closed);
  op->cb(op->arg, status, res);
}

/* The group client for group id (made on first use). NULL with *why set. */
static struct teex_ds_client *client_for(struct teex_ds_router *r, uint64_t id,
                                         int *why) {
  for (size_t i = 0; i < r->n_clients; i++)
    if (r->clients[i].id == id)
      return r->clients[i].c;
  const struct teex_ds_dir_group *g = teex_ds_dir_group(r->dir, id);
  if (g == NULL || r->n_clients == TEEX_DS_DIR_GROUPS_MAX) {
    *why = TEEX_ENOTFOUND;
    return NULL;
  }
  struct teex_tls_ctx *tls = NULL;
  for (size_t i = 0; i < r->n_tls; i++)
    if (memcmp(r->tls[i].policy, g->policy, 32) == 0)
      tls = r->tls[i].tls;
  if (tls == NULL) {
    *why = TEEX_EPOLICY;
    return NULL;
  }
  const char *addrs[TEEX_DS_DIR_MEMBERS_MAX];
  for (size_t i = 0; i < g->n_members; i++)
    addrs[i] = g->members[i];
  struct teex_ds_client_config cc = {.replicas = addrs,
                                     .n_replicas = g->n_members,
                                     .tls = tls,
                                     .ns = r->ns,
                                     .grant = r->grant_len ? r->grant : NULL,
                                     .grant_len = r->grant_len,
                                     .timeout_ms = r->timeout_ms,
                                     .connect_timeout_ms =
                                         r->connect_timeout_ms};
  struct teex_ds_client *c = NULL;
  struct teex_err err;
  int rc = teex_ds_client_new(r->loop, &cc, &c, &err);
  if (rc != 0) {
    *why = rc;
    return NULL;
  }
  r->clients[r->n_clients].id = id;
  r->clients[r->n_clients].c = c;
  r->n_clients++;
  return c;
}

static void rop_done(void *arg, int status, struct teex_ds_result *res);

static void rop_send(struct rop *op) {
  struct teex_ds_router *r = op->r;
  if (uv_now(r->loop) >= op->deadline) {
    rop_finish(op, TEEX_ETIMEDOUT, NULL);
    return;
  }
  op->group = teex_ds_dir_owner(r->dir, r->ns);
  int why = TEEX_ENOTFOUND;
  struct teex_ds_client *c = op->group ? client_for(r, op->group, &why) : NULL;
  if (c == NULL) {
    rop_finish(op, why, NULL);
    return;
  }
  struct teex_err err;
  int rc = teex_ds_cmd_decode(op->enc, op->enc_len, &op->view, &err);
  if (rc == 0)
    rc = teex_ds_client_exec(c, &op->view.cmd, op->mode, rop_done, op, &err);
  if (rc != 0) {
    rop_finish(op, rc, NULL);
    return;
  }
  op->in_call = 1;
}

static void rop_timer(uv_timer_t *t) {
  rop_send(t->data);
}

/* A "moved" answer: adopt its directory if newer and valid. 0: try again
 * (the directory now places ns elsewhere); else the status to finish with
 * (1: hand the EMOVED result itself to the caller). */
static int follow_move(struct rop *op, const struct teex_ds_result *res) {
  struct teex_ds_router *r = op->r;
  struct teex_ds_place_record rec;
  if (teex_ds_place_record_parse(res->val, res->val_len, &rec) != 0)
    return TEEX_EPROTO;
  if (rec.epoch > r->dir->epoch && rec.dir_len > 0) {
    struct teex_ds_dir *nd = malloc(sizeof(*nd));
    uint8_t *text = malloc(rec.dir_len);
    struct teex_err err;
    int rc = nd && text ? 0 : TEEX_ENOMEM;
    if (rc == 0)
      rc = teex_ds_dir_open(rec.dir, rec.dir_len, r->pk, nd, &err);
    if (rc == 0 && nd->epoch < rec.epoch)
      rc = TEEX_EPROTO; /* the record claims a newer epoch than it carries */
    if (rc != 0) {
      free(nd);
      free(text);
      return rc == TEEX_ENOMEM ? rc : TEEX_EBADSIG;
    }
    memcpy(text, rec.dir, rec.dir_len);
    free(r->dir);
    free(r->dir_text);
    r->dir = nd;
    r->dir_text = text;
    r->dir_len = rec.dir_len;
    r->moves++;
    if (r->on_directory)
      r->on_directory(r->on_directory_arg, text, rec.dir_len, nd->epoch);
  }
  /* Another operation may have adopted it already: what matters is whether
   * the directory we hold now sends ns somewhere else. */
  if (teex_ds_dir_owner(r->dir, r->ns) == op->group)
    return 1;
  return ++op->hops > TEEX_DS_ROUTER_HOPS_MAX ? 1 : 0;
}

static void rop_done(void *arg, int status, struct teex_ds_result *res) {
  struct rop *op = arg;
  op->in_call = 0;
  struct teex_ds_router *r = op->r;
  if (op->finished || r->closing) {
    rop_finish(op, TEEX_ECANCELED, NULL);
    if (res != NULL) {
      teex_ds_result_free(res);
      free(res);
    }
    rop_maybe_free(op);
    return;
  }
  if (status == 0 && res->status == TEEX_EMOVED) {
    int rc = follow_move(op, res);
    if (rc == 0) {
      teex_ds_result_free(res);
      free(res);
      uv_timer_start(&op->timer, rop_timer, 0, 0);
    } else if (rc == 1) {
      rop_finish(op, 0, res);
    } else {
      teex_ds_result_free(res);
      free(res);
      rop_finish(op, rc, NULL);
    }
  } else if (status == 0 && res->status == TEEX_EBUSY &&
             uv_now(r->loop) + op->busy_ms < op->deadline) {
    /* Frozen for a move: nothing was applied; wait for the move to end. */
    r->waits++;
    teex_ds_result_free(res);
    free(res);
    uv_timer_start(&op->timer, rop_timer, op->busy_ms, 0);
    op->busy_ms = op->busy_ms * 2 > BUSY_MAX_MS ? BUSY_MAX_MS : op->busy_ms * 2;
  } else {
    rop_finish(op, status, res);
  }
  rop_maybe_free(op);
}

int teex_ds_router_new(uv_loop_t *loop, const struct teex_ds_router_config *cfg,
                       struct teex_ds_router **out, struct teex_err *err) {
  if (cfg->ns == NULL || strlen(cfg->ns) == 0 ||
      strlen(cfg->ns) > TEEX_DS_NS_MAX || cfg->placement_pk == NULL ||
      cfg->n_tls == 0 || cfg->n_tls > TEEX_DS_ROUTER_TLS_MAX ||
      cfg->grant_len > TEEX_DS_GRANT_MAX || cfg->dir == NULL)
    return teex_err_set(err, TEEX_EINVAL, "ds router: bad configuration");
  struct teex_ds_router *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  r->dir = malloc(sizeof(*r->dir));
  r->dir_text = malloc(cfg->dir_len ? cfg->dir_len : 1);
  if (r->dir == NULL || r->dir_text == NULL) {
    free(r->dir);
    free(r->dir_text);
    free(r);
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  }
  int rc =
      teex_ds_dir_open(cfg->dir, cfg->dir_len, cfg->placement_pk, r->dir, err);
  if (rc == 0 && teex_ds_dir_owner(r->dir, cfg->ns) == 0)
    rc = teex_err_set(err, TEEX_ENOTFOUND,
                      "no group of the directory owns namespace %s (no "
                      "explicit placement and no group marked hash)",
                      cfg->ns);
  if (rc != 0) {
    free(r->dir);
    free(r->dir_text);
    free(r);
    return teex_err_wrap(err, 0, "ds router");
  }
  memcpy(r->dir_text, cfg->dir, cfg->dir_len);
  r->dir_len = cfg->dir_len;
  r->loop = loop;
  memcpy(r->pk, cfg->placement_pk, 32);
  memcpy(r->tls, cfg->tls, cfg->n_tls * sizeof(cfg->tls[0]));
  r->n_tls = cfg->n_tls;
  memcpy(r->ns, cfg->ns, strlen(cfg->ns) + 1);
  if (cfg->grant_len)
    memcpy(r->grant, cfg->grant, cfg->grant_len);
  r->grant_len = cfg->grant_len;
  r->timeout_ms =
      cfg->timeout_ms ? cfg->timeout_ms : TEEX_DS_CLIENT_DEFAULT_TIMEOUT_MS;
  r->connect_timeout_ms = cfg->connect_timeout_ms;
  r->on_directory = cfg->on_directory;
  r->on_directory_arg = cfg->on_directory_arg;
  *out = r;
  return 0;
}

int teex_ds_router_exec(struct teex_ds_router *r, const struct teex_ds_cmd *cmd,
                        enum teex_ds_read_mode mode, teex_ds_done_cb cb,
                        void *arg, struct teex_err *err) {
  if (r->closing)
    return teex_err_set(err, TEEX_ESTATE, "ds router: closing");
  struct rop *op = calloc(1, sizeof(*op));
  if (op == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  struct teex_ds_cmd c = *cmd;
  c.grant = r->ns; /* the encoding needs one; the server sets its own */
  int rc = teex_ds_cmd_encode(&c, &op->enc, &op->enc_len, err);
  if (rc != 0) {
    free(op);
    return teex_err_wrap(err, 0, "ds router");
  }
  op->r = r;
  op->mode = mode;
  op->cb = cb;
  op->arg = arg;
  /* Moves add at most a few round trips: the deadline covers following
   * them and waiting out a frozen namespace; each attempt has the group
   * client's own timeout. */
  op->deadline = uv_now(r->loop) + r->timeout_ms;
  op->busy_ms = BUSY_FIRST_MS;
  uv_timer_init(r->loop, &op->timer);
  op->timer.data = op;
  op->next = r->ops;
  if (r->ops)
    r->ops->prev = op;
  r->ops = op;
  r->live++;
  uv_timer_start(&op->timer, rop_timer, 0, 0); /* cb never inside exec */
  return 0;
}

uint64_t teex_ds_router_group(const struct teex_ds_router *r) {
  return teex_ds_dir_owner(r->dir, r->ns);
}

uint64_t teex_ds_router_epoch(const struct teex_ds_router *r) {
  return r->dir->epoch;
}

uint64_t teex_ds_router_moves(const struct teex_ds_router *r) {
  return r->moves;
}

uint64_t teex_ds_router_waits(const struct teex_ds_router *r) {
  return r->waits;
}

void teex_ds_router_close(struct teex_ds_router *r) {
  if (r == NULL || r->closing)
    return;
  r->closing = 1;
  r->live++; /* hold the router while closing */
  /* Operations waiting on a timer end here; those inside a group client
   * end when it is closed (its callback sees r->closing). */
  for (struct rop *op = r->ops, *next; op != NULL; op = next) {
    next = op->next;
    if (!op->in_call) {
      rop_finish(op, TEEX_ECANCELED, NULL);
      rop_maybe_free(op);
    }
  }
  for (size_t i = 0; i < r->n_clients; i++)
    teex_ds_client_close(r->clients[i].c);
  r->n_clients = 0;
  r->live--;
  router_maybe_free(r);
}

/* ---- blocking wrapper ---- */

struct teex_ds_router_sync {
  uv_loop_t loop;
  struct teex_ds_router *r;
};

int teex_ds_router_sync_open(const struct teex_ds_router_config *cfg,
                             struct teex_ds_router_sync **out,
                             struct teex_err *err) {
  struct teex_ds_router_sync *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  if (uv_loop_init(&s->loop) != 0) {
    free(s);
    return teex_err_set(err, TEEX_EIO, "event loop");
  }
  int rc = teex_ds_router_new(&s->loop, cfg, &s->r, err);
  if (rc != 0) {
    uv_loop_close(&s->loop);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

struct rsync_wait {
  int done, status;
  struct teex_ds_result *res;
};

static void rsync_done(void *arg, int status, struct teex_ds_result *res) {
  struct rsync_wait *w = arg;
  w->done = 1;
  w->status = status;
  w->res = res;
}

int teex_ds_router_sync_exec(struct teex_ds_router_sync *s,
                             const struct teex_ds_cmd *cmd,
                             enum teex_ds_read_mode mode,
                             struct teex_ds_result *res, struct teex_err *err) {
  struct rsync_wait w = {0, 0, NULL};
  memset(res, 0, sizeof(*res));
  int rc = teex_ds_router_exec(s->r, cmd, mode, rsync_done, &w, err);
  if (rc != 0)
    return rc;
  while (!w.done)
    uv_run(&s->loop, UV_RUN_ONCE);
  if (w.status != 0)
    return teex_err_set(
        err, w.status, "ds: %s%s", teex_strerror(w.status),
        w.status == TEEX_EPERM ? " (namespace not granted to this client)"
        : w.status == TEEX_EBADSIG
            ? " (a group sent a directory the placement key did not sign)"
        : w.status == TEEX_EPOLICY
            ? " (no attestation policy given for the namespace's group)"
        : (w.status == TEEX_ECLOSED || w.status == TEEX_ESTATE)
            ? " (the write's outcome is unknown)"
            : "");
  *res = *w.res;
  free(w.res);
  return 0;
}

struct teex_ds_router *
teex_ds_router_sync_router(struct teex_ds_router_sync *s) {
  return s->r;
}

void teex_ds_router_sync_close(struct teex_ds_router_sync *s) {
  if (s == NULL)
    return;
  teex_ds_router_close(s->r);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  free(s);
}
