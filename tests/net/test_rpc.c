/* RPC tests. First the I/O-free session state machine, wired client to
 * server in memory: framing (truncated, oversized, bad header, garbage),
 * correlation of 64 concurrent calls, deadlines on both sides, streaming of
 * multi-MiB payloads, per-call limits. Then the same over real TLS
 * connections on a libuv loop: echo, 64 concurrent calls on one connection,
 * an expired deadline, a multi-MiB stream, unknown methods, and a peer that
 * vanishes mid-frame or sends an oversized frame while the server keeps
 * serving another connection. */
#include "testutil.h"

#include "nettest.h"
#include "teex/frame.h"
#include "teex/log.h"
#include "teex/proto/rpc.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- in-memory session pair ---- */

struct held {
  uint64_t id;
  int gone;
};

struct pair {
  struct teex_rpc_session cli, srv;
  int requests;
  int hold; /* do not answer: remember the ids */
  struct held held[1024];
  int n_held;
  int gone, gone_why;
};

static void pair_on_request(void *arg, uint64_t id, const char *method,
                            const uint8_t *p, size_t n, uint64_t deadline) {
  struct pair *pr = arg;
  (void)deadline;
  pr->requests++;
  if (pr->hold) {
    pr->held[pr->n_held++].id = id;
    return;
  }
  if (strcmp(method, "echo") == 0)
    assert_int_equal(teex_rpc_session_respond(&pr->srv, id, 0, NULL, p, n), 0);
  else
    teex_rpc_session_respond(&pr->srv, id, TEEX_ENOTFOUND, "no such method",
                             NULL, 0);
}

static void pair_on_gone(void *arg, uint64_t id, int why) {
  struct pair *pr = arg;
  (void)id;
  pr->gone++;
  pr->gone_why = why;
}

static void pair_init(struct pair *pr, const struct teex_rpc_limits *srv_lim) {
  memset(pr, 0, sizeof *pr);
  static const struct teex_rpc_session_cbs cbs = {pair_on_request,
                                                  pair_on_gone};
  teex_rpc_session_init(&pr->cli, TEEX_RPC_CLIENT, NULL, NULL, NULL);
  teex_rpc_session_init(&pr->srv, TEEX_RPC_SERVER, srv_lim, &cbs, pr);
}

static void pair_free(struct pair *pr) {
  teex_rpc_session_close(&pr->cli, "test over");
  teex_rpc_session_close(&pr->srv, "test over");
}

/* Moves bytes both ways until quiet. */
static void pump(struct pair *pr, uint64_t now) {
  struct teex_err err;
  for (int i = 0; i < 100; i++) {
    int moved = 0;
    if (pr->cli.out.len) {
      struct teex_buf b = pr->cli.out;
      teex_buf_init(&pr->cli.out, b.max, 0);
      assert_int_equal(
          teex_rpc_session_feed(&pr->srv, b.data, b.len, now, &err), 0);
      teex_buf_free(&b);
      moved = 1;
    }
    if (pr->srv.out.len) {
      struct teex_buf b = pr->srv.out;
      teex_buf_init(&pr->srv.out, b.max, 0);
      assert_int_equal(
          teex_rpc_session_feed(&pr->cli, b.data, b.len, now, &err), 0);
      teex_buf_free(&b);
      moved = 1;
    }
    if (!moved)
      return;
  }
  fail_msg("sessions never went quiet");
}

struct result {
  int done;
  int code;
  char msg[256];
  uint8_t *data;
  size_t len;
  int chunks;
};

static void on_done(void *arg, int code, const char *msg, const uint8_t *p,
                    size_t n) {
  struct result *r = arg;
  r->done++;
  r->code = code;
  snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
  if (p && n) {
    r->data = realloc(r->data, r->len + n);
    memcpy(r->data + r->len, p, n);
    r->len += n;
  }
}

static void on_chunk(void *arg, const uint8_t *p, size_t n) {
  struct result *r = arg;
  r->chunks++;
  r->data = realloc(r->data, r->len + n);
  memcpy(r->data + r->len, p, n);
  r->len += n;
}

static void test_session_concurrent_calls(void **state) {
  (void)state;
  struct pair pr;
  struct teex_err err;
  pair_init(&pr, NULL);
  struct result res[64];
  char payloads[64][32];
  memset(res, 0, sizeof res);
  for (int i = 0; i < 64; i++) {
    snprintf(payloads[i], sizeof payloads[i], "request number %d", i);
    assert_int_equal(teex_rpc_session_call(&pr.cli, "echo",
                                           (const uint8_t *)payloads[i],
                                           strlen(payloads[i]), 1000, 0,
                                           on_done, NULL, &res[i], NULL, &err),
                     0);
  }
  pump(&pr, 1);
  assert_int_equal(pr.requests, 64);
  for (int i = 0; i < 64; i++) {
    /* Each answer reached the call that asked it. */
    assert_int_equal(res[i].done, 1);
    assert_int_equal(res[i].code, 0);
    assert_int_equal(res[i].len, strlen(payloads[i]));
    assert_memory_equal(res[i].data, payloads[i], res[i].len);
    free(res[i].data);
  }
  assert_int_equal(pr.cli.n_entries, 0);
  assert_int_equal(pr.srv.n_entries, 0);

  struct result bad = {0};
  teex_rpc_session_call(&pr.cli, "nope", NULL, 0, 1000, 0, on_done, NULL, &bad,
                        NULL, &err);
  pump(&pr, 1);
  assert_int_equal(bad.code, TEEX_ENOTFOUND);
  assert_string_equal(bad.msg, "no such method");
  pair_free(&pr);
}

/* 1000 calls in flight on one session, answered in a scrambled order:
 * each answer reaches its own call (calls are found by id in a hash table
 * that grows as they come), and the next deadline the session reports is
 * never later than the earliest open call's, and exact after a tick. */
static void test_session_many_calls_out_of_order(void **state) {
  (void)state;
  enum { N = 1000 };
  static struct pair pr;
  static struct result res[N];
  static uint64_t ids[N];
  struct teex_err err;
  pair_init(&pr, NULL);
  pr.hold = 1;
  memset(res, 0, sizeof res);
  for (int i = 0; i < N; i++)
    assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", NULL, 0,
                                           10000 + (uint32_t)i, 0, on_done,
                                           NULL, &res[i], &ids[i], &err),
                     0);
  pump(&pr, 0);
  assert_int_equal(pr.n_held, N);
  assert_int_equal(teex_rpc_session_next_deadline(&pr.cli), 10000);
  assert_int_equal(teex_rpc_session_next_deadline(&pr.srv), 10000);
  /* the server's ids are the client's, in the order sent */
  for (int i = 0; i < N; i++)
    assert_int_equal(pr.held[i].id, ids[i]);
  /* answer half, scrambled (7919 is prime to N): each carries its id */
  int answered[N] = {0};
  for (int k = 0; k < N / 2; k++) {
    int i = (int)(((unsigned)k * 7919u) % N);
    uint8_t body[8];
    memcpy(body, &ids[i], 8);
    assert_int_equal(
        teex_rpc_session_respond(&pr.srv, ids[i], 0, NULL, body, sizeof body),
        0);
    answered[i] = 1;
  }
  pump(&pr, 0);
  uint64_t min_open = UINT64_MAX;
  for (int i = 0; i < N; i++) {
    assert_int_equal(res[i].done, answered[i]);
    if (answered[i]) {
      assert_int_equal(res[i].len, 8);
      assert_memory_equal(res[i].data, &ids[i], 8);
    } else if (10000u + (uint64_t)i < min_open) {
      min_open = 10000u + (uint64_t)i;
    }
  }
  assert_true(teex_rpc_session_next_deadline(&pr.cli) <= min_open);
  teex_rpc_session_tick(&pr.cli, min_open - 1); /* nothing is due */
  assert_int_equal(teex_rpc_session_next_deadline(&pr.cli), min_open);
  for (int i = 0; i < N; i++)
    if (!answered[i]) {
      assert_int_equal(res[i].done, 0);
      uint8_t body[8];
      memcpy(body, &ids[i], 8);
      assert_int_equal(
          teex_rpc_session_respond(&pr.srv, ids[i], 0, NULL, body, sizeof body),
          0);
    }
  pump(&pr, 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(res[i].done, 1);
    assert_int_equal(res[i].len, 8);
    assert_memory_equal(res[i].data, &ids[i], 8);
    free(res[i].data);
  }
  assert_int_equal(pr.cli.n_entries, 0);
  assert_int_equal(teex_rpc_session_next_deadline(&pr.cli), UINT64_MAX);
  pair_free(&pr);
}

static void test_session_byte_by_byte_and_truncated(void **state) {
  (void)state;
  struct pair pr;
  struct teex_err err;
  pair_init(&pr, NULL);
  struct result r = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, "echo",
                                         (const uint8_t *)"abc", 3, 1000, 0,
                                         on_done, NULL, &r, NULL, &err),
                   0);
  size_t n = pr.cli.out.len;
  /* All but the last byte, one at a time: nothing is delivered. */
  for (size_t i = 0; i + 1 < n; i++)
    assert_int_equal(
        teex_rpc_session_feed(&pr.srv, pr.cli.out.data + i, 1, 0, &err), 0);
  assert_int_equal(pr.requests, 0);
  assert_true(teex_frame_reader_partial(&pr.srv.reader));
  assert_int_equal(
      teex_rpc_session_feed(&pr.srv, pr.cli.out.data + n - 1, 1, 0, &err), 0);
  assert_int_equal(pr.requests, 1);
  assert_false(teex_frame_reader_partial(&pr.srv.reader));
  teex_buf_reset(&pr.cli.out);
  pump(&pr, 0);
  assert_int_equal(r.done, 1);
  free(r.data);
  pair_free(&pr);
}

static void feed_expect(const uint8_t *p, size_t n, int want) {
  struct teex_rpc_session s;
  struct teex_err err;
  teex_err_clear(&err);
  teex_rpc_session_init(&s, TEEX_RPC_SERVER, NULL, NULL, NULL);
  assert_int_equal(teex_rpc_session_feed(&s, p, n, 0, &err), want);
  assert_true(err.msg[0] != '\0');
  /* Once failed, the session refuses everything. */
  assert_int_not_equal(teex_rpc_session_feed(&s, p, n, 0, &err), 0);
  teex_rpc_session_close(&s, NULL);
}

static void test_session_bad_frames(void **state) {
  (void)state;
  /* Oversized: refused from the header, before any allocation. */
  uint8_t big[8] = {'T', 'X', 1, 0, 0x01, 0x00, 0x00, 0x01};
  feed_expect(big, sizeof big, TEEX_ETOOBIG);
  uint8_t huge[8] = {'T', 'X', 1, 0, 0xff, 0xff, 0xff, 0xff};
  feed_expect(huge, sizeof huge, TEEX_ETOOBIG);
  uint8_t magic[8] = {0x16, 0x03, 1, 0, 0, 0, 0, 1};
  feed_expect(magic, sizeof magic, TEEX_EFORMAT);
  uint8_t version[8] = {'T', 'X', 2, 0, 0, 0, 0, 1};
  feed_expect(version, sizeof version, TEEX_EVERSION);
  uint8_t empty[8] = {'T', 'X', 1, 0, 0, 0, 0, 0};
  feed_expect(empty, sizeof empty, TEEX_EFORMAT);
  uint8_t garbage[12] = {'T', 'X', 1, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
  feed_expect(garbage, sizeof garbage, TEEX_EFORMAT);
  /* A well-formed RpcFrame without an id. */
  Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
  Teex__Rpc__RpcCancel c = TEEX__RPC__RPC_CANCEL__INIT;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_CANCEL;
  f.cancel = &c;
  uint8_t buf[64];
  size_t n = teex__rpc__rpc_frame__pack(&f, buf + 8);
  teex_frame_header_encode(buf, n);
  feed_expect(buf, 8 + n, TEEX_EPROTO);
  /* A server never accepts responses. */
  Teex__Rpc__RpcResponse rs = TEEX__RPC__RPC_RESPONSE__INIT;
  f.id = 7;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_RESPONSE;
  f.response = &rs;
  n = teex__rpc__rpc_frame__pack(&f, buf + 8);
  teex_frame_header_encode(buf, n);
  feed_expect(buf, 8 + n, TEEX_EPROTO);
}

static void test_session_deadlines(void **state) {
  (void)state;
  struct pair pr;
  struct teex_err err;
  pair_init(&pr, NULL);
  pr.hold = 1;
  struct result r = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", NULL, 0, 100, 1000,
                                         on_done, NULL, &r, NULL, &err),
                   0);
  pump(&pr, 1000);
  assert_int_equal(pr.n_held, 1);
  assert_int_equal(teex_rpc_session_next_deadline(&pr.cli), 1100);
  teex_rpc_session_tick(&pr.cli, 1099);
  assert_int_equal(r.done, 0);
  teex_rpc_session_tick(&pr.cli, 1100);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.code, TEEX_ETIMEDOUT);
  assert_non_null(strstr(r.msg, "deadline"));
  /* The client's Cancel reaches the server, which forgets the call; a late
   * answer is refused and nothing reaches the client twice. */
  pump(&pr, 1100);
  assert_int_equal(pr.gone, 1);
  assert_int_equal(pr.gone_why, TEEX_ECANCELED);
  assert_int_equal(
      teex_rpc_session_respond(&pr.srv, pr.held[0].id, 0, NULL, NULL, 0),
      TEEX_ENOTFOUND);
  pump(&pr, 1100);
  assert_int_equal(r.done, 1);

  /* Server-side deadline: the server answers ETIMEDOUT by itself. */
  struct result r2 = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", NULL, 0, 50, 2000,
                                         on_done, NULL, &r2, NULL, &err),
                   0);
  pump(&pr, 2000);
  teex_rpc_session_tick(&pr.srv, 2050);
  assert_int_equal(pr.gone, 2);
  assert_int_equal(pr.gone_why, TEEX_ETIMEDOUT);
  pump(&pr, 2050);
  assert_int_equal(r2.done, 1);
  assert_int_equal(r2.code, TEEX_ETIMEDOUT);
  pair_free(&pr);
}

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    p[i] = (uint8_t)(x >> 16);
  }
  return p;
}

static void test_session_streaming(void **state) {
  (void)state;
  struct pair pr;
  struct teex_err err;
  pair_init(&pr, NULL);
  size_t n = 5u << 20; /* 5 MiB: 20 frames each way */
  uint8_t *p = pattern(n, 7);
  struct result r = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", p, n, 10000, 0,
                                         on_done, NULL, &r, NULL, &err),
                   0);
  pump(&pr, 0);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.code, 0);
  assert_int_equal(r.len, n);
  assert_memory_equal(r.data, p, n);
  free(r.data);

  /* The same, consumed chunk by chunk. */
  struct result s = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", p, n, 10000, 0,
                                         on_done, on_chunk, &s, NULL, &err),
                   0);
  pump(&pr, 0);
  assert_int_equal(s.done, 1);
  assert_int_equal(s.code, 0);
  assert_int_equal(s.chunks, (int)(n / TEEX_RPC_CHUNK_SIZE));
  assert_int_equal(s.len, n);
  assert_memory_equal(s.data, p, n);
  free(s.data);
  free(p);
  pair_free(&pr);
}

static void test_session_limits(void **state) {
  (void)state;
  struct pair pr;
  struct teex_err err;
  struct teex_rpc_limits lim = {.max_message = 1u << 20, .max_inflight = 4};
  pair_init(&pr, &lim);
  /* A 2 MiB request against a 1 MiB server limit: refused, the rest of its
   * chunks dropped, the connection kept. */
  size_t n = 2u << 20;
  uint8_t *p = pattern(n, 3);
  struct result r = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", p, n, 1000, 0,
                                         on_done, NULL, &r, NULL, &err),
                   0);
  pump(&pr, 0);
  assert_int_equal(r.code, TEEX_ETOOBIG);
  assert_int_equal(pr.requests, 0);
  assert_int_equal(pr.srv.n_entries, 0);
  free(p);
  /* More open calls than the server allows: the extra ones get EBUSY. */
  pr.hold = 1;
  struct result many[6];
  memset(many, 0, sizeof many);
  for (int i = 0; i < 6; i++)
    assert_int_equal(teex_rpc_session_call(&pr.cli, "echo", NULL, 0, 1000, 0,
                                           on_done, NULL, &many[i], NULL, &err),
                     0);
  pump(&pr, 0);
  assert_int_equal(pr.n_held, 4);
  assert_int_equal(many[4].code, TEEX_EBUSY);
  assert_int_equal(many[5].code, TEEX_EBUSY);
  /* Client-side checks refuse synchronously and never call back. */
  char longname[TEEX_RPC_MAX_METHOD + 2];
  memset(longname, 'm', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  struct result z = {0};
  assert_int_equal(teex_rpc_session_call(&pr.cli, longname, NULL, 0, 1000, 0,
                                         on_done, NULL, &z, NULL, &err),
                   TEEX_EINVAL);
  assert_int_equal(z.done, 0);
  pair_free(&pr);
  for (int i = 0; i < 4; i++)
    assert_int_equal(many[i].code, TEEX_ECLOSED);
}

/* Appends a streamed request head (id, first piece of `first` bytes, total
 * announced) to out. */
static void put_request_head(struct teex_buf *out, uint64_t id, size_t first,
                             size_t total) {
  static uint8_t zeros[TEEX_RPC_CHUNK_SIZE];
  Teex__Rpc__RpcFrame f = TEEX__RPC__RPC_FRAME__INIT;
  Teex__Rpc__RpcRequest rq = TEEX__RPC__RPC_REQUEST__INIT;
  f.id = id;
  f.body_case = TEEX__RPC__RPC_FRAME__BODY_REQUEST;
  f.request = &rq;
  rq.method = "echo";
  rq.payload.data = zeros;
  rq.payload.len = first;
  rq.more = 1;
  rq.total_len = total;
  size_t n = teex__rpc__rpc_frame__get_packed_size(&f);
  uint8_t *tmp = malloc(n);
  teex__rpc__rpc_frame__pack(&f, tmp);
  assert_int_equal(teex_frame_append(out, tmp, n), 0);
  free(tmp);
}

/* The code of the first response for id in bytes a server wrote. */
static int response_code_for(const struct teex_buf *out, uint64_t id) {
  struct teex_frame_reader r;
  struct teex_err err;
  teex_frame_reader_init(&r, 0);
  const uint8_t *in = out->data;
  size_t in_len = out->len;
  const uint8_t *fr;
  size_t flen;
  int code = 1;
  while (code == 1 &&
         teex_frame_reader_next(&r, &in, &in_len, &fr, &flen, &err) == 1) {
    Teex__Rpc__RpcFrame *f = teex__rpc__rpc_frame__unpack(NULL, flen, fr);
    assert_non_null(f);
    if (f->id == id && f->body_case == TEEX__RPC__RPC_FRAME__BODY_RESPONSE)
      code = f->response->code;
    teex__rpc__rpc_frame__free_unpacked(f, NULL);
  }
  teex_frame_reader_free(&r);
  return code;
}

static void test_session_buffered_limit(void **state) {
  (void)state;
  /* Many half-sent large requests cannot make a server hold more than
   * max_buffered bytes: the one that would cross it is refused. */
  struct teex_rpc_limits lim = {.max_message = 300u << 10,
                                .max_buffered = 400u << 10};
  struct teex_rpc_session srv;
  struct teex_err err;
  static const struct teex_rpc_session_cbs cbs = {pair_on_request,
                                                  pair_on_gone};
  struct pair pr;
  memset(&pr, 0, sizeof pr);
  teex_rpc_session_init(&srv, TEEX_RPC_SERVER, &lim, &cbs, &pr);
  struct teex_buf in;
  teex_buf_init(&in, 4u << 20, 0);
  put_request_head(&in, 1, TEEX_RPC_CHUNK_SIZE, 300u << 10);
  put_request_head(&in, 2, TEEX_RPC_CHUNK_SIZE, 300u << 10);
  assert_int_equal(teex_rpc_session_feed(&srv, in.data, in.len, 0, &err), 0);
  assert_int_equal(srv.lim.max_buffered, lim.max_buffered);
  assert_int_equal(srv.buffered, TEEX_RPC_CHUNK_SIZE);
  assert_int_equal(response_code_for(&srv.out, 2), TEEX_EBUSY);
  assert_int_equal(response_code_for(&srv.out, 1), 1); /* still receiving */
  assert_int_equal(pr.requests, 0);
  teex_buf_free(&in);
  teex_rpc_session_close(&srv, NULL);
  assert_int_equal(srv.buffered, 0);
}

/* ---- over TLS ---- */

struct net {
  uv_loop_t loop;
  struct nt_identity sid;
  struct nt_pin pin;
  struct teex_tls_ctx *sctx, *cctx;
  struct teex_rpc_server *srv;
  struct teex_rpc_client *cli;
  char addr[64];
  int ready, closed;
  struct teex_rpc_call *late; /* a call answered after its deadline */
};

static void h_echo(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                   void *arg) {
  (void)arg;
  teex_rpc_call_respond(call, 0, NULL, p, n);
}

static void h_hold(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                   void *arg) {
  struct net *t = arg;
  (void)p;
  (void)n;
  t->late = call;
}

static void cli_state(struct teex_rpc_client *c, int code, const char *reason,
                      void *arg) {
  struct net *t = arg;
  (void)c;
  (void)reason;
  if (code == 0)
    t->ready = 1;
  else
    t->closed = 1;
}

static void net_start(struct net *t) {
  struct teex_err err;
  memset(t, 0, sizeof *t);
  uv_loop_init(&t->loop);
  nt_identity_new(&t->sid, "rpc server");
  t->pin.fp = t->sid.fp;
  struct teex_tls_config scfg = {.cert = t->sid.cert, .key = t->sid.key};
  struct teex_tls_config ccfg = {.verify_peer = nt_pin_verify,
                                 .verify_arg = &t->pin};
  assert_int_equal(teex_tls_ctx_new(&t->sctx, &scfg, 1, &err), 0);
  assert_int_equal(teex_tls_ctx_new(&t->cctx, &ccfg, 0, &err), 0);
  assert_int_equal(teex_rpc_server_new(&t->loop, t->sctx, "127.0.0.1:0", NULL,
                                       &t->srv, &err),
                   0);
  assert_int_equal(teex_rpc_server_register(t->srv, "echo", h_echo, t), 0);
  assert_int_equal(teex_rpc_server_register(t->srv, "echo", h_echo, t),
                   TEEX_EEXIST);
  assert_int_equal(teex_rpc_server_register(t->srv, "hold", h_hold, t), 0);
  snprintf(t->addr, sizeof t->addr, "127.0.0.1:%d",
           teex_rpc_server_port(t->srv));
  assert_int_equal(teex_rpc_client_connect(&t->loop, t->cctx, t->addr, NULL,
                                           cli_state, t, &t->cli, &err),
                   0);
  nt_run_until(&t->loop, &t->ready, 5000);
  assert_int_equal(t->ready, 1);
}

static void net_stop(struct net *t) {
  teex_rpc_client_close(t->cli);
  nt_run_until(&t->loop, &t->closed, 5000);
  assert_int_equal(t->closed, 1);
  teex_rpc_server_close(t->srv);
  nt_drain(&t->loop);
  assert_int_equal(uv_loop_close(&t->loop), 0);
  teex_tls_ctx_free(t->sctx);
  teex_tls_ctx_free(t->cctx);
  nt_identity_free(&t->sid);
}

static void wait_done(struct net *t, struct result *r, int count, int ms) {
  static int flag;
  for (int spin = 0; spin < 1000; spin++) {
    int all = 1;
    for (int i = 0; i < count; i++)
      all &= r[i].done == 1;
    if (all)
      return;
    flag = 0;
    nt_run_until(&t->loop, &flag, ms / 100 + 1);
  }
}

static void test_tls_rpc_concurrent(void **state) {
  (void)state;
  struct net t;
  struct teex_err err;
  net_start(&t);
  struct result res[64];
  char payloads[64][32];
  memset(res, 0, sizeof res);
  for (int i = 0; i < 64; i++) {
    snprintf(payloads[i], sizeof payloads[i], "call %d", i);
    assert_int_equal(teex_rpc_client_call(t.cli, "echo",
                                          (const uint8_t *)payloads[i],
                                          strlen(payloads[i]), 5000, on_done,
                                          NULL, &res[i], &err),
                     0);
  }
  wait_done(&t, res, 64, 5000);
  for (int i = 0; i < 64; i++) {
    assert_int_equal(res[i].done, 1);
    assert_int_equal(res[i].code, 0);
    assert_int_equal(res[i].len, strlen(payloads[i]));
    assert_memory_equal(res[i].data, payloads[i], res[i].len);
    free(res[i].data);
  }
  assert_int_equal(teex_rpc_server_conn_count(t.srv), 1);
  struct result u = {0};
  teex_rpc_client_call(t.cli, "teex.Missing", NULL, 0, 5000, on_done, NULL, &u,
                       &err);
  wait_done(&t, &u, 1, 5000);
  assert_int_equal(u.code, TEEX_ENOTFOUND);
  assert_non_null(strstr(u.msg, "unknown method 'teex.Missing'"));
  net_stop(&t);
}

static void test_tls_rpc_deadline(void **state) {
  (void)state;
  struct net t;
  struct teex_err err;
  net_start(&t);
  struct result r = {0};
  uint64_t t0 = uv_now(&t.loop);
  assert_int_equal(teex_rpc_client_call(t.cli, "hold", NULL, 0, 100, on_done,
                                        NULL, &r, &err),
                   0);
  wait_done(&t, &r, 1, 5000);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.code, TEEX_ETIMEDOUT);
  assert_true(uv_now(&t.loop) - t0 >= 100);
  assert_non_null(t.late);
  /* Answering after the deadline does nothing (no crash, no second done). */
  teex_rpc_call_respond(t.late, 0, NULL, (const uint8_t *)"late", 4);
  struct result e = {0};
  teex_rpc_client_call(t.cli, "echo", (const uint8_t *)"x", 1, 5000, on_done,
                       NULL, &e, &err);
  wait_done(&t, &e, 1, 5000);
  assert_int_equal(e.code, 0);
  assert_int_equal(r.done, 1);
  free(e.data);
  net_stop(&t);
}

static void test_tls_rpc_stream(void **state) {
  (void)state;
  struct net t;
  struct teex_err err;
  net_start(&t);
  size_t n = 8u << 20;
  uint8_t *p = pattern(n, 11);
  struct result r = {0};
  assert_int_equal(
      teex_rpc_client_call(t.cli, "echo", p, n, 20000, on_done, NULL, &r, &err),
      0);
  wait_done(&t, &r, 1, 20000);
  assert_int_equal(r.done, 1);
  assert_int_equal(r.code, 0);
  assert_int_equal(r.len, n);
  assert_memory_equal(r.data, p, n);
  free(r.data);
  free(p);
  net_stop(&t);
}

/* A raw TLS peer that writes `bytes` and then closes or stays. */
struct rogue {
  const uint8_t *bytes;
  size_t len;
  int close_after;
  int ready, closed;
};

static void rogue_ready(struct teex_tls_conn *c, void *arg) {
  struct rogue *g = arg;
  struct teex_err err;
  g->ready = 1;
  assert_int_equal(teex_tls_write(c, g->bytes, g->len, &err), 0);
  if (g->close_after)
    teex_tls_close(c);
}

static void rogue_close(struct teex_tls_conn *c, int code, const char *reason,
                        void *arg) {
  struct rogue *g = arg;
  (void)c;
  (void)code;
  (void)reason;
  g->closed = 1;
}

static void test_tls_rpc_bad_peers(void **state) {
  (void)state;
  struct net t;
  struct teex_err err;
  char *logdir = tu_mkdtemp("rpc-log");
  char logpath[512];
  snprintf(logpath, sizeof logpath, "%s/log", logdir);
  FILE *logf = fopen(logpath, "w+");
  assert_non_null(logf);
  teex_log_set_fd(fileno(logf));
  net_start(&t);
  static const struct teex_tls_conn_cbs cbs = {rogue_ready, NULL, rogue_close};

  /* 1. Half a frame, then the peer goes away. */
  uint8_t half[8 + 10] = {'T', 'X', 1, 0, 0, 0, 0, 100};
  struct rogue g1 = {half, sizeof half, 1, 0, 0};
  struct teex_tls_conn *c1;
  assert_int_equal(
      teex_tls_connect(&t.loop, t.cctx, t.addr, &cbs, &g1, &c1, &err), 0);
  nt_run_until(&t.loop, &g1.closed, 5000);
  assert_int_equal(g1.ready, 1);

  /* 2. An oversized frame header: the server drops that connection. */
  uint8_t big[8] = {'T', 'X', 1, 0, 0x7f, 0, 0, 0};
  struct rogue g2 = {big, sizeof big, 0, 0, 0};
  struct teex_tls_conn *c2;
  assert_int_equal(
      teex_tls_connect(&t.loop, t.cctx, t.addr, &cbs, &g2, &c2, &err), 0);
  nt_run_until(&t.loop, &g2.closed, 5000);
  assert_int_equal(g2.closed, 1);

  /* The first connection still works, and only it is left. */
  static int flag;
  flag = 0;
  nt_run_until(&t.loop, &flag, 50);
  assert_int_equal(teex_rpc_server_conn_count(t.srv), 1);
  struct result r = {0};
  teex_rpc_client_call(t.cli, "echo", (const uint8_t *)"alive", 5, 5000,
                       on_done, NULL, &r, &err);
  wait_done(&t, &r, 1, 5000);
  assert_int_equal(r.code, 0);
  assert_int_equal(r.len, 5);
  free(r.data);
  net_stop(&t);

  /* Each bad peer left one clear line in the log. */
  teex_log_set_fd(2);
  fclose(logf);
  size_t n;
  char *log = (char *)tu_read_file(logpath, &n);
  assert_non_null(log);
  assert_non_null(strstr(log, "mid-frame"));
  assert_non_null(strstr(log, "payload exceeds the 1048576-byte limit"));
  free(log);
  tu_rmtree(logdir);
  free(logdir);
}

static void test_tls_rpc_conn_cap(void **state) {
  (void)state;
  uv_loop_t loop;
  struct teex_err err;
  uv_loop_init(&loop);
  struct nt_identity sid;
  nt_identity_new(&sid, "capped");
  struct nt_pin pin = {sid.fp, 0};
  struct teex_tls_config scfg = {.cert = sid.cert, .key = sid.key};
  struct teex_tls_config ccfg = {.verify_peer = nt_pin_verify,
                                 .verify_arg = &pin};
  struct teex_tls_ctx *sctx, *cctx;
  assert_int_equal(teex_tls_ctx_new(&sctx, &scfg, 1, &err), 0);
  assert_int_equal(teex_tls_ctx_new(&cctx, &ccfg, 0, &err), 0);
  struct teex_rpc_limits lim = {.max_conns = 1};
  struct teex_rpc_server *srv;
  assert_int_equal(
      teex_rpc_server_new(&loop, sctx, "127.0.0.1:0", &lim, &srv, &err), 0);
  teex_rpc_server_register(srv, "echo", h_echo, NULL);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", teex_rpc_server_port(srv));
  struct net a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  struct teex_rpc_client *ca, *cb;
  assert_int_equal(teex_rpc_client_connect(&loop, cctx, addr, NULL, cli_state,
                                           &a, &ca, &err),
                   0);
  nt_run_until(&loop, &a.ready, 5000);
  assert_int_equal(a.ready, 1);
  assert_int_equal(teex_rpc_client_connect(&loop, cctx, addr, NULL, cli_state,
                                           &b, &cb, &err),
                   0);
  nt_run_until(&loop, &b.closed, 5000);
  assert_int_equal(b.closed, 1); /* the second one was turned away */
  assert_int_equal(b.ready, 0);
  assert_int_equal(teex_rpc_server_conn_count(srv), 1);
  struct result r = {0};
  teex_rpc_client_call(ca, "echo", (const uint8_t *)"ok", 2, 5000, on_done,
                       NULL, &r, &err);
  static int flag;
  for (int i = 0; i < 100 && !r.done; i++) {
    flag = 0;
    nt_run_until(&loop, &flag, 50);
  }
  assert_int_equal(r.code, 0);
  free(r.data);
  teex_rpc_client_close(ca);
  nt_run_until(&loop, &a.closed, 5000);
  teex_rpc_server_close(srv);
  nt_drain(&loop);
  assert_int_equal(uv_loop_close(&loop), 0);
  teex_tls_ctx_free(sctx);
  teex_tls_ctx_free(cctx);
  nt_identity_free(&sid);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_session_concurrent_calls),
      cmocka_unit_test(test_session_many_calls_out_of_order),
      cmocka_unit_test(test_session_byte_by_byte_and_truncated),
      cmocka_unit_test(test_session_bad_frames),
      cmocka_unit_test(test_session_deadlines),
      cmocka_unit_test(test_session_streaming),
      cmocka_unit_test(test_session_limits),
      cmocka_unit_test(test_session_buffered_limit),
      cmocka_unit_test(test_tls_rpc_concurrent),
      cmocka_unit_test(test_tls_rpc_deadline),
      cmocka_unit_test(test_tls_rpc_stream),
      cmocka_unit_test(test_tls_rpc_bad_peers),
      cmocka_unit_test(test_tls_rpc_conn_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
