/* The RESP proxy end to end: real redis-cli, redis-cli --pipe and
 * redis-benchmark (Debian's redis-tools) against `teex_ds_proxy` on an
 * in-process 3-replica TEE-DS group, whose leader clock the test moves;
 * raw sockets for pipelining and malformed requests; the loopback-only
 * listen check, names that resolve elsewhere included. */
#include "testutil.h"

#include "teex/ds_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic uint64_t now_ms = 1700000000000ull;
static uint64_t test_clock(void *arg) {
  (void)arg;
  return atomic_load(&now_ms);
}

struct server {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t thread;
  struct teex_ds_backend *backend;
  struct teex_ds_proxy *px;
  int port;
};

static void on_stop(uv_async_t *a) {
  struct server *s = a->data;
  teex_ds_proxy_close(s->px);
  s->backend->ops->free(s->backend);
  uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *loop_main(void *arg) {
  struct server *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  return NULL;
}

static struct server srv;

static int setup(void **state) {
  (void)state;
  struct teex_err err;
  assert_int_equal(uv_loop_init(&srv.loop), 0);
  assert_int_equal(teex_ds_backend_local_new(&srv.loop, 3, test_clock, NULL,
                                             &srv.backend, &err),
                   0);
  struct teex_ds_proxy_config cfg = {
      .listen = "127.0.0.1:0", .ns = "app", .backend = srv.backend};
  assert_int_equal(teex_ds_proxy_start(&srv.loop, &cfg, &srv.px, &err), 0);
  srv.port = teex_ds_proxy_port(srv.px);
  assert_true(srv.port > 0);
  uv_async_init(&srv.loop, &srv.stop, on_stop);
  srv.stop.data = &srv;
  assert_int_equal(pthread_create(&srv.thread, NULL, loop_main, &srv), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  uv_async_send(&srv.stop);
  pthread_join(srv.thread, NULL);
  assert_int_equal(uv_loop_close(&srv.loop), 0);
  return 0;
}

/* Runs `redis-cli -p PORT <args>` (stdin from `input` if not NULL) and
 * returns its exit status; its stdout in out. */
static int run_tool(const char *tool, const char *args, const char *input,
                    char *out, size_t size) {
  char cmd[1024];
  char inpath[] = "/tmp/teex-resp-in-XXXXXX";
  if (input != NULL) {
    int fd = mkstemp(inpath);
    assert_true(fd >= 0);
    size_t n = strlen(input);
    assert_int_equal(write(fd, input, n), (ssize_t)n);
    close(fd);
  }
  snprintf(cmd, sizeof(cmd), "%s -p %d %s%s%s 2>&1", tool, srv.port, args,
           input ? " < " : "", input ? inpath : "");
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, size - 1, f);
  out[n] = 0;
  int st = pclose(f);
  if (input != NULL)
    unlink(inpath);
  while (n > 0 && out[n - 1] == '\n')
    out[--n] = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[1 << 16];

static const char *cli(const char *args) {
  assert_int_equal(run_tool("redis-cli", args, NULL, out, sizeof(out)), 0);
  return out;
}

static int raw_connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

static int raw_connect(void) {
  return raw_connect_port(srv.port);
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    assert_true(w > 0);
    c += w;
    n -= (size_t)w;
  }
}

/* Reads until want bytes arrived, or until the peer closes (want 0). */
static size_t recv_upto(int fd, char *buf, size_t size, size_t want,
                        int *closed) {
  size_t n = 0;
  *closed = 0;
  while (n < size - 1 && (want == 0 || n < want)) {
    ssize_t r = recv(fd, buf + n, size - 1 - n, 0);
    if (r == 0) {
      *closed = 1;
      break;
    }
    assert_true(r > 0); /* a timeout fails the test */
    n += (size_t)r;
  }
  buf[n] = 0;
  return n;
}

static void test_redis_cli_round_trips(void **state) {
  (void)state;
  assert_string_equal(cli("PING"), "PONG");
  assert_string_equal(cli("SET greeting 'hello world'"), "OK");
  assert_string_equal(cli("GET greeting"), "hello world");
  assert_string_equal(cli("GET missing"), "");
  assert_string_equal(cli("SET greeting x NX"), "");
  assert_string_equal(cli("MSET a 1 b 2 c 3"), "OK");
  assert_string_equal(cli("MGET a b nope c"), "1\n2\n\n3");
  assert_string_equal(cli("INCRBY a 41"), "42");
  assert_string_equal(cli("DECR a"), "41");
  assert_string_equal(cli("EXISTS a b nope"), "2");
  assert_string_equal(cli("DEL a b nope"), "2");
  assert_string_equal(cli("EXISTS a b"), "0");
  assert_string_equal(cli("SELECT 0"), "OK");
  assert_string_equal(cli("CLIENT SETNAME tool"), "OK");
  assert_string_equal(cli("HELLO 3"),
                      "NOPROTO this TEE-DS proxy speaks RESP2 only (HELLO 2)");
  assert_string_equal(cli("FOO bar"),
                      "ERR unknown command 'FOO', with args beginning with: "
                      "'bar' ");
  const char *info = cli("INFO");
  assert_non_null(strstr(info, "TEE-DS"));
  assert_non_null(strstr(info, "ds_role:leader"));
  assert_non_null(strstr(info, "ds_replicas:3"));
  assert_non_null(strstr(info, "# Keyspace"));
  /* the keys live under the namespace, stripped on the way back */
  assert_string_equal(cli("--scan --pattern 'greet*'"), "greeting");
  assert_string_equal(cli("DEL greeting c"), "2");
  assert_string_equal(cli("DBSIZE"), "0");
}

/* TTLs run on the group clock: the leader's, which the test moves. */
static void test_ttl_on_group_clock(void **state) {
  (void)state;
  assert_string_equal(cli("SET session tok PX 5000"), "OK");
  assert_string_equal(cli("TTL session"), "5");
  assert_string_equal(cli("PTTL session"), "5000");
  atomic_fetch_add(&now_ms, 3000);
  assert_string_equal(cli("PTTL session"), "2000");
  assert_string_equal(cli("EXPIRE session 10"), "1");
  assert_string_equal(cli("TTL session"), "10");
  atomic_fetch_add(&now_ms, 9999);
  assert_string_equal(cli("GET session"), "tok");
  atomic_fetch_add(&now_ms, 1);
  assert_string_equal(cli("GET session"), "");
  assert_string_equal(cli("TTL session"), "-2");
  assert_string_equal(cli("SET p v EX 1"), "OK");
  assert_string_equal(cli("PERSIST p"), "1");
  atomic_fetch_add(&now_ms, 5000);
  assert_string_equal(cli("TTL p"), "-1");
  assert_string_equal(cli("DEL p"), "1");
}

/* 100 commands in one write: answered in order. */
static void test_pipelining_raw(void **state) {
  (void)state;
  static char req[16384], want[16384], got[16384];
  size_t rn = 0, wn = 0;
  for (int i = 0; i < 50; i++) {
    rn += (size_t)snprintf(req + rn, sizeof(req) - rn,
                           "*3\r\n$3\r\nSET\r\n$4\r\np%03d\r\n$3\r\n%03d\r\n"
                           "*2\r\n$3\r\nGET\r\n$4\r\np%03d\r\n",
                           i, i, i);
    wn += (size_t)snprintf(want + wn, sizeof(want) - wn,
                           "+OK\r\n$3\r\n%03d\r\n", i);
  }
  int fd = raw_connect();
  send_all(fd, req, rn);
  int closed;
  size_t n = recv_upto(fd, got, sizeof(got), wn, &closed);
  assert_false(closed);
  assert_int_equal(n, wn);
  assert_string_equal(got, want);
  /* inline commands too, as telnet sends them; QUIT closes */
  static const char inl[] = "PING\r\nECHO \"a b\"\r\nQUIT\r\n";
  send_all(fd, inl, sizeof(inl) - 1);
  n = recv_upto(fd, got, sizeof(got), 0, &closed);
  assert_true(closed);
  assert_string_equal(got, "+PONG\r\n$3\r\na b\r\n+OK\r\n");
  close(fd);
  /* redis-cli --pipe: the mass-insertion mode */
  static char pipe_in[32768];
  size_t pn = 0;
  for (int i = 0; i < 300; i++)
    pn += (size_t)snprintf(pipe_in + pn, sizeof(pipe_in) - pn,
                           "SET user:%03d %d\r\n", i, i);
  assert_int_equal(run_tool("redis-cli", "--pipe", pipe_in, out, sizeof(out)),
                   0);
  assert_non_null(strstr(out, "errors: 0, replies: 300"));
  assert_string_equal(cli("GET user:299"), "299");
}

/* ---- a backend that answers out of order ----
 * It runs each command on the in-process group at once (so in the order
 * the proxy sent them) and hands the result back after a pseudo-random
 * 0-3 ms, so answers overtake each other. It records how many calls the
 * proxy had out at once and every write sent while a read was out. */
struct shuffle {
  struct teex_ds_backend base;
  struct teex_ds_backend *inner;
  uv_loop_t *loop;
  unsigned seed;
  int out, max_out, reads_out, writes_behind_reads;
};

struct shuffle_call {
  struct shuffle *sh;
  teex_ds_done_cb cb;
  void *arg;
  int read, status;
  struct teex_ds_result *res;
  uv_timer_t t;
};

static void shuffle_call_closed(uv_handle_t *h) {
  free(h->data);
}

static void shuffle_deliver(uv_timer_t *t) {
  struct shuffle_call *k = t->data;
  k->sh->out--;
  if (k->read)
    k->sh->reads_out--;
  k->cb(k->arg, k->status, k->res);
  uv_close((uv_handle_t *)&k->t, shuffle_call_closed);
}

static void shuffle_inner_done(void *arg, int status,
                               struct teex_ds_result *res) {
  struct shuffle_call *k = arg;
  k->status = status;
  k->res = res;
  k->sh->seed = k->sh->seed * 1103515245u + 12345u;
  uv_timer_start(&k->t, shuffle_deliver, (k->sh->seed >> 16) % 4u, 0);
}

static int shuffle_exec(struct teex_ds_backend *b,
                        const struct teex_ds_cmd *cmd, int read_mode,
                        teex_ds_done_cb cb, void *arg, struct teex_err *err) {
  struct shuffle *sh = (struct shuffle *)b;
  struct shuffle_call *k = calloc(1, sizeof(*k));
  if (k == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "out of memory");
  k->sh = sh;
  k->cb = cb;
  k->arg = arg;
  k->read = cmd->op == TEEX_DS_GET || cmd->op == TEEX_DS_SCAN ||
            cmd->op == TEEX_DS_COUNT;
  if (!k->read && sh->reads_out > 0)
    sh->writes_behind_reads++;
  int rc = sh->inner->ops->exec(sh->inner, cmd, read_mode, shuffle_inner_done,
                                k, err);
  if (rc != 0) {
    free(k);
    return rc;
  }
  uv_timer_init(sh->loop, &k->t);
  k->t.data = k;
  sh->out++;
  if (sh->out > sh->max_out)
    sh->max_out = sh->out;
  if (k->read)
    sh->reads_out++;
  return 0;
}

static void shuffle_free(struct teex_ds_backend *b) {
  struct shuffle *sh = (struct shuffle *)b;
  sh->inner->ops->free(sh->inner);
}

static const struct teex_ds_backend_ops shuffle_ops = {.exec = shuffle_exec,
                                                       .free = shuffle_free};

/* A pipeline whose answers come back out of order: replies are written in
 * request order, several commands are out at once, and no write is sent
 * while a read before it is unanswered (so reads never see later writes). */
static void test_pipeline_out_of_order_answers(void **state) {
  (void)state;
  static struct shuffle sh;
  static struct server s2;
  struct teex_err err;
  memset(&sh, 0, sizeof sh);
  memset(&s2, 0, sizeof s2);
  assert_int_equal(uv_loop_init(&s2.loop), 0);
  assert_int_equal(
      teex_ds_backend_local_new(&s2.loop, 3, test_clock, NULL, &sh.inner, &err),
      0);
  sh.base.ops = &shuffle_ops;
  sh.loop = &s2.loop;
  sh.seed = 7;
  s2.backend = &sh.base;
  struct teex_ds_proxy_config cfg = {
      .listen = "127.0.0.1:0", .ns = "app", .backend = &sh.base};
  assert_int_equal(teex_ds_proxy_start(&s2.loop, &cfg, &s2.px, &err), 0);
  s2.port = teex_ds_proxy_port(s2.px);
  uv_async_init(&s2.loop, &s2.stop, on_stop);
  s2.stop.data = &s2;
  assert_int_equal(pthread_create(&s2.thread, NULL, loop_main, &s2), 0);

  static char req[32768], want[32768], got[32768];
  size_t rn = 0, wn = 0;
  for (int i = 0; i < 60; i++) {
    rn += (size_t)snprintf(req + rn, sizeof(req) - rn,
                           "SET q %d\r\nGET q\r\nINCR c\r\nGET c\r\n"
                           "EXISTS q\r\nPING\r\n",
                           i);
    wn += (size_t)snprintf(want + wn, sizeof(want) - wn,
                           "+OK\r\n$%d\r\n%d\r\n:%d\r\n$%d\r\n%d\r\n:1\r\n"
                           "+PONG\r\n",
                           i < 10 ? 1 : 2, i, i + 1, i + 1 < 10 ? 1 : 2, i + 1);
  }
  int fd = raw_connect_port(s2.port);
  send_all(fd, req, rn);
  int closed;
  size_t n = recv_upto(fd, got, sizeof(got), wn, &closed);
  close(fd);
  uv_async_send(&s2.stop);
  pthread_join(s2.thread, NULL);
  assert_int_equal(uv_loop_close(&s2.loop), 0);
  print_message("at most %d commands out at once; %d writes sent behind a "
                "read\n",
                sh.max_out, sh.writes_behind_reads);
  assert_false(closed);
  assert_int_equal(n, wn);
  assert_string_equal(got, want);
  assert_true(sh.max_out > 1);
  assert_int_equal(sh.writes_behind_reads, 0);
}

/* SCAN pages with opaque cursors; every key exactly once. */
static void test_scan_pages(void **state) {
  (void)state;
  /* user:000..299 from the pipelining test: 30 pages of COUNT 10 */
  assert_int_equal(run_tool("redis-cli", "--scan --pattern 'user:*'", NULL, out,
                            sizeof(out)),
                   0);
  int lines = 0;
  char seen[300] = {0};
  for (char *line = out; line != NULL && *line;) {
    char *nl = strchr(line, '\n');
    if (nl != NULL)
      *nl = 0;
    int i;
    assert_int_equal(sscanf(line, "user:%03d", &i), 1);
    assert_true(i >= 0 && i < 300);
    assert_int_equal(seen[i], 0);
    seen[i] = 1;
    lines++;
    line = nl ? nl + 1 : NULL;
  }
  assert_int_equal(lines, 300);
  assert_int_equal(run_tool("redis-cli", "--scan --pattern 'user:1?5'", NULL,
                            out, sizeof(out)),
                   0);
  assert_string_equal(out, "user:105\nuser:115\nuser:125\nuser:135\nuser:145\n"
                           "user:155\nuser:165\nuser:175\nuser:185\nuser:195");
  /* a cursor by hand: the first page hands one out, it continues */
  const char *page = cli("SCAN 0 MATCH user:* COUNT 5");
  char cursor[32];
  assert_int_equal(sscanf(page, "%31s", cursor), 1);
  assert_string_not_equal(cursor, "0");
  char args[128];
  snprintf(args, sizeof(args), "SCAN %s MATCH user:* COUNT 5", cursor);
  page = cli(args);
  assert_non_null(strstr(page, "user:005\nuser:006"));
  assert_non_null(strstr(cli("SCAN 987654321"), "ERR invalid cursor"));
}

static void expect_proto_error(const char *req, size_t n, const char *want) {
  int fd = raw_connect();
  send_all(fd, req, n);
  char got[512];
  int closed;
  recv_upto(fd, got, sizeof(got), 0, &closed);
  assert_true(closed);
  assert_string_equal(got, want);
  close(fd);
  /* the proxy serves on */
  assert_string_equal(cli("PING"), "PONG");
}

static void test_malformed_requests(void **state) {
  (void)state;
  /* a good command before the bad one is answered first */
  static const char neg[] = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$-5\r\n";
  expect_proto_error(neg, sizeof(neg) - 1,
                     "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
  static const char huge[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n";
  expect_proto_error(huge, sizeof(huge) - 1,
                     "-ERR Protocol error: invalid bulk length\r\n");
  static const char nonnum[] = "*2\r\n$3\r\nGET\r\n$1x\r\nk\r\n";
  expect_proto_error(nonnum, sizeof(nonnum) - 1,
                     "-ERR Protocol error: invalid bulk length\r\n");
  static const char count[] = "*abc\r\n";
  expect_proto_error(count, sizeof(count) - 1,
                     "-ERR Protocol error: invalid multibulk length\r\n");
  static const char dollar[] = "*1\r\n:12\r\n";
  expect_proto_error(dollar, sizeof(dollar) - 1,
                     "-ERR Protocol error: expected '$', got ':'\r\n");
  static const char quotes[] = "SET \"k v\r\n";
  expect_proto_error(quotes, sizeof(quotes) - 1,
                     "-ERR Protocol error: unbalanced quotes in request\r\n");
  /* truncated: the client goes away mid-request; nothing is stored */
  int fd = raw_connect();
  static const char trunc[] = "*3\r\n$3\r\nSET\r\n$5\r\ntrunc\r\n$5\r\nhal";
  send_all(fd, trunc, sizeof(trunc) - 1);
  close(fd);
  assert_string_equal(cli("PING"), "PONG");
  assert_string_equal(cli("EXISTS trunc"), "0");
}

static void test_oversized_key_and_value(void **state) {
  (void)state;
  static char big[TEEX_DS_VALUE_MAX + 2];
  memset(big, 'v', TEEX_DS_VALUE_MAX + 1);
  big[TEEX_DS_VALUE_MAX + 1] = 0;
  /* redis-cli -x: the last argument from stdin */
  assert_int_equal(
      run_tool("redis-cli", "-x SET bigval", big, out, sizeof(out)), 0);
  assert_non_null(strstr(out, "ERR value too large (at most 65536 bytes)"));
  assert_string_equal(cli("EXISTS bigval"), "0");
  big[TEEX_DS_VALUE_MAX] = 0; /* exactly the maximum */
  assert_int_equal(
      run_tool("redis-cli", "-x SET bigval", big, out, sizeof(out)), 0);
  assert_string_equal(out, "OK");
  assert_string_equal(cli("STRLEN bigval"), "65536");
  assert_string_equal(cli("DEL bigval"), "1");
  static char args[2048];
  char key[600];
  memset(key, 'k', 508); /* 512 - "app/" */
  key[508] = 0;
  snprintf(args, sizeof(args), "SET %s v", key);
  assert_string_equal(cli(args), "OK");
  snprintf(args, sizeof(args), "SET %sk v", key);
  assert_non_null(strstr(cli(args), "ERR key too long (at most 508 bytes"));
  snprintf(args, sizeof(args), "DEL %s", key);
  assert_string_equal(cli(args), "1");
}

/* redis-benchmark runs to completion; INCR on its counter key counts every
 * request exactly once. */
static void test_redis_benchmark(void **state) {
  (void)state;
  assert_int_equal(run_tool("redis-benchmark",
                            "-n 2000 -c 8 -P 4 -t set,get,incr -q", NULL, out,
                            sizeof(out)),
                   0);
  assert_non_null(strstr(out, "SET: "));
  assert_non_null(strstr(out, "GET: "));
  assert_non_null(strstr(out, "INCR: "));
  assert_string_equal(cli("GET counter:__rand_int__"), "2000");
  assert_string_equal(cli("STRLEN key:__rand_int__"), "3"); /* -d 3 */
  assert_string_equal(cli("DEL counter:__rand_int__ key:__rand_int__"), "2");
}

/* ---- the loopback-only check ---- */

static int fake_resolve(const char *host, const char *port,
                        const struct addrinfo *hints, struct addrinfo **res) {
  (void)port;
  (void)hints;
  /* "evil.test" resolves to loopback and to a public address;
   * "outside.test" only elsewhere; anything else fails. */
  int n = strcmp(host, "evil.test") == 0      ? 2
          : strcmp(host, "outside.test") == 0 ? 1
                                              : 0;
  if (n == 0)
    return EAI_NONAME;
  struct addrinfo *head = NULL;
  for (int i = n - 1; i >= 0; i--) {
    struct addrinfo *ai = calloc(1, sizeof(*ai));
    struct sockaddr_in *sin = calloc(1, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr =
        htonl(i == 0 && n == 2 ? INADDR_LOOPBACK : 0xC0000207u); /* 192.0.2.7 */
    ai->ai_family = AF_INET;
    ai->ai_addr = (struct sockaddr *)sin;
    ai->ai_addrlen = sizeof(*sin);
    ai->ai_next = head;
    head = ai;
  }
  *res = head;
  return 0;
}

static void fake_free(struct addrinfo *res) {
  while (res) {
    struct addrinfo *next = res->ai_next;
    free(res->ai_addr);
    free(res);
    res = next;
  }
}

static void test_loopback_only(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  struct teex_err err;
  const char *ok[] = {"127.0.0.1:0", "127.9.8.7:6379", "[::1]:0", "localhost:0",
                      "[::ffff:127.0.0.1]:0"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    assert_int_equal(teex_ds_proxy_check_listen(ok[i], NULL, NULL, &ss, &err),
                     0);
  const char *refused[] = {"0.0.0.0:6379",        "[::]:6379",
                           "10.1.2.3:6379",       "192.0.2.1:1",
                           "[::ffff:10.0.0.1]:1", "[2001:db8::1]:1"};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    assert_int_equal(
        teex_ds_proxy_check_listen(refused[i], NULL, NULL, &ss, &err),
        TEEX_EPERM);
    assert_non_null(strstr(err.msg, "not loopback"));
  }
  /* names: one that resolves partly elsewhere, one only elsewhere */
  assert_int_equal(teex_ds_proxy_check_listen("evil.test:1", fake_resolve,
                                              fake_free, &ss, &err),
                   TEEX_EPERM);
  assert_non_null(strstr(err.msg, "192.0.2.7"));
  assert_int_equal(teex_ds_proxy_check_listen("outside.test:1", fake_resolve,
                                              fake_free, &ss, &err),
                   TEEX_EPERM);
  assert_int_equal(teex_ds_proxy_check_listen("nowhere.test:1", fake_resolve,
                                              fake_free, &ss, &err),
                   TEEX_EINVAL);
  const char *bad[] = {"",       "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                       "[::1:5", ":6379"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(teex_ds_proxy_check_listen(bad[i], NULL, NULL, &ss, &err),
                     TEEX_EINVAL);
  /* the proxy itself refuses to start, and listens on nothing */
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct teex_ds_proxy *px = NULL;
  struct teex_ds_proxy_config cfg = {
      .listen = "0.0.0.0:0", .ns = "app", .backend = srv.backend};
  assert_int_equal(teex_ds_proxy_start(&loop, &cfg, &px, &err), TEEX_EPERM);
  assert_null(px);
  cfg.listen = "evil.test:0";
  cfg.resolve = fake_resolve;
  cfg.freeaddr = fake_free;
  assert_int_equal(teex_ds_proxy_start(&loop, &cfg, &px, &err), TEEX_EPERM);
  cfg.listen = "127.0.0.1:0";
  cfg.resolve = NULL;
  cfg.ns = "Not/A/Namespace";
  assert_int_equal(teex_ds_proxy_start(&loop, &cfg, &px, &err), TEEX_EINVAL);
  assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_redis_cli_round_trips),
      cmocka_unit_test(test_ttl_on_group_clock),
      cmocka_unit_test(test_pipelining_raw),
      cmocka_unit_test(test_pipeline_out_of_order_answers),
      cmocka_unit_test(test_scan_pages),
      cmocka_unit_test(test_malformed_requests),
      cmocka_unit_test(test_oversized_key_and_value),
      cmocka_unit_test(test_redis_benchmark),
      cmocka_unit_test(test_loopback_only),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
