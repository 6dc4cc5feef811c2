/* Redis commands on TEE-DS (src/ds/resp_cmds.c), run against the real
 * state machine: replies and reply types as Redis gives them, the key
 * namespace mapping, limits, expiry on the group clock, SCAN cursors. */
#include "testutil.h"

#include "ds/resp_cmds.h"
#include "teex/ds_place.h"

#include <stdio.h>
#include <string.h>

struct env {
  struct teex_ds_kv *kv;
  uint64_t clock;
  uint64_t index;
  struct teex_resp_session s;
  struct teex_resp_cursors cursors;
  struct teex_resp_call c;
  struct teex_resp_parser p;
  struct teex_resp_cmd cmd;
  struct teex_buf out;
  int execs; /* TEE-DS commands run by the last RESP command */
};

static struct env *env_new(const char *ns) {
  struct env *e = calloc(1, sizeof(*e));
  assert_non_null(e);
  assert_int_equal(teex_ds_kv_new(&e->kv), 0);
  e->clock = 1000000;
  assert_int_equal(teex_resp_session_init(&e->s, ns, 7), 0);
  e->s.cursors = &e->cursors;
  teex_resp_parser_init(&e->p);
  teex_buf_init(&e->out, 1 << 20, 0);
  return e;
}

static void env_free(struct env *e) {
  teex_resp_call_reset(&e->c);
  teex_resp_parser_free(&e->p);
  teex_buf_free(&e->out);
  teex_ds_kv_free(e->kv);
  free(e);
}

/* Runs one request (raw RESP or an inline line) and returns its reply as a
 * NUL-terminated string (valid until the next call). Every TEE-DS command
 * goes through encode/decode and the state machine at the env's clock. */
static const char *req_n(struct env *e, const char *req, size_t n) {
  teex_buf_reset(&e->out);
  e->execs = 0;
  assert_int_equal(teex_resp_parser_feed(&e->p, (const uint8_t *)req, n), 0);
  assert_int_equal(teex_resp_parser_next(&e->p, &e->cmd), 1);
  int rc = teex_resp_call_begin(&e->s, &e->c, &e->cmd, &e->out);
  while (rc == TEEX_RESP_EXEC) {
    uint8_t *enc;
    size_t len;
    struct teex_err err;
    struct teex_ds_result res;
    struct teex_ds_cmd_view v;
    assert_int_equal(teex_ds_cmd_encode(&e->c.cmd, &enc, &len, &err), 0);
    assert_int_equal(teex_ds_cmd_decode(enc, len, &v, &err), 0);
    assert_int_equal(
        teex_ds_kv_apply(e->kv, ++e->index, e->clock, &v.cmd, &res), 0);
    free(enc);
    e->execs++;
    rc = teex_resp_call_next(&e->s, &e->c, 0, &res, &e->out);
    teex_ds_result_free(&res);
  }
  assert_int_equal(rc, TEEX_RESP_DONE);
  assert_int_equal(teex_buf_putc(&e->out, 0), 0);
  return (const char *)e->out.data;
}

static const char *req(struct env *e, const char *line) {
  char buf[2048];
  int n = snprintf(buf, sizeof(buf), "%s\r\n", line);
  return req_n(e, buf, (size_t)n);
}

/* The raw state machine value of a full key, or NULL. */
static int kv_has(struct env *e, const char *full) {
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = e->s.ns};
  c.key = (const uint8_t *)full;
  c.key_len = strlen(full);
  struct teex_ds_result r;
  assert_int_equal(teex_ds_kv_read(e->kv, &c, &r), 0);
  int found = r.status == 0;
  teex_ds_result_free(&r);
  return found;
}

static void test_get_set_options(void **state) {
  (void)state;
  struct env *e = env_new("app");
  assert_string_equal(req(e, "GET k"), "$-1\r\n");
  assert_string_equal(req(e, "SET k hello"), "+OK\r\n");
  assert_string_equal(req(e, "get k"), "$5\r\nhello\r\n");
  assert_true(kv_has(e, "app/k")); /* stored under the namespace */
  assert_false(kv_has(e, "k"));
  assert_string_equal(req(e, "SET k x NX"), "$-1\r\n");
  assert_string_equal(req(e, "SET k2 x XX"), "$-1\r\n");
  assert_string_equal(req(e, "GET k2"), "$-1\r\n");
  assert_string_equal(req(e, "SET k2 x nx"), "+OK\r\n");
  assert_string_equal(req(e, "SET k world XX"), "+OK\r\n");
  assert_string_equal(req(e, "GET k"), "$5\r\nworld\r\n");
  assert_string_equal(req(e, "SETNX k v"), ":0\r\n");
  assert_string_equal(req(e, "SETNX k3 v"), ":1\r\n");
  assert_string_equal(req(e, "STRLEN k"), ":5\r\n");
  assert_string_equal(req(e, "STRLEN nope"), ":0\r\n");
  /* refusals: nothing run, nothing stored */
  assert_string_equal(req(e, "SET k v NX XX"), "-ERR syntax error\r\n");
  assert_string_equal(req(e, "SET k v EX 1 PX 5"), "-ERR syntax error\r\n");
  assert_string_equal(req(e, "SET k v BOGUS"), "-ERR syntax error\r\n");
  assert_string_equal(req(e, "SET k v EX"), "-ERR syntax error\r\n");
  assert_string_equal(req(e, "SET k v EX 0"),
                      "-ERR invalid expire time in 'set' command\r\n");
  assert_string_equal(req(e, "SET k v EX abc"),
                      "-ERR value is not an integer or out of range\r\n");
  assert_string_equal(req(e, "SET k v EX 999999999999"),
                      "-ERR invalid expire time in 'set' command\r\n");
  assert_non_null(strstr(req(e, "SET k v GET"), "GET is not supported"));
  assert_non_null(strstr(req(e, "SET k v EXAT 5"), "not supported"));
  assert_int_equal(e->execs, 0);
  assert_string_equal(req(e, "GET k"), "$5\r\nworld\r\n");
  assert_string_equal(req(e, "SET"),
                      "-ERR wrong number of arguments for 'set' command\r\n");
  assert_string_equal(req(e, "GET a b"),
                      "-ERR wrong number of arguments for 'get' command\r\n");
  assert_string_equal(
      req(e, "FLUSHALL now"),
      "-ERR unknown command 'FLUSHALL', with args beginning with: 'now' \r\n");
  env_free(e);
}

static void test_ttl_expire_persist(void **state) {
  (void)state;
  struct env *e = env_new("app");
  assert_string_equal(req(e, "TTL k"), ":-2\r\n");
  assert_string_equal(req(e, "PTTL k"), ":-2\r\n");
  assert_string_equal(req(e, "SET k v"), "+OK\r\n");
  assert_string_equal(req(e, "TTL k"), ":-1\r\n");
  assert_string_equal(req(e, "EXPIRE k 10"), ":1\r\n");
  e->clock += 2400;
  assert_string_equal(req(e, "PTTL k"), ":7600\r\n");
  assert_string_equal(req(e, "TTL k"), ":8\r\n"); /* 7.6 s rounds to 8 */
  assert_string_equal(req(e, "PERSIST k"), ":1\r\n");
  assert_string_equal(req(e, "PERSIST k"), ":0\r\n"); /* had none */
  assert_string_equal(req(e, "TTL k"), ":-1\r\n");
  assert_string_equal(req(e, "PEXPIRE k 1500"), ":1\r\n");
  e->clock += 1499;
  assert_string_equal(req(e, "GET k"), "$1\r\nv\r\n");
  e->clock += 1;
  assert_string_equal(req(e, "GET k"), "$-1\r\n");
  assert_string_equal(req(e, "TTL k"), ":-2\r\n");
  assert_string_equal(req(e, "EXPIRE k 10"), ":0\r\n");
  assert_string_equal(req(e, "PERSIST k"), ":0\r\n");
  /* SET EX / PX / SETEX / KEEPTTL */
  assert_string_equal(req(e, "SET s v EX 100"), "+OK\r\n");
  assert_string_equal(req(e, "PTTL s"), ":100000\r\n");
  assert_string_equal(req(e, "SET s w KEEPTTL"), "+OK\r\n");
  assert_string_equal(req(e, "PTTL s"), ":100000\r\n");
  assert_string_equal(req(e, "SET s x"), "+OK\r\n"); /* plain SET clears */
  assert_string_equal(req(e, "TTL s"), ":-1\r\n");
  assert_string_equal(req(e, "SET s x PX 250"), "+OK\r\n");
  assert_string_equal(req(e, "PTTL s"), ":250\r\n");
  assert_string_equal(req(e, "SETEX t 5 v"), "+OK\r\n");
  assert_string_equal(req(e, "TTL t"), ":5\r\n");
  assert_string_equal(req(e, "PSETEX t 5 v"), "+OK\r\n");
  assert_string_equal(req(e, "PTTL t"), ":5\r\n");
  /* a non-positive EXPIRE deletes, as in Redis */
  assert_string_equal(req(e, "EXPIRE s 0"), ":1\r\n");
  assert_string_equal(req(e, "EXISTS s"), ":0\r\n");
  assert_string_equal(req(e, "EXPIRE s -5"), ":0\r\n");
  assert_string_equal(req(e, "EXPIRE t x"),
                      "-ERR value is not an integer or out of range\r\n");
  assert_non_null(strstr(req(e, "EXPIRE t 5 NX"), "not supported"));
  assert_string_equal(req(e, "EXPIRE t 999999999999"),
                      "-ERR invalid expire time in 'expire' command\r\n");
  /* INCR keeps the TTL */
  assert_string_equal(req(e, "SET n 1 EX 50"), "+OK\r\n");
  assert_string_equal(req(e, "INCR n"), ":2\r\n");
  assert_string_equal(req(e, "TTL n"), ":50\r\n");
  env_free(e);
}

static void test_multi_key(void **state) {
  (void)state;
  struct env *e = env_new("app");
  assert_string_equal(req(e, "MSET a 1 b 2 c 3"), "+OK\r\n");
  assert_int_equal(e->execs, 1); /* one atomic multi-set */
  assert_string_equal(req(e, "MGET a nope c"),
                      "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n");
  assert_string_equal(req(e, "EXISTS a b nope a"), ":3\r\n");
  assert_string_equal(req(e, "DEL a nope b"), ":2\r\n");
  assert_int_equal(e->execs, 3);
  assert_string_equal(req(e, "MGET a b c"), "*3\r\n$-1\r\n$-1\r\n$1\r\n3\r\n");
  assert_string_equal(req(e, "MSET a 1 b"),
                      "-ERR wrong number of arguments for 'mset' command\r\n");
  /* more pairs than one multi-set holds: refused, nothing written */
  char line[2048];
  int n = snprintf(line, sizeof(line), "MSET");
  for (int i = 0; i <= TEEX_DS_MSET_MAX; i++)
    n += snprintf(line + n, sizeof(line) - (size_t)n, " m%d v", i);
  assert_non_null(strstr(req(e, line), "MSET of more than 64 keys"));
  assert_string_equal(req(e, "EXISTS m0"), ":0\r\n");
  assert_string_equal(req(e, "DBSIZE"), ":1\r\n");
  env_free(e);
}

static void test_incr_family(void **state) {
  (void)state;
  struct env *e = env_new("app");
  assert_string_equal(req(e, "INCR n"), ":1\r\n");
  assert_string_equal(req(e, "INCRBY n 41"), ":42\r\n");
  assert_string_equal(req(e, "DECR n"), ":41\r\n");
  assert_string_equal(req(e, "DECRBY n 50"), ":-9\r\n");
  assert_string_equal(req(e, "GET n"), "$2\r\n-9\r\n");
  assert_string_equal(req(e, "INCRBY n x"),
                      "-ERR value is not an integer or out of range\r\n");
  assert_string_equal(req(e, "DECRBY n -9223372036854775808"),
                      "-ERR decrement would overflow\r\n");
  assert_string_equal(req(e, "SET s abc"), "+OK\r\n");
  assert_string_equal(req(e, "INCR s"),
                      "-ERR value is not an integer or out of range\r\n");
  assert_string_equal(req(e, "SET big 9223372036854775807"), "+OK\r\n");
  assert_string_equal(req(e, "INCR big"),
                      "-ERR increment or decrement would overflow\r\n");
  assert_string_equal(req(e, "GET big"), "$19\r\n9223372036854775807\r\n");
  env_free(e);
}

static void test_limits(void **state) {
  (void)state;
  struct env *e = env_new("app");
  size_t kmax = TEEX_DS_KEY_MAX - 4; /* "app/" */
  static char big[TEEX_DS_VALUE_MAX + 200];
  /* the longest key fits; one byte more is refused */
  char *r = malloc(2 * TEEX_DS_VALUE_MAX);
  int n =
      snprintf(r, 2 * TEEX_DS_VALUE_MAX, "*3\r\n$3\r\nSET\r\n$%zu\r\n", kmax);
  memset(r + n, 'k', kmax);
  n += (int)kmax;
  n += snprintf(r + n, 64, "\r\n$1\r\nv\r\n");
  assert_string_equal(req_n(e, r, (size_t)n), "+OK\r\n");
  n = snprintf(r, 64, "*3\r\n$3\r\nSET\r\n$%zu\r\n", kmax + 1);
  memset(r + n, 'q', kmax + 1);
  n += (int)kmax + 1;
  n += snprintf(r + n, 64, "\r\n$1\r\nv\r\n");
  assert_non_null(strstr(req_n(e, r, (size_t)n), "ERR key too long"));
  assert_int_equal(e->execs, 0);
  /* a value of TEEX_DS_VALUE_MAX fits; one byte more is refused */
  memset(big, 'v', sizeof(big));
  for (size_t len = TEEX_DS_VALUE_MAX; len <= TEEX_DS_VALUE_MAX + 1; len++) {
    n = snprintf(r, 64, "*3\r\n$3\r\nSET\r\n$2\r\nbv\r\n$%zu\r\n", len);
    memcpy(r + n, big, len);
    n += (int)len;
    n += snprintf(r + n, 8, "\r\n");
    const char *rep = req_n(e, r, (size_t)n);
    if (len == TEEX_DS_VALUE_MAX)
      assert_string_equal(rep, "+OK\r\n");
    else
      assert_non_null(strstr(rep, "ERR value too large"));
  }
  assert_string_equal(req(e, "STRLEN bv"), ":65536\r\n");
  assert_string_equal(req(e, "DBSIZE"), ":2\r\n");
  free(r);
  env_free(e);
}

/* Keys of another namespace in the same group are invisible. */
static void test_namespace_isolation(void **state) {
  (void)state;
  struct env *e = env_new("app");
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "other"};
  c.key = (const uint8_t *)"other/k";
  c.key_len = 7;
  c.val = (const uint8_t *)"secret";
  c.val_len = 6;
  struct teex_ds_result res;
  assert_int_equal(teex_ds_kv_apply(e->kv, 1, e->clock, &c, &res), 0);
  assert_int_equal(res.status, 0);
  assert_string_equal(req(e, "GET k"), "$-1\r\n");
  assert_string_equal(req(e, "GET ../other/k"), "$-1\r\n");
  assert_string_equal(req(e, "DBSIZE"), ":0\r\n");
  assert_string_equal(req(e, "SCAN 0"), "*2\r\n$1\r\n0\r\n*0\r\n");
  assert_int_not_equal(teex_resp_session_init(&e->s, "Bad/NS", 1), 0);
  assert_int_not_equal(teex_resp_session_init(&e->s, "", 1), 0);
  env_free(e);
}

static void test_scan_cursor_and_match(void **state) {
  (void)state;
  struct env *e = env_new("app");
  char line[64];
  for (int i = 0; i < 25; i++) {
    snprintf(line, sizeof(line), "SET user:%02d x", i);
    assert_string_equal(req(e, line), "+OK\r\n");
  }
  assert_string_equal(req(e, "SET other y"), "+OK\r\n");
  /* page through with COUNT 10: 3 pages, every key once, cursor 0 last */
  char cursor[32] = "0";
  int seen = 0, pages = 0;
  do {
    snprintf(line, sizeof(line), "SCAN %s MATCH user:* COUNT 10", cursor);
    const char *rep = req(e, line);
    /* *2 $len cursor *n keys... */
    assert_memory_equal(rep, "*2\r\n$", 5);
    const char *p = strchr(rep + 5, '\n') + 1;
    size_t cl = (size_t)(strchr(p, '\r') - p);
    memcpy(cursor, p, cl);
    cursor[cl] = 0;
    p = strchr(p, '\n') + 1;
    assert_int_equal(*p, '*');
    int n = (int)strtol(p + 1, NULL, 10);
    for (int k = 0; k < n; k++) {
      p = strchr(p, '\n') + 1; /* $len */
      p = strchr(p, '\n') + 1; /* key */
      char want[16];
      snprintf(want, sizeof(want), "user:%02d\r", seen++);
      assert_memory_equal(p, want, strlen(want)); /* prefix stripped */
    }
    pages++;
  } while (strcmp(cursor, "0") != 0 && pages < 10);
  assert_int_equal(seen, 25);
  assert_int_equal(pages, 3);
  /* a pattern filters inside the page */
  assert_string_equal(req(e, "SCAN 0 MATCH user:?3 COUNT 100"),
                      "*2\r\n$1\r\n0\r\n*3\r\n$7\r\nuser:03\r\n$7\r\n"
                      "user:13\r\n$7\r\nuser:23\r\n");
  assert_string_equal(req(e, "SCAN 0 MATCH *her COUNT 100"),
                      "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n");
  assert_string_equal(req(e, "SCAN 0 TYPE hash COUNT 100"),
                      "*2\r\n$1\r\n0\r\n*0\r\n");
  assert_string_equal(req(e, "SCAN 12345"),
                      "-ERR invalid cursor (unknown or expired; restart the "
                      "scan from 0)\r\n");
  assert_string_equal(req(e, "SCAN abc"), "-ERR invalid cursor\r\n");
  assert_string_equal(req(e, "SCAN 0 COUNT 0"), "-ERR syntax error\r\n");
  assert_string_equal(req(e, "SCAN 0 MATCH"), "-ERR syntax error\r\n");
  assert_non_null(strstr(req(e, "KEYS *"), "use SCAN"));
  /* a cursor stays valid until TEEX_RESP_CURSORS newer ones were handed
   * out, then it is refused rather than misread */
  const char *rep = req(e, "SCAN 0 COUNT 1");
  char first[32];
  assert_int_equal(sscanf(strchr(rep + 5, '\n') + 1, "%31[0-9]", first), 1);
  for (int i = 0; i < TEEX_RESP_CURSORS - 1; i++)
    req(e, "SCAN 0 COUNT 1");
  snprintf(line, sizeof(line), "SCAN %s COUNT 1", first);
  assert_memory_equal(req(e, line), "*2\r\n", 4);
  req(e, "SCAN 0 COUNT 1");
  assert_non_null(strstr(req(e, line), "ERR invalid cursor"));
  env_free(e);
}

static void test_glob(void **state) {
  (void)state;
#define G(p, s)                                                                \
  teex_resp_glob((const uint8_t *)p, strlen(p), (const uint8_t *)s, strlen(s))
  assert_true(G("*", ""));
  assert_true(G("a*c", "abbbc"));
  assert_false(G("a*c", "abbbd"));
  assert_true(G("h?llo", "hello"));
  assert_true(G("h[ae]llo", "hallo"));
  assert_false(G("h[^e]llo", "hello"));
  assert_true(G("h[a-f]llo", "hcllo"));
  assert_true(G("a\\*", "a*"));
  assert_false(G("a\\*", "ab"));
  assert_true(G("*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
  assert_false(G("*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
#undef G
}

static void info_cb(void *arg, struct teex_ds_backend_info *in) {
  (void)arg;
  in->backend = "test backend";
  in->known = 1;
  in->leader = 1;
  in->replicas = 3;
  in->term = 4;
}

static void test_server_commands(void **state) {
  (void)state;
  struct env *e = env_new("app");
  e->s.info = info_cb;
  assert_string_equal(req(e, "PING"), "+PONG\r\n");
  assert_string_equal(req(e, "PING hi"), "$2\r\nhi\r\n");
  assert_string_equal(req(e, "ECHO \"a b\""), "$3\r\na b\r\n");
  assert_string_equal(req(e, "SELECT 0"), "+OK\r\n");
  assert_string_equal(req(e, "SELECT 1"), "-ERR DB index is out of range\r\n");
  assert_non_null(strstr(req(e, "COMMAND DOCS"), "-ERR COMMAND DOCS"));
  assert_string_equal(req(e, "COMMAND"), "*0\r\n");
  assert_string_equal(req(e, "CONFIG GET save"), "*0\r\n");
  assert_string_equal(req(e, "CLIENT GETNAME"), "$-1\r\n");
  assert_string_equal(req(e, "CLIENT SETNAME tool"), "+OK\r\n");
  assert_string_equal(req(e, "CLIENT GETNAME"), "$4\r\ntool\r\n");
  assert_string_equal(req(e, "CLIENT ID"), ":7\r\n");
  assert_non_null(strstr(req(e, "CLIENT SETNAME \"a b\""), "cannot contain"));
  assert_non_null(strstr(req(e, "HELLO 3"), "-NOPROTO"));
  assert_non_null(strstr(req(e, "HELLO 2"), "$5\r\nproto\r\n:2\r\n"));
  assert_non_null(strstr(req(e, "HELLO 2 AUTH u p"), "AUTH is not supported"));
  assert_string_equal(req(e, "SET a 1"), "+OK\r\n");
  const char *info = req(e, "INFO");
  assert_non_null(strstr(info, "# Server\r\n"));
  assert_non_null(strstr(info, "TEE-DS"));
  assert_non_null(strstr(info, "namespace:app\r\n"));
  assert_non_null(strstr(info, "backend:test backend\r\n"));
  assert_non_null(strstr(info, "ds_role:leader\r\n"));
  assert_non_null(strstr(info, "# Keyspace\r\ndb0:keys=1\r\n"));
  info = req(e, "INFO keyspace");
  assert_null(strstr(info, "# Server"));
  assert_string_equal(req(e, "INFO cpu"), "$0\r\n\r\n");
  assert_int_equal(e->s.quit, 0);
  assert_string_equal(req(e, "QUIT"), "+OK\r\n");
  assert_int_equal(e->s.quit, 1);
  env_free(e);
}

/* A backend that cannot run the command: a clear error; a write says it
 * may have happened. */
static void test_backend_failure(void **state) {
  (void)state;
  struct env *e = env_new("app");
  assert_int_equal(
      teex_resp_parser_feed(&e->p, (const uint8_t *)"SET k v\r\nGET k\r\n", 16),
      0);
  assert_int_equal(teex_resp_parser_next(&e->p, &e->cmd), 1);
  assert_int_equal(teex_resp_call_begin(&e->s, &e->c, &e->cmd, &e->out),
                   TEEX_RESP_EXEC);
  assert_int_equal(
      teex_resp_call_next(&e->s, &e->c, TEEX_ESTATE, NULL, &e->out), 0);
  assert_int_equal(teex_buf_putc(&e->out, 0), 0);
  assert_non_null(strstr((char *)e->out.data, "-ERR TEE-DS unavailable"));
  assert_non_null(strstr((char *)e->out.data, "may or may not"));
  teex_buf_reset(&e->out);
  assert_int_equal(teex_resp_parser_next(&e->p, &e->cmd), 1);
  assert_int_equal(teex_resp_call_begin(&e->s, &e->c, &e->cmd, &e->out),
                   TEEX_RESP_EXEC);
  assert_int_equal(e->c.read_mode, TEEX_RESP_READ_LINEARIZABLE);
  assert_int_equal(teex_resp_call_next(&e->s, &e->c, TEEX_ECONN, NULL, &e->out),
                   0);
  assert_int_equal(teex_buf_putc(&e->out, 0), 0);
  assert_null(strstr((char *)e->out.data, "may or may not"));
  env_free(e);
}

/* Scale-out: a namespace frozen for a move refuses writes with Redis
 * Cluster's -TRYAGAIN (reads go on); once moved, -MOVED. */
static void test_moving_namespace(void **state) {
  (void)state;
  struct env *e = env_new("app");
  assert_string_equal(req(e, "SET k v"), "+OK\r\n");
  for (uint8_t st = TEEX_DS_PLACE_FROZEN; st <= TEEX_DS_PLACE_MOVED; st++) {
    struct teex_ds_place_record r = {st, 2, 2, NULL, 0};
    uint8_t *b;
    size_t n;
    assert_int_equal(teex_ds_place_record_encode(&r, &b, &n), 0);
    struct teex_ds_cmd c = {
        .op = TEEX_DS_PLACE, .grant = "app", .val = b, .val_len = n};
    struct teex_ds_result res;
    assert_int_equal(teex_ds_kv_apply(e->kv, ++e->index, e->clock, &c, &res),
                     0);
    assert_int_equal(res.status, 0);
    teex_ds_result_free(&res);
    free(b);
    if (st == TEEX_DS_PLACE_FROZEN) {
      assert_string_equal(req(e, "GET k"), "$1\r\nv\r\n");
      assert_true(strncmp(req(e, "SET k w"), "-TRYAGAIN ", 10) == 0);
    } else {
      assert_true(strncmp(req(e, "GET k"), "-MOVED ", 7) == 0);
      assert_true(strncmp(req(e, "SET k w"), "-MOVED ", 7) == 0);
    }
  }
  env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_set_options),
      cmocka_unit_test(test_ttl_expire_persist),
      cmocka_unit_test(test_multi_key),
      cmocka_unit_test(test_incr_family),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_namespace_isolation),
      cmocka_unit_test(test_scan_cursor_and_match),
      cmocka_unit_test(test_glob),
      cmocka_unit_test(test_server_commands),
      cmocka_unit_test(test_backend_failure),
      cmocka_unit_test(test_moving_namespace),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
