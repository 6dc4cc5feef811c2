/* RPC server and client over TLS connections (include/teex/rpc.h): glue
 * between the libuv/TLS layer and the I/O-free session state machine.
 *
 * Output is written once per loop iteration: frames a session produces are
 * handed to TLS from a uv_prepare handle, which runs before the loop polls,
 * so many calls or answers made in one iteration (a proxy's pipelines, a
 * batch of reads confirmed together) become one TLS record and one write
 * instead of one each, and none waits past the iteration. */
#include "teex/rpc.h"

#include "teex/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct method {
  char *name;
  teex_rpc_handler handler;
  void *arg;
};

struct srv_conn;

struct teex_rpc_server {
  uv_loop_t *loop;
  struct teex_tls_listener *listener;
  struct teex_rpc_limits lim;
  struct method *methods;
  size_t n_methods, cap_methods;
  struct srv_conn *conns;
  unsigned n_conns;
  uv_timer_t timer;  /* the earliest deadline over all connections */
  uv_prepare_t prep; /* writes what connections produced (see the top) */
  int prep_active;
  int closing;
  int timer_closed, prep_closed;
  int port;
};

struct teex_rpc_call {
  struct teex_rpc_call *next, *prev;
  struct srv_conn *conn; /* NULL once the call is over on the wire */
  uint64_t id;
  uint64_t deadline;
  char method[TEEX_RPC_MAX_METHOD + 1];
};

struct srv_conn {
  struct srv_conn *next, *prev;
  struct teex_rpc_server *srv;
  struct teex_tls_conn *tls;
  struct teex_rpc_session sess;
  struct teex_rpc_call *calls;
  int in_feed; /* defer flushing until the input is consumed */
  int ready;
  int dirty; /* output waits for the prepare handle */
};

uint64_t teex_rpc_now(uv_loop_t *loop) {
  return uv_now(loop);
}

/* ---- server ---- */

static void server_maybe_free(struct teex_rpc_server *srv) {
  if (!srv->closing || srv->n_conns > 0 || !srv->timer_closed ||
      !srv->prep_closed)
    return;
  for (size_t i = 0; i < srv->n_methods; i++)
    free(srv->methods[i].name);
  free(srv->methods);
  free(srv);
}

static void server_arm_timer(struct teex_rpc_server *srv);

static void server_on_timer(uv_timer_t *t) {
  struct teex_rpc_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  for (struct srv_conn *sc = srv->conns; sc; sc = sc->next) {
    if (!sc->ready)
      continue;
    teex_rpc_session_tick(&sc->sess, now);
    if (sc->sess.out.len > 0) {
      struct teex_err err;
      if (teex_tls_write(sc->tls, sc->sess.out.data, sc->sess.out.len, &err))
        teex_tls_close_error(sc->tls, err.code, teex_err_msg(&err));
      teex_buf_reset(&sc->sess.out);
    }
  }
  server_arm_timer(srv);
}

static void server_arm_timer(struct teex_rpc_server *srv) {
  if (srv->closing)
    return;
  uint64_t d = UINT64_MAX;
  for (struct srv_conn *sc = srv->conns; sc; sc = sc->next) {
    uint64_t x = teex_rpc_session_next_deadline(&sc->sess);
    if (x < d)
      d = x;
  }
  if (d == UINT64_MAX) {
    uv_timer_stop(&srv->timer);
    return;
  }
  uint64_t now = uv_now(srv->loop);
  uv_timer_start(&srv->timer, server_on_timer, d > now ? d - now : 0, 0);
}

static void conn_flush_now(struct srv_conn *sc) {
  sc->dirty = 0;
  if (sc->sess.out.len == 0 || sc->tls == NULL)
    return;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_tls_write(sc->tls, sc->sess.out.data, sc->sess.out.len, &err) != 0)
    teex_tls_close_error(sc->tls, err.code, teex_err_msg(&err));
  teex_buf_reset(&sc->sess.out);
}

static void server_on_prep(uv_prepare_t *h) {
  struct teex_rpc_server *srv = h->data;
  uv_prepare_stop(&srv->prep);
  srv->prep_active = 0;
  for (struct srv_conn *sc = srv->conns, *next; sc; sc = next) {
    next = sc->next;
    if (sc->dirty)
      conn_flush_now(sc);
  }
}

/* Marks sc's output for the prepare handle (see the top). */
static void conn_flush(struct srv_conn *sc) {
  if (sc->in_feed || sc->sess.out.len == 0 || sc->tls == NULL)
    return;
  struct teex_rpc_server *srv = sc->srv;
  if (srv->closing) {
    conn_flush_now(sc);
    return;
  }
  sc->dirty = 1;
  if (!srv->prep_active) {
    uv_prepare_start(&srv->prep, server_on_prep);
    srv->prep_active = 1;
  }
}

static void call_unlink(struct srv_conn *sc, struct teex_rpc_call *call) {
  if (call->prev)
    call->prev->next = call->next;
  else
    sc->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->next = call->prev = NULL;
  call->conn = NULL;
}

static void sess_on_request(void *arg, uint64_t id, const char *method,
                            const uint8_t *payload, size_t len,
                            uint64_t deadline) {
  struct srv_conn *sc = arg;
  struct teex_rpc_server *srv = sc->srv;
  struct method *m = NULL;
  for (size_t i = 0; i < srv->n_methods; i++)
    if (strcmp(srv->methods[i].name, method) == 0) {
      m = &srv->methods[i];
      break;
    }
  if (m == NULL) {
    char msg[TEEX_RPC_MAX_METHOD + 32];
    snprintf(msg, sizeof msg, "unknown method '%s'", method);
    teex_rpc_session_respond(&sc->sess, id, TEEX_ENOTFOUND, msg, NULL, 0);
    return;
  }
  struct teex_rpc_call *call = calloc(1, sizeof *call);
  if (call == NULL) {
    teex_rpc_session_respond(&sc->sess, id, TEEX_ENOMEM, "out of memory", NULL,
                             0);
    return;
  }
  call->conn = sc;
  call->id = id;
  call->deadline = deadline;
  snprintf(call->method, sizeof call->method, "%s", method);
  call->next = sc->calls;
  if (sc->calls)
    sc->calls->prev = call;
  sc->calls = call;
  m->handler(call, payload, len, m->arg);
}

static void sess_on_call_gone(void *arg, uint64_t id, int why) {
  struct srv_conn *sc = arg;
  (void)why;
  for (struct teex_rpc_call *c = sc->calls; c; c = c->next)
    if (c->id == id) {
      call_unlink(sc, c); /* the handler's later answer is dropped */
      return;
    }
}

static void srv_conn_on_ready(struct teex_tls_conn *c, void *arg) {
  struct srv_conn *sc = arg;
  (void)c;
  sc->ready = 1;
}

static void srv_conn_on_data(struct teex_tls_conn *c, const uint8_t *p,
                             size_t n, void *arg) {
  struct srv_conn *sc = arg;
  struct teex_err err;
  teex_err_clear(&err);
  sc->in_feed = 1;
  int r = teex_rpc_session_feed(&sc->sess, p, n, uv_now(sc->srv->loop), &err);
  sc->in_feed = 0;
  conn_flush(sc);
  if (r != 0) {
    char why[TEEX_ERRMSG_SIZE];
    snprintf(why, sizeof why, "rpc: %s", teex_err_msg(&err));
    teex_tls_close_error(c, r, why);
  }
  server_arm_timer(sc->srv);
}

static void srv_conn_on_close(struct teex_tls_conn *c, int code,
                              const char *reason, void *arg) {
  struct srv_conn *sc = arg;
  struct teex_rpc_server *srv = sc->srv;
  (void)c;
  if (code == 0 && teex_frame_reader_partial(&sc->sess.reader))
    TEEX_WARN("net", "connection closed", "peer=%s reason=\"%s mid-frame\"",
              teex_tls_peer_addr(c), reason);
  while (sc->calls)
    call_unlink(sc, sc->calls);
  sc->tls = NULL;
  teex_rpc_session_close(&sc->sess, reason);
  if (sc->prev)
    sc->prev->next = sc->next;
  else
    srv->conns = sc->next;
  if (sc->next)
    sc->next->prev = sc->prev;
  srv->n_conns--;
  free(sc);
  server_arm_timer(srv);
  server_maybe_free(srv);
}

static void server_on_accept(struct teex_tls_listener *l,
                             struct teex_tls_conn *c, void *arg) {
  struct teex_rpc_server *srv = arg;
  (void)l;
  static const struct teex_tls_conn_cbs cbs = {
      srv_conn_on_ready, srv_conn_on_data, srv_conn_on_close};
  struct srv_conn *sc = calloc(1, sizeof *sc);
  if (sc == NULL) {
    static const struct teex_tls_conn_cbs none = {NULL, NULL, NULL};
    teex_tls_set_cbs(c, &none, NULL);
    teex_tls_close_error(c, TEEX_ENOMEM, "out of memory accepting");
    return;
  }
  sc->srv = srv;
  sc->tls = c;
  static const struct teex_rpc_session_cbs scbs = {sess_on_request,
                                                   sess_on_call_gone};
  unsigned cap = srv->lim.max_conns ? srv->lim.max_conns : 4096u;
  if (srv->n_conns >= cap || srv->closing) {
    static const struct teex_tls_conn_cbs none = {NULL, NULL, NULL};
    free(sc);
    teex_tls_set_cbs(c, &none, NULL);
    char why[96];
    snprintf(why, sizeof why, "refused: %u connections already open",
             srv->n_conns);
    teex_tls_close_error(c, TEEX_EBUSY, why);
    return;
  }
  teex_rpc_session_init(&sc->sess, TEEX_RPC_SERVER, &srv->lim, &scbs, sc);
  sc->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = sc;
  srv->conns = sc;
  srv->n_conns++;
  teex_tls_set_cbs(c, &cbs, sc);
}

int teex_rpc_server_new(uv_loop_t *loop, struct teex_tls_ctx *ctx,
                        const char *addr, const struct teex_rpc_limits *lim,
                        struct teex_rpc_server **out, struct teex_err *err) {
  *out = NULL;
  struct teex_rpc_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "rpc server: out of memory");
  srv->loop = loop;
  if (lim)
    srv->lim = *lim;
  int r = teex_tls_listen(loop, ctx, addr, server_on_accept, srv,
                          &srv->listener, err);
  if (r != 0) {
    free(srv);
    return teex_err_wrap(err, 0, "rpc server");
  }
  srv->port = teex_tls_listener_port(srv->listener);
  uv_timer_init(loop, &srv->timer);
  srv->timer.data = srv;
  uv_prepare_init(loop, &srv->prep);
  srv->prep.data = srv;
  *out = srv;
  return 0;
}

int teex_rpc_server_port(const struct teex_rpc_server *srv) {
  return srv->port;
}

unsigned teex_rpc_server_conn_count(const struct teex_rpc_server *srv) {
  return srv->n_conns;
}

int teex_rpc_server_register(struct teex_rpc_server *srv, const char *method,
                             teex_rpc_handler handler, void *arg) {
  size_t ml = method ? strlen(method) : 0;
  if (ml == 0 || ml > TEEX_RPC_MAX_METHOD || handler == NULL)
    return TEEX_EINVAL;
  for (size_t i = 0; i < srv->n_methods; i++)
    if (strcmp(srv->methods[i].name, method) == 0)
      return TEEX_EEXIST;
  if (srv->n_methods == srv->cap_methods) {
    size_t cap = srv->cap_methods ? 2 * srv->cap_methods : 8;
    struct method *m = realloc(srv->methods, cap * sizeof *m);
    if (m == NULL)
      return TEEX_ENOMEM;
    srv->methods = m;
    srv->cap_methods = cap;
  }
  char *name = strdup(method);
  if (name == NULL)
    return TEEX_ENOMEM;
  srv->methods[srv->n_methods++] = (struct method){name, handler, arg};
  return 0;
}

static void server_timer_closed(uv_handle_t *h) {
  struct teex_rpc_server *srv = h->data;
  srv->timer_closed = 1;
  server_maybe_free(srv);
}

static void server_prep_closed(uv_handle_t *h) {
  struct teex_rpc_server *srv = h->data;
  srv->prep_closed = 1;
  server_maybe_free(srv);
}

void teex_rpc_server_close(struct teex_rpc_server *srv) {
  if (srv == NULL || srv->closing)
    return;
  srv->closing = 1;
  teex_tls_listener_close(srv->listener);
  srv->listener = NULL;
  for (struct srv_conn *sc = srv->conns; sc; sc = sc->next) {
    if (sc->dirty)
      conn_flush_now(sc); /* answers already given go out first */
    teex_tls_close(sc->tls);
  }
  uv_close((uv_handle_t *)&srv->timer, server_timer_closed);
  uv_close((uv_handle_t *)&srv->prep, server_prep_closed);
}

void teex_rpc_call_respond(struct teex_rpc_call *call, int code,
                           const char *msg, const uint8_t *payload,
                           size_t len) {
  struct srv_conn *sc = call->conn;
  if (sc != NULL) {
    teex_rpc_session_respond(&sc->sess, call->id, code, msg, payload, len);
    call_unlink(sc, call);
    conn_flush(sc);
    server_arm_timer(sc->srv);
  }
  free(call);
}

int teex_rpc_call_stream(struct teex_rpc_call *call, const uint8_t *data,
                         size_t len, int last) {
  struct srv_conn *sc = call->conn;
  if (sc == NULL) {
    free(call);
    return TEEX_ECLOSED;
  }
  int r =
      teex_rpc_session_stream(&sc->sess, call->id, data, len, last, 0, NULL);
  conn_flush(sc);
  if (r != 0 || last) {
    call_unlink(sc, call);
    free(call);
    server_arm_timer(sc->srv);
  }
  return r;
}

const char *teex_rpc_call_method(const struct teex_rpc_call *call) {
  return call->method;
}

struct teex_tls_conn *teex_rpc_call_conn(const struct teex_rpc_call *call) {
  return call->conn ? call->conn->tls : NULL;
}

uint64_t teex_rpc_call_deadline_ms(const struct teex_rpc_call *call) {
  return call->deadline;
}

/* ---- client ---- */

struct teex_rpc_client {
  uv_loop_t *loop;
  struct teex_tls_conn *tls;
  struct teex_rpc_session sess;
  uv_timer_t timer;
  uv_prepare_t prep; /* writes the calls made in this iteration */
  int prep_active;
  int handles; /* timer and prep not yet closed */
  teex_rpc_client_state_fn state;
  void *arg;
  int ready;
  int in_feed;
};

static void client_flush_now(struct teex_rpc_client *c) {
  if (c->sess.out.len == 0 || c->tls == NULL || !c->ready)
    return;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_tls_write(c->tls, c->sess.out.data, c->sess.out.len, &err) != 0)
    teex_tls_close_error(c->tls, err.code, teex_err_msg(&err));
  teex_buf_reset(&c->sess.out);
}

static void client_on_prep(uv_prepare_t *h) {
  struct teex_rpc_client *c = h->data;
  uv_prepare_stop(&c->prep);
  c->prep_active = 0;
  client_flush_now(c);
}

/* Leaves the output to the prepare handle (see the top). */
static void client_flush(struct teex_rpc_client *c) {
  if (c->in_feed || c->sess.out.len == 0 || c->tls == NULL || !c->ready)
    return;
  if (!c->prep_active) {
    uv_prepare_start(&c->prep, client_on_prep);
    c->prep_active = 1;
  }
}

static void client_arm_timer(struct teex_rpc_client *c);

static void client_on_timer(uv_timer_t *t) {
  struct teex_rpc_client *c = t->data;
  c->in_feed = 1;
  teex_rpc_session_tick(&c->sess, uv_now(c->loop));
  c->in_feed = 0;
  client_flush(c);
  client_arm_timer(c);
}

static void client_arm_timer(struct teex_rpc_client *c) {
  if (c->tls == NULL)
    return;
  uint64_t d = teex_rpc_session_next_deadline(&c->sess);
  if (d == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = uv_now(c->loop);
  uv_timer_start(&c->timer, client_on_timer, d > now ? d - now : 0, 0);
}

static void client_on_ready(struct teex_tls_conn *tc, void *arg) {
  struct teex_rpc_client *c = arg;
  (void)tc;
  c->ready = 1;
  if (c->state)
    c->state(c, 0, "ready", c->arg);
  client_flush(c);
}

static void client_on_data(struct teex_tls_conn *tc, const uint8_t *p, size_t n,
                           void *arg) {
  struct teex_rpc_client *c = arg;
  struct teex_err err;
  teex_err_clear(&err);
  c->in_feed = 1;
  int r = teex_rpc_session_feed(&c->sess, p, n, uv_now(c->loop), &err);
  c->in_feed = 0;
  client_flush(c);
  if (r != 0) {
    char why[TEEX_ERRMSG_SIZE];
    snprintf(why, sizeof why, "rpc: %s", teex_err_msg(&err));
    teex_tls_close_error(tc, r, why);
  }
  client_arm_timer(c);
}

static void client_handle_closed(uv_handle_t *h) {
  struct teex_rpc_client *c = h->data;
  if (--c->handles == 0)
    free(c);
}

static void client_on_close(struct teex_tls_conn *tc, int code,
                            const char *reason, void *arg) {
  struct teex_rpc_client *c = arg;
  (void)tc;
  c->tls = NULL;
  c->ready = 0;
  teex_rpc_session_close(&c->sess, reason);
  if (c->state)
    c->state(c, code ? code : TEEX_ECLOSED, reason, c->arg);
  uv_close((uv_handle_t *)&c->timer, client_handle_closed);
  uv_close((uv_handle_t *)&c->prep, client_handle_closed);
}

int teex_rpc_client_connect(uv_loop_t *loop, struct teex_tls_ctx *ctx,
                            const char *addr, const struct teex_rpc_limits *lim,
                            teex_rpc_client_state_fn state, void *arg,
                            struct teex_rpc_client **out,
                            struct teex_err *err) {
  *out = NULL;
  struct teex_rpc_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "rpc client: out of memory");
  c->loop = loop;
  c->state = state;
  c->arg = arg;
  teex_rpc_session_init(&c->sess, TEEX_RPC_CLIENT, lim, NULL, NULL);
  static const struct teex_tls_conn_cbs cbs = {client_on_ready, client_on_data,
                                               client_on_close};
  int r = teex_tls_connect(loop, ctx, addr, &cbs, c, &c->tls, err);
  if (r != 0) {
    teex_rpc_session_close(&c->sess, NULL);
    free(c);
    return teex_err_wrap(err, 0, "rpc client");
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  uv_prepare_init(loop, &c->prep);
  c->prep.data = c;
  c->handles = 2;
  *out = c;
  return 0;
}

int teex_rpc_client_call(struct teex_rpc_client *c, const char *method,
                         const uint8_t *payload, size_t len,
                         uint32_t timeout_ms, teex_rpc_done_fn done,
                         teex_rpc_chunk_fn on_chunk, void *arg,
                         struct teex_err *err) {
  if (!c->ready)
    return teex_err_set(err, TEEX_ESTATE, "call %s: not connected", method);
  int r =
      teex_rpc_session_call(&c->sess, method, payload, len, timeout_ms,
                            uv_now(c->loop), done, on_chunk, arg, NULL, err);
  if (r != 0)
    return r;
  client_flush(c);
  client_arm_timer(c);
  return 0;
}

struct teex_tls_conn *teex_rpc_client_conn(const struct teex_rpc_client *c) {
  return c->tls;
}

void teex_rpc_client_close(struct teex_rpc_client *c) {
  if (c && c->tls) {
    client_flush_now(c); /* calls already made go out first */
    teex_tls_close(c->tls);
  }
}
