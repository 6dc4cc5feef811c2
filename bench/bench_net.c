/* Transport benchmarks, on loopback, server and client each on their own
 * thread (own libuv loop, so each can have a core):
 *
 *  1. handshakes per second per core: mutual RA-TLS with each side's
 *     evidence verified in full on every handshake (no resumption), against
 *     mutual plain TLS with self-signed pinned certificates in the same run.
 *     "Per core" = handshakes / CPU seconds of the server thread (and of the
 *     client thread, printed too).
 *  2. round-trip latency of a small RPC (32-byte teex.Echo) over an
 *     established RA-TLS connection, one call at a time: p50 / p99, against
 *     a raw 32-byte TLS echo on an established connection (no RPC layer).
 *  3. requests per second with 64 concurrent calls on one connection, against
 *     one call at a time.
 *
 * usage: bench_net [--quick]    (--quick: small counts, for a smoke run) */
#include "teex/ratls.h"
#include "teex/ratls_channel.h"
#include "teex/rpc.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"
#include "teex/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void) {
  return (double)uv_hrtime() / 1e9;
}

static _Noreturn void die(const char *what, const struct teex_err *err) {
  fprintf(stderr, "bench_net: %s: %s\n", what, err ? teex_err_msg(err) : "");
  exit(1);
}

/* ---- identities ---- */

struct ident {
  EVP_PKEY *key;
  X509 *cert;
  uint8_t fp[32];
};

static int pin_verify(void *arg, struct teex_tls_conn *c, X509 *peer,
                      struct teex_err *err) {
  const uint8_t *fp = arg;
  uint8_t got[32];
  (void)c;
  if (teex_tls_cert_sha256(peer, got) != 0 || memcmp(got, fp, 32) != 0)
    return teex_err_set(err, TEEX_EPOLICY, "not pinned");
  return 0;
}

/* ---- the server thread ---- */

struct server {
  uv_loop_t loop;
  uv_async_t stop;
  uv_thread_t thread;
  struct teex_tls_ctx *ctx;
  struct teex_tls_listener *hs_listener; /* handshake counting */
  struct teex_rpc_server *rpc;
  struct teex_tls_listener *raw_listener; /* raw TLS echo */
  int hs_port, rpc_port, raw_port;
  /* handshake bench */
  int hs_target, hs_done;
  double cpu0, cpu1;
};

static void hs_ready(struct teex_tls_conn *c, void *arg) {
  struct server *s = arg;
  if (s->hs_done == 0)
    s->cpu0 = thread_cpu_s();
  if (++s->hs_done == s->hs_target)
    s->cpu1 = thread_cpu_s();
  (void)c; /* the client closes */
}

static void hs_close(struct teex_tls_conn *c, int code, const char *reason,
                     void *arg) {
  (void)c;
  (void)code;
  (void)reason;
  (void)arg;
}

static void hs_accept(struct teex_tls_listener *l, struct teex_tls_conn *c,
                      void *arg) {
  static const struct teex_tls_conn_cbs cbs = {hs_ready, NULL, hs_close};
  (void)l;
  teex_tls_set_cbs(c, &cbs, arg);
}

static void raw_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                     void *arg) {
  (void)arg;
  teex_tls_write(c, p, n, NULL);
}

static void raw_accept(struct teex_tls_listener *l, struct teex_tls_conn *c,
                       void *arg) {
  static const struct teex_tls_conn_cbs cbs = {NULL, raw_data, hs_close};
  (void)l;
  teex_tls_set_cbs(c, &cbs, arg);
}

static void h_echo(struct teex_rpc_call *call, const uint8_t *p, size_t n,
                   void *arg) {
  (void)arg;
  teex_rpc_call_respond(call, 0, NULL, p, n);
}

static void server_stop(uv_async_t *a) {
  struct server *s = a->data;
  teex_tls_listener_close(s->hs_listener);
  teex_tls_listener_close(s->raw_listener);
  teex_rpc_server_close(s->rpc);
  uv_close((uv_handle_t *)&s->stop, NULL);
}

static void server_main(void *arg) {
  struct server *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void server_start(struct server *s, struct teex_tls_ctx *ctx,
                         int with_rpc) {
  struct teex_err err;
  memset(s, 0, sizeof *s);
  uv_loop_init(&s->loop);
  s->ctx = ctx;
  if (teex_tls_listen(&s->loop, ctx, "127.0.0.1:0", hs_accept, s,
                      &s->hs_listener, &err) != 0)
    die("listen", &err);
  s->hs_port = teex_tls_listener_port(s->hs_listener);
  if (teex_tls_listen(&s->loop, ctx, "127.0.0.1:0", raw_accept, s,
                      &s->raw_listener, &err) != 0)
    die("listen", &err);
  s->raw_port = teex_tls_listener_port(s->raw_listener);
  if (with_rpc) {
    if (teex_rpc_server_new(&s->loop, ctx, "127.0.0.1:0", NULL, &s->rpc,
                            &err) != 0)
      die("rpc server", &err);
    teex_rpc_server_register(s->rpc, "teex.Echo", h_echo, NULL);
    s->rpc_port = teex_rpc_server_port(s->rpc);
  }
  uv_async_init(&s->loop, &s->stop, server_stop);
  s->stop.data = s;
  uv_thread_create(&s->thread, server_main, s);
}

static void server_join(struct server *s) {
  uv_async_send(&s->stop);
  uv_thread_join(&s->thread);
  while (uv_run(&s->loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&s->loop);
}

/* ---- 1. handshakes ---- */

struct hs_client {
  uv_loop_t *loop;
  struct teex_tls_ctx *ctx;
  char addr[64];
  int target, started, done, failed, in_flight;
  double cpu0, cpu1;
};

static void hc_start_one(struct hs_client *h);

static void hc_ready(struct teex_tls_conn *c, void *arg) {
  (void)arg;
  teex_tls_close(c);
}

static void hc_close(struct teex_tls_conn *c, int code, const char *reason,
                     void *arg) {
  struct hs_client *h = arg;
  (void)c;
  if (code != 0) {
    fprintf(stderr, "bench_net: handshake failed: %s\n", reason);
    h->failed++;
  }
  h->done++;
  h->in_flight--;
  if (h->done == h->target)
    h->cpu1 = thread_cpu_s();
  if (h->started < h->target && h->failed == 0)
    hc_start_one(h);
}

static void hc_start_one(struct hs_client *h) {
  static const struct teex_tls_conn_cbs cbs = {hc_ready, NULL, hc_close};
  struct teex_tls_conn *c;
  struct teex_err err;
  if (teex_tls_connect(h->loop, h->ctx, h->addr, &cbs, h, &c, &err) != 0)
    die("connect", &err);
  h->started++;
  h->in_flight++;
}

struct hs_result {
  double per_core_server, per_core_client, per_s_wall;
};

static struct hs_result bench_handshakes(struct teex_tls_ctx *sctx,
                                         struct teex_tls_ctx *cctx, int n) {
  struct server s;
  server_start(&s, sctx, 0);
  s.hs_target = n;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct hs_client h = {.loop = &loop, .ctx = cctx, .target = n};
  snprintf(h.addr, sizeof h.addr, "127.0.0.1:%d", s.hs_port);
  double w0 = wall_s();
  h.cpu0 = thread_cpu_s();
  for (int i = 0; i < 8 && i < n; i++)
    hc_start_one(&h);
  uv_run(&loop, UV_RUN_DEFAULT);
  double w1 = wall_s();
  uv_loop_close(&loop);
  /* Let the server see the last closes. */
  usleep(50000);
  server_join(&s);
  if (h.failed || s.hs_done < n) {
    fprintf(stderr, "bench_net: %d failed, server saw %d/%d\n", h.failed,
            s.hs_done, n);
    exit(1);
  }
  struct hs_result r;
  /* The server's first handshake starts its clock: count n-1 after it. */
  r.per_core_server = (double)(n - 1) / (s.cpu1 - s.cpu0);
  r.per_core_client = (double)n / (h.cpu1 - h.cpu0);
  r.per_s_wall = (double)n / (w1 - w0);
  return r;
}

/* ---- 2 and 3. RPC latency and throughput ---- */

struct rpc_bench {
  uv_loop_t *loop;
  struct teex_rpc_client *cli;
  int ready, closed;
  int target, issued, done, concurrency;
  uint64_t *lat_ns;
  uint64_t *t_issue;
  uint8_t payload[32];
};

static void rb_issue(struct rpc_bench *b);

static void rb_done(void *arg, int code, const char *msg, const uint8_t *p,
                    size_t n) {
  struct rpc_bench *b = arg;
  (void)p;
  if (code != 0 || n != sizeof b->payload) {
    fprintf(stderr, "bench_net: call failed: %s\n", msg ? msg : "short");
    exit(1);
  }
  if (b->lat_ns)
    b->lat_ns[b->done] = uv_hrtime() - b->t_issue[0];
  b->done++;
  if (b->done == b->target) {
    teex_rpc_client_close(b->cli);
    return;
  }
  if (b->issued < b->target)
    rb_issue(b);
}

static void rb_issue(struct rpc_bench *b) {
  struct teex_err err;
  if (b->lat_ns)
    b->t_issue[0] = uv_hrtime();
  if (teex_rpc_client_call(b->cli, "teex.Echo", b->payload, sizeof b->payload,
                           10000, rb_done, NULL, b, &err) != 0)
    die("call", &err);
  b->issued++;
}

static void rb_state(struct teex_rpc_client *c, int code, const char *reason,
                     void *arg) {
  struct rpc_bench *b = arg;
  (void)c;
  if (code == 0) {
    b->ready = 1;
    for (int i = 0; i < b->concurrency && b->issued < b->target; i++)
      rb_issue(b);
  } else {
    b->closed = 1;
    if (b->done != b->target) {
      fprintf(stderr, "bench_net: connection lost: %s\n", reason);
      exit(1);
    }
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Runs `target` echo calls with `concurrency` in flight; returns calls/s and
 * fills p50/p99 (µs) when concurrency is 1. */
static double bench_rpc(struct teex_tls_ctx *cctx, int port, int target,
                        int concurrency, double *p50, double *p99) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct rpc_bench b = {
      .loop = &loop, .target = target, .concurrency = concurrency};
  uint64_t t_issue = 0;
  if (concurrency == 1) {
    b.lat_ns = calloc((size_t)target, sizeof *b.lat_ns);
    b.t_issue = &t_issue;
  }
  memset(b.payload, 0xab, sizeof b.payload);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  struct teex_err err;
  if (teex_rpc_client_connect(&loop, cctx, addr, NULL, rb_state, &b, &b.cli,
                              &err) != 0)
    die("rpc connect", &err);
  /* Time from the first call (issued in rb_state) to the last answer. */
  while (!b.ready)
    uv_run(&loop, UV_RUN_ONCE);
  double w0 = wall_s();
  uv_run(&loop, UV_RUN_DEFAULT);
  double w1 = wall_s();
  uv_loop_close(&loop);
  if (b.lat_ns) {
    /* Drop the first 1% as warm-up. */
    int skip = target / 100;
    qsort(b.lat_ns + skip, (size_t)(target - skip), sizeof *b.lat_ns, cmp_u64);
    int m = target - skip;
    *p50 = (double)b.lat_ns[skip + m / 2] / 1e3;
    *p99 = (double)b.lat_ns[skip + (m * 99) / 100] / 1e3;
    free(b.lat_ns);
  }
  return (double)target / (w1 - w0);
}

/* Raw TLS ping-pong of 32 bytes on an established connection. */
struct raw_bench {
  int target, done;
  size_t got;
  uint64_t t0;
  uint64_t *lat_ns;
  uint8_t msg[32];
};

static void rw_send(struct teex_tls_conn *c, struct raw_bench *r) {
  r->t0 = uv_hrtime();
  r->got = 0;
  teex_tls_write(c, r->msg, sizeof r->msg, NULL);
}

static void rw_ready(struct teex_tls_conn *c, void *arg) {
  rw_send(c, arg);
}

static void rw_data(struct teex_tls_conn *c, const uint8_t *p, size_t n,
                    void *arg) {
  struct raw_bench *r = arg;
  (void)p;
  r->got += n;
  if (r->got < sizeof r->msg)
    return;
  r->lat_ns[r->done++] = uv_hrtime() - r->t0;
  if (r->done == r->target)
    teex_tls_close(c);
  else
    rw_send(c, r);
}

static void rw_close(struct teex_tls_conn *c, int code, const char *reason,
                     void *arg) {
  (void)c;
  (void)arg;
  if (code != 0) {
    fprintf(stderr, "bench_net: raw echo: %s\n", reason);
    exit(1);
  }
}

static double bench_raw_p50(struct teex_tls_ctx *cctx, int port, int target) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct raw_bench r = {.target = target};
  r.lat_ns = calloc((size_t)target, sizeof *r.lat_ns);
  memset(r.msg, 0xcd, sizeof r.msg);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  static const struct teex_tls_conn_cbs cbs = {rw_ready, rw_data, rw_close};
  struct teex_tls_conn *c;
  struct teex_err err;
  if (teex_tls_connect(&loop, cctx, addr, &cbs, &r, &c, &err) != 0)
    die("raw connect", &err);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  int skip = target / 100;
  qsort(r.lat_ns + skip, (size_t)(target - skip), sizeof *r.lat_ns, cmp_u64);
  double p50 = (double)r.lat_ns[skip + (target - skip) / 2] / 1e3;
  free(r.lat_ns);
  return p50;
}

/* ---- main ---- */

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  int n_hs = quick ? 200 : 3000;
  int n_lat = quick ? 2000 : 30000;
  int n_tput = quick ? 20000 : 300000;
  struct teex_err err;
  teex_err_clear(&err);

  /* A sim network in a scratch directory, and two enclave identities. */
  char dir[] = "/tmp/teex-bench-net-XXXXXX";
  if (mkdtemp(dir) == NULL)
    die("mkdtemp", NULL);
  uint8_t root[32];
  if (teex_tee_sim_init(dir, root, &err) != 0)
    die("sim init", &err);
  struct teex_tee_config tcfg = {
      .backend = "sim", .data_dir = dir, .role = "worker"};
  struct teex_tee *tee_s, *tee_c;
  if (teex_tee_open(&tcfg, &tee_s, &err) != 0)
    die("tee open", &err);
  tcfg.role = "sm";
  if (teex_tee_open(&tcfg, &tee_c, &err) != 0)
    die("tee open", &err);
  struct ident rs, rc, ps, pc;
  if (teex_ratls_identity_new(tee_s, NULL, &rs.key, &rs.cert, &err) != 0 ||
      teex_ratls_identity_new(tee_c, NULL, &rc.key, &rc.cert, &err) != 0)
    die("ratls identity", &err);
  if (teex_tls_selfsigned_new("plain server", 1, &ps.key, &ps.cert, &err) ||
      teex_tls_selfsigned_new("plain client", 1, &pc.key, &pc.cert, &err))
    die("self-signed", &err);
  teex_tls_cert_sha256(ps.cert, ps.fp);
  teex_tls_cert_sha256(pc.cert, pc.fp);

  /* A production-shaped policy: this root, this measurement, the roles. */
  struct teex_tee_policy pol;
  teex_tee_policy_init(&pol);
  teex_tee_policy_add_root(&pol, root);
  teex_tee_policy_add_measurement(&pol, teex_tee_self(tee_s)->mr_enclave);
  teex_tee_policy_add_measurement(&pol, teex_tee_self(tee_c)->mr_enclave);
  teex_tee_policy_add_role(&pol, "worker");
  teex_tee_policy_add_role(&pol, "sm");
  pol.allow_simulated = 1;
  struct teex_ratls_verifier ver = {&pol};

  struct teex_tls_ctx *ra_s = NULL, *ra_c = NULL, *pl_s = NULL, *pl_c = NULL,
                      *ra_c1 = NULL;
  struct teex_tls_config c1 = {.cert = rs.cert,
                               .key = rs.key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &ver};
  struct teex_tls_config c2 = {.cert = rc.cert,
                               .key = rc.key,
                               .mutual = 1,
                               .verify_peer = teex_ratls_channel_verify,
                               .verify_arg = &ver};
  struct teex_tls_config c3 = {.cert = ps.cert,
                               .key = ps.key,
                               .mutual = 1,
                               .verify_peer = pin_verify,
                               .verify_arg = pc.fp};
  struct teex_tls_config c4 = {.cert = pc.cert,
                               .key = pc.key,
                               .mutual = 1,
                               .verify_peer = pin_verify,
                               .verify_arg = ps.fp};
  if (teex_tls_ctx_new(&ra_s, &c1, 1, &err) ||
      teex_tls_ctx_new(&ra_c, &c2, 0, &err) ||
      teex_tls_ctx_new(&pl_s, &c3, 1, &err) ||
      teex_tls_ctx_new(&pl_c, &c4, 0, &err) ||
      teex_tls_ctx_new(&ra_c1, &c2, 0, &err))
    die("tls ctx", &err);

  printf("bench_net: loopback, server and client on separate threads%s\n",
         quick ? " (--quick)" : "");
  struct hs_result ra = bench_handshakes(ra_s, ra_c, n_hs);
  struct hs_result pl = bench_handshakes(pl_s, pl_c, n_hs);
  printf("handshakes (mutual, %d each):\n", n_hs);
  printf("  RA-TLS, evidence verified in full both ways: %8.0f /s per server "
         "core, %8.0f /s per client core, %8.0f /s wall\n",
         ra.per_core_server, ra.per_core_client, ra.per_s_wall);
  printf("  plain TLS, pinned self-signed certificates:  %8.0f /s per server "
         "core, %8.0f /s per client core, %8.0f /s wall\n",
         pl.per_core_server, pl.per_core_client, pl.per_s_wall);
  printf("  ratio RA-TLS / plain (server core): %.2f\n",
         ra.per_core_server / pl.per_core_server);

  struct server s;
  server_start(&s, ra_s, 1);
  double p50, p99, p50b = 0, p99b = 0;
  double seq = bench_rpc(ra_c1, s.rpc_port, n_lat, 1, &p50, &p99);
  double raw = bench_raw_p50(ra_c1, s.raw_port, n_lat);
  double par = bench_rpc(ra_c1, s.rpc_port, n_tput, 64, &p50b, &p99b);
  server_join(&s);
  printf("RPC over an established mutual RA-TLS connection (32-byte echo):\n");
  printf("  round trip, one call at a time (%d calls): p50 %.1f us, p99 %.1f "
         "us\n",
         n_lat, p50, p99);
  printf("  raw TLS 32-byte ping-pong (no RPC layer):  p50 %.1f us; ratio "
         "RPC / raw %.2f\n",
         raw, p50 / raw);
  printf("  64 concurrent calls on one connection (%d calls): %.0f calls/s; "
         "one at a time %.0f calls/s; ratio %.2f\n",
         n_tput, par, seq, par / seq);

  teex_tls_ctx_free(ra_s);
  teex_tls_ctx_free(ra_c);
  teex_tls_ctx_free(ra_c1);
  teex_tls_ctx_free(pl_s);
  teex_tls_ctx_free(pl_c);
  X509_free(rs.cert);
  X509_free(rc.cert);
  X509_free(ps.cert);
  X509_free(pc.cert);
  EVP_PKEY_free(rs.key);
  EVP_PKEY_free(rc.key);
  EVP_PKEY_free(ps.key);
  EVP_PKEY_free(pc.key);
  teex_tee_close(tee_s);
  teex_tee_close(tee_c);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_net: could not remove %s\n", dir);
  return 0;
}
