/* Blocking RPC client on a private loop (see include/teex/rpc_sync.h). */
#include "teex/rpc_sync.h"

#include "teex/rpc.h"

#include <stdlib.h>
#include <string.h>

struct teex_rpc_sync {
  uv_loop_t loop;
  struct teex_rpc_client *client;
  volatile int ready; /* 1 ready, -1 failed or closed */
  int code;           /* failure code */
  char reason[TEEX_ERRMSG_SIZE];
};

struct call_state {
  int done;
  int code;
  char msg[TEEX_ERRMSG_SIZE];
  struct teex_buf *resp;
  int resp_rc;
};

static void on_state(struct teex_rpc_client *cl, int code, const char *reason,
                     void *arg) {
  struct teex_rpc_sync *c = arg;
  (void)cl;
  if (code == 0 && c->ready == 0) {
    c->ready = 1;
    return;
  }
  c->ready = -1;
  c->client = NULL; /* freed by the RPC layer after this callback */
  c->code = code ? code : TEEX_ECLOSED;
  snprintf(c->reason, sizeof c->reason, "%s",
           reason && reason[0] ? reason : teex_strerror(c->code));
}

static void guard_fired(uv_timer_t *t) {
  *(int *)t->data = 1;
}

/* Runs the loop until *flag is set, the connection fails, or ms pass. */
static int run_until(struct teex_rpc_sync *c, volatile int *flag, uint32_t ms) {
  int fired = 0;
  uv_timer_t t;
  uv_timer_init(&c->loop, &t);
  t.data = &fired;
  uv_timer_start(&t, guard_fired, ms, 0);
  while (!*flag && !fired && c->ready >= 0)
    uv_run(&c->loop, UV_RUN_ONCE);
  uv_timer_stop(&t);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&c->loop, UV_RUN_NOWAIT);
  return fired && !*flag;
}

int teex_rpc_sync_connect(const char *addr, struct teex_tls_ctx *ctx,
                          uint32_t timeout_ms, struct teex_rpc_sync **out,
                          struct teex_err *err) {
  struct teex_rpc_sync *c = calloc(1, sizeof *c);
  if (c == NULL)
    return teex_err_set(err, TEEX_ENOMEM, NULL);
  if (uv_loop_init(&c->loop) != 0) {
    free(c);
    return teex_err_set(err, TEEX_EIO, "event loop");
  }
  int rc = teex_rpc_client_connect(&c->loop, ctx, addr, NULL, on_state, c,
                                   &c->client, err);
  if (rc != 0) {
    uv_loop_close(&c->loop);
    free(c);
    return rc;
  }
  /* ready becomes 1 (handshake done, peer verified) or -1 (failed). */
  if (run_until(c, &c->ready, timeout_ms ? timeout_ms : 10000)) {
    teex_rpc_sync_close(c);
    return teex_err_set(err, TEEX_ETIMEDOUT, "connect %s: timed out", addr);
  }
  if (c->ready < 0) {
    rc = teex_err_set(err, c->code, "connect %s: %s", addr, c->reason);
    teex_rpc_sync_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

static void on_done(void *arg, int code, const char *msg,
                    const uint8_t *payload, size_t len) {
  struct call_state *st = arg;
  st->code = code;
  if (code != 0) {
    snprintf(st->msg, sizeof st->msg, "%s",
             msg && msg[0] ? msg : teex_strerror(code));
  } else {
    teex_buf_reset(st->resp);
    st->resp_rc = len ? teex_buf_append(st->resp, payload, len) : 0;
  }
  st->done = 1;
}

int teex_rpc_sync_call(struct teex_rpc_sync *c, const char *method,
                       const uint8_t *payload, size_t len, uint32_t timeout_ms,
                       struct teex_buf *resp, struct teex_err *err) {
  if (c->ready != 1 || c->client == NULL)
    return teex_err_set(err, TEEX_ECLOSED, "%s: connection closed: %s", method,
                        c->reason[0] ? c->reason : "closed");
  struct call_state st;
  memset(&st, 0, sizeof st);
  st.resp = resp;
  int rc = teex_rpc_client_call(c->client, method, payload, len, timeout_ms,
                                on_done, NULL, &st, err);
  if (rc != 0)
    return rc;
  /* The RPC layer enforces the deadline; the guard only bounds a stuck
   * loop. */
  uint32_t guard = (timeout_ms ? timeout_ms : 30000) + 5000;
  if (run_until(c, &st.done, guard) || !st.done)
    return teex_err_set(err, c->ready < 0 ? c->code : TEEX_ETIMEDOUT, "%s: %s",
                        method, c->ready < 0 ? c->reason : "no answer");
  if (st.code != 0)
    return teex_err_set(err, st.code, "%s", st.msg);
  if (st.resp_rc != 0)
    return teex_err_set(err, st.resp_rc, "%s: response too large", method);
  return 0;
}

struct teex_tls_conn *teex_rpc_sync_conn(struct teex_rpc_sync *c) {
  return c->client ? teex_rpc_client_conn(c->client) : NULL;
}

void teex_rpc_sync_close(struct teex_rpc_sync *c) {
  if (c == NULL)
    return;
  if (c->client != NULL && c->ready >= 0) {
    teex_rpc_client_close(c->client);
    int closed = 0;
    for (int i = 0; i < 1000 && c->ready >= 0; i++)
      if (run_until(c, &closed, 100))
        break;
  }
  /* Let every handle finish closing before the loop goes. */
  for (int i = 0; i < 1000 && uv_run(&c->loop, UV_RUN_NOWAIT) != 0; i++)
    ;
  uv_loop_close(&c->loop);
  free(c);
}
