/* TLS 1.3 channel tests: handshake and echo, the exporter, mutual mode,
 * refusal during the handshake (no application data either way), garbage
 * during the handshake, handshake timeout. */
#include "testutil.h"

#include "nettest.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- an echo server and a client that records what it gets ---- */

struct srv {
  struct teex_tls_ctx *ctx;
  struct teex_tls_listener *l;
  struct nt_pin pin;
  int accepted, ready, closed, data_bytes;
  int last_code;
  char last_reason[512];
  uint8_t exporter[32];
};

static void srv_ready(struct teex_tls_conn *c, void *arg) {
  struct srv *s = arg;
  struct teex_err err;
  s->ready++;
  assert_int_equal(
      teex_tls_export(c, "EXPORTER-teex-test", NULL, 0, s->exporter, 32, &err),
      0);
}

static void srv_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                     void *arg) {
  struct srv *s = arg;
  struct teex_err err;
  s->data_bytes += (int)n;
  assert_int_equal(teex_tls_write(c, p, n, &err), 0);
}

static void srv_close(struct teex_tls_conn *c, int code, const char *reason,
                      void *arg) {
  struct srv *s = arg;
  (void)c;
  s->closed++;
  s->last_code = code;
  snprintf(s->last_reason, sizeof s->last_reason, "%s", reason);
}

static void srv_accept(struct teex_tls_listener *l, struct teex_tls_conn *c,
                       void *arg) {
  struct srv *s = arg;
  (void)l;
  static const struct teex_tls_conn_cbs cbs = {srv_ready, srv_data, srv_close};
  s->accepted++;
  teex_tls_set_cbs(c, &cbs, s);
}

static void srv_start(uv_loop_t *loop, struct srv *s, struct nt_identity *id,
                      int mutual, const uint8_t *client_fp,
                      uint32_t hs_timeout) {
  struct teex_err err;
  memset(s, 0, sizeof *s);
  s->pin.fp = client_fp;
  struct teex_tls_config cfg = {
      .cert = id->cert,
      .key = id->key,
      .mutual = mutual,
      .verify_peer = mutual ? nt_pin_verify : NULL,
      .verify_arg = &s->pin,
      .handshake_timeout_ms = hs_timeout,
  };
  assert_int_equal(teex_tls_ctx_new(&s->ctx, &cfg, 1, &err), 0);
  assert_int_equal(
      teex_tls_listen(loop, s->ctx, "127.0.0.1:0", srv_accept, s, &s->l, &err),
      0);
  assert_true(teex_tls_listener_port(s->l) > 0);
}

struct cli {
  struct teex_tls_ctx *ctx;
  struct teex_tls_conn *conn;
  struct nt_pin pin;
  const char *send;
  int ready, closed, got_len, send_on_ready;
  int last_code;
  char got[256];
  char last_reason[512];
  uint8_t exporter[32];
  int tls13;
};

static void cli_ready(struct teex_tls_conn *c, void *arg) {
  struct cli *k = arg;
  struct teex_err err;
  k->ready++;
  assert_non_null(teex_tls_peer_cert(c));
  assert_int_equal(
      teex_tls_export(c, "EXPORTER-teex-test", NULL, 0, k->exporter, 32, &err),
      0);
  if (k->send_on_ready)
    assert_int_equal(teex_tls_write(c, k->send, strlen(k->send), &err), 0);
}

static void cli_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                     void *arg) {
  struct cli *k = arg;
  assert_true(k->got_len + n < sizeof k->got);
  memcpy(k->got + k->got_len, p, n);
  k->got_len += (int)n;
  if (k->send && k->got_len == (int)strlen(k->send))
    teex_tls_close(c);
}

static void cli_close(struct teex_tls_conn *c, int code, const char *reason,
                      void *arg) {
  struct cli *k = arg;
  (void)c;
  k->closed++;
  k->last_code = code;
  snprintf(k->last_reason, sizeof k->last_reason, "%s", reason);
}

static void cli_start(uv_loop_t *loop, struct cli *k, const char *addr,
                      const uint8_t *server_fp, struct nt_identity *own) {
  struct teex_err err;
  memset(k, 0, sizeof *k);
  k->pin.fp = server_fp;
  struct teex_tls_config cfg = {
      .cert = own ? own->cert : NULL,
      .key = own ? own->key : NULL,
      .mutual = own != NULL,
      .verify_peer = nt_pin_verify,
      .verify_arg = &k->pin,
  };
  assert_int_equal(teex_tls_ctx_new(&k->ctx, &cfg, 0, &err), 0);
  static const struct teex_tls_conn_cbs cbs = {cli_ready, cli_data, cli_close};
  assert_int_equal(
      teex_tls_connect(loop, k->ctx, addr, &cbs, k, &k->conn, &err), 0);
}

static char *addr_of(struct srv *s) {
  static char a[64];
  snprintf(a, sizeof a, "127.0.0.1:%d", teex_tls_listener_port(s->l));
  return a;
}

static void finish(uv_loop_t *loop, struct srv *s, struct cli *k) {
  teex_tls_listener_close(s->l);
  nt_drain(loop);
  teex_tls_ctx_free(s->ctx);
  if (k)
    teex_tls_ctx_free(k->ctx);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void test_handshake_echo(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct nt_identity sid;
  nt_identity_new(&sid, "server");
  struct srv s;
  struct cli k;
  srv_start(&loop, &s, &sid, 0, NULL, 0);
  cli_start(&loop, &k, addr_of(&s), sid.fp, NULL);
  k.send = "hello over tls 1.3";
  k.send_on_ready = 1;
  nt_run_until(&loop, &k.closed, 5000);
  assert_int_equal(k.ready, 1);
  assert_int_equal(k.got_len, (int)strlen(k.send));
  assert_memory_equal(k.got, k.send, strlen(k.send));
  assert_int_equal(k.last_code, 0);
  assert_int_equal(k.pin.calls, 1);
  /* Both ends derive the same exporter value: it binds the session. */
  assert_memory_equal(k.exporter, s.exporter, 32);
  nt_run_until(&loop, &s.closed, 5000);
  assert_int_equal(s.closed, 1);
  assert_int_equal(s.last_code, 0);
  finish(&loop, &s, &k);
  nt_identity_free(&sid);
}

static void test_client_refuses_server(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct nt_identity sid, other;
  nt_identity_new(&sid, "server");
  nt_identity_new(&other, "someone else");
  struct srv s;
  struct cli k;
  srv_start(&loop, &s, &sid, 0, NULL, 0);
  cli_start(&loop, &k, addr_of(&s), other.fp, NULL); /* pins the wrong key */
  k.send = "secret request";
  k.send_on_ready = 1;
  nt_run_until(&loop, &k.closed, 5000);
  assert_int_equal(k.closed, 1);
  assert_int_equal(k.ready, 0); /* never ready, so never wrote */
  assert_int_equal(k.got_len, 0);
  assert_int_equal(k.last_code, TEEX_EPOLICY);
  assert_non_null(strstr(k.last_reason, "certificate not pinned"));
  nt_run_until(&loop, &s.closed, 5000);
  assert_int_equal(s.ready, 0);
  assert_int_equal(s.data_bytes, 0);
  finish(&loop, &s, &k);
  nt_identity_free(&sid);
  nt_identity_free(&other);
}

static void test_mutual(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct nt_identity sid, cid, rogue;
  nt_identity_new(&sid, "server");
  nt_identity_new(&cid, "client enclave");
  nt_identity_new(&rogue, "rogue");
  struct srv s;
  struct cli k;

  /* Accepted client certificate: echo works, the server verified once. */
  srv_start(&loop, &s, &sid, 1, cid.fp, 0);
  cli_start(&loop, &k, addr_of(&s), sid.fp, &cid);
  k.send = "mutual";
  k.send_on_ready = 1;
  nt_run_until(&loop, &k.closed, 5000);
  assert_int_equal(k.got_len, 6);
  assert_int_equal(s.pin.calls, 1);
  nt_run_until(&loop, &s.closed, 5000);
  teex_tls_ctx_free(k.ctx);

  /* A client with the wrong certificate: the server refuses it in the
   * handshake. The client (TLS 1.3) believes itself ready and writes at
   * once, but the server never delivers a byte of it. */
  struct cli r;
  s.closed = 0;
  cli_start(&loop, &r, addr_of(&s), sid.fp, &rogue);
  r.send = "should never arrive";
  r.send_on_ready = 1;
  nt_run_until(&loop, &s.closed, 5000);
  nt_run_until(&loop, &r.closed, 5000);
  assert_int_equal(s.closed, 1);
  assert_int_equal(s.ready, 1); /* only the first client */
  assert_int_equal(s.data_bytes, 6);
  assert_int_equal(s.last_code, TEEX_EPOLICY);
  assert_non_null(strstr(s.last_reason, "peer verification failed"));
  assert_int_equal(r.got_len, 0);
  assert_int_not_equal(r.last_code, 0);
  teex_tls_ctx_free(r.ctx);

  /* A client without any certificate is refused as well. */
  struct cli n;
  s.closed = 0;
  cli_start(&loop, &n, addr_of(&s), sid.fp, NULL);
  n.send = "anonymous";
  n.send_on_ready = 1;
  nt_run_until(&loop, &s.closed, 5000);
  nt_run_until(&loop, &n.closed, 5000);
  assert_int_equal(s.data_bytes, 6);
  assert_int_not_equal(s.last_code, 0);
  assert_int_equal(n.got_len, 0);
  finish(&loop, &s, &n);
  nt_identity_free(&sid);
  nt_identity_free(&cid);
  nt_identity_free(&rogue);
}

/* ---- a raw TCP peer that sends garbage or nothing ---- */

struct raw {
  uv_tcp_t tcp;
  uv_connect_t req;
  uv_write_t wreq;
  const char *bytes;
  int connected, eof;
};

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  static char buf[4096];
  (void)n;
  *b = uv_buf_init(buf, sizeof buf);
}

static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  struct raw *r = st->data;
  (void)b;
  if (n < 0)
    r->eof = 1;
}

static void raw_written(uv_write_t *w, int status) {
  (void)w;
  (void)status;
}

static void raw_connected(uv_connect_t *req, int status) {
  struct raw *r = req->data;
  assert_int_equal(status, 0);
  r->connected = 1;
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
  if (r->bytes) {
    uv_buf_t b = uv_buf_init((char *)r->bytes, (unsigned)strlen(r->bytes));
    uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
  }
}

static void raw_connect(uv_loop_t *loop, struct raw *r, int port,
                        const char *bytes) {
  struct sockaddr_in a;
  memset(r, 0, sizeof *r);
  r->bytes = bytes;
  uv_tcp_init(loop, &r->tcp);
  r->tcp.data = r;
  r->req.data = r;
  uv_ip4_addr("127.0.0.1", port, &a);
  assert_int_equal(
      uv_tcp_connect(&r->req, &r->tcp, (struct sockaddr *)&a, raw_connected),
      0);
}

static void test_garbage_then_good_client(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct nt_identity sid;
  nt_identity_new(&sid, "server");
  struct srv s;
  srv_start(&loop, &s, &sid, 0, NULL, 0);
  struct raw g;
  raw_connect(&loop, &g, teex_tls_listener_port(s.l),
              "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  nt_run_until(&loop, &s.closed, 5000);
  assert_int_equal(s.closed, 1);
  assert_int_equal(s.last_code, TEEX_EAUTH);
  assert_non_null(strstr(s.last_reason, "TLS handshake failed"));
  nt_run_until(&loop, &g.eof, 5000);
  assert_int_equal(g.eof, 1);
  uv_close((uv_handle_t *)&g.tcp, NULL);

  /* The server keeps serving. */
  struct cli k;
  cli_start(&loop, &k, addr_of(&s), sid.fp, NULL);
  k.send = "still here";
  k.send_on_ready = 1;
  nt_run_until(&loop, &k.closed, 5000);
  assert_int_equal(k.got_len, 10);
  finish(&loop, &s, &k);
  nt_identity_free(&sid);
}

static void test_handshake_timeout(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct nt_identity sid;
  nt_identity_new(&sid, "server");
  struct srv s;
  srv_start(&loop, &s, &sid, 0, NULL, 150);
  struct raw g;
  raw_connect(&loop, &g, teex_tls_listener_port(s.l), NULL); /* silent */
  nt_run_until(&loop, &s.closed, 5000);
  assert_int_equal(s.closed, 1);
  assert_int_equal(s.last_code, TEEX_ETIMEDOUT);
  assert_non_null(strstr(s.last_reason, "timed out"));
  nt_run_until(&loop, &g.eof, 5000);
  uv_close((uv_handle_t *)&g.tcp, NULL);
  finish(&loop, &s, NULL);
  nt_identity_free(&sid);
}

static void test_config_errors(void **state) {
  (void)state;
  struct teex_tls_ctx *ctx;
  struct teex_err err;
  struct teex_tls_config none = {0};
  /* A client must verify its peer; a server needs a certificate. */
  assert_int_equal(teex_tls_ctx_new(&ctx, &none, 0, &err), TEEX_EINVAL);
  assert_int_equal(teex_tls_ctx_new(&ctx, &none, 1, &err), TEEX_EINVAL);
  struct sockaddr_storage ss;
  assert_int_equal(teex_net_parse_addr("127.0.0.1:80", &ss, &err), 0);
  assert_int_equal(teex_net_parse_addr("[::1]:80", &ss, &err), 0);
  assert_int_equal(teex_net_parse_addr("localhost:1", &ss, &err), 0);
  assert_int_equal(teex_net_parse_addr("127.0.0.1", &ss, &err), TEEX_EINVAL);
  assert_int_equal(teex_net_parse_addr("1.2.3.4:99999", &ss, &err),
                   TEEX_EINVAL);
  assert_int_equal(teex_net_parse_addr("example.com:80", &ss, &err),
                   TEEX_EINVAL);
  /* A synchronous failure fires no callback. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct nt_identity sid;
  nt_identity_new(&sid, "x");
  struct nt_pin pin = {sid.fp, 0};
  struct teex_tls_config cfg = {.verify_peer = nt_pin_verify,
                                .verify_arg = &pin};
  assert_int_equal(teex_tls_ctx_new(&ctx, &cfg, 0, &err), 0);
  struct cli k;
  memset(&k, 0, sizeof k);
  static const struct teex_tls_conn_cbs cbs = {cli_ready, cli_data, cli_close};
  struct teex_tls_conn *c;
  assert_int_not_equal(teex_tls_connect(&loop, ctx, "nope", &cbs, &k, &c, &err),
                       0);
  nt_drain(&loop);
  assert_int_equal(k.closed, 0);
  teex_tls_ctx_free(ctx);
  assert_int_equal(uv_loop_close(&loop), 0);
  nt_identity_free(&sid);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handshake_echo),
      cmocka_unit_test(test_client_refuses_server),
      cmocka_unit_test(test_mutual),
      cmocka_unit_test(test_garbage_then_good_client),
      cmocka_unit_test(test_handshake_timeout),
      cmocka_unit_test(test_config_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
