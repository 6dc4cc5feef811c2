/* libFuzzer harness for RPC message decoding and the session state machine
 * (include/teex/rpc.h): the input is fed to a server session (which answers
 * requests by echo, streaming, error or not at all) and to a client session
 * with calls open, with the clock moving, so every decoding path, chunk
 * reassembly, deadline and limit runs on hostile bytes. */
#include "teex/rpc.h"

#include <stdint.h>
#include <string.h>

static struct teex_rpc_session *g_srv;
static unsigned g_mode;

static void on_request(void *arg, uint64_t id, const char *method,
                       const uint8_t *p, size_t n, uint64_t deadline) {
  (void)arg;
  (void)deadline;
  switch ((g_mode + strlen(method)) % 4) {
  case 0:
    teex_rpc_session_respond(g_srv, id, 0, NULL, p, n);
    break;
  case 1:
    teex_rpc_session_stream(g_srv, id, p, n, 0, 0, NULL);
    teex_rpc_session_stream(g_srv, id, p, n / 2, 1, 0, NULL);
    break;
  case 2:
    teex_rpc_session_respond(g_srv, id, TEEX_EPERM, method, NULL, 0);
    break;
  default:
    break; /* left open: deadlines and close must clean it up */
  }
}

static void on_gone(void *arg, uint64_t id, int why) {
  (void)arg;
  (void)id;
  (void)why;
}

static void on_done(void *arg, int code, const char *msg, const uint8_t *p,
                    size_t n) {
  (void)arg;
  (void)code;
  (void)msg;
  if (p && n)
    (void)p[n - 1];
}

static void on_chunk(void *arg, const uint8_t *p, size_t n) {
  (void)arg;
  if (n)
    (void)p[n - 1];
}

static void feed_all(struct teex_rpc_session *s, const uint8_t *data,
                     size_t size, size_t piece) {
  struct teex_err err;
  uint64_t now = 0;
  for (size_t off = 0; off < size; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    if (teex_rpc_session_feed(s, data + off, n, now, &err) != 0)
      break;
    now += 7;
    teex_rpc_session_tick(s, now);
    teex_buf_reset(&s->out);
  }
  teex_rpc_session_tick(s, UINT64_MAX - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t piece = (size_t)(data[0] & 0x3f) * 16 + 1;
  g_mode = data[0] >> 6;
  data++;
  size--;
  struct teex_rpc_limits lim = {
      .max_message = 4096, .max_inflight = 8, .default_timeout_ms = 50};

  static const struct teex_rpc_session_cbs cbs = {on_request, on_gone};
  struct teex_rpc_session srv;
  teex_rpc_session_init(&srv, TEEX_RPC_SERVER, &lim, &cbs, NULL);
  g_srv = &srv;
  feed_all(&srv, data, size, piece);
  teex_rpc_session_close(&srv, "done");

  struct teex_rpc_session cli;
  struct teex_err err;
  teex_rpc_session_init(&cli, TEEX_RPC_CLIENT, &lim, NULL, NULL);
  for (int i = 0; i < 4; i++)
    teex_rpc_session_call(&cli, "m", (const uint8_t *)"x", 1, 100 + i * 10, 0,
                          on_done, i % 2 ? on_chunk : NULL, NULL, NULL, &err);
  teex_buf_reset(&cli.out);
  feed_all(&cli, data, size, piece);
  teex_rpc_session_close(&cli, "done");
  return 0;
}
