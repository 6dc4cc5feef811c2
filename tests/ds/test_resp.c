/* RESP2 codec: requests in any split, inline commands, every protocol
 * error the proxy answers before closing, limits, and the reply encoder. */
#include "testutil.h"

#include "ds/resp.h"

#include <stdio.h>
#include <string.h>

static struct teex_resp_cmd cmd;

/* Parses all of s fed in pieces of `piece` bytes (0: at once); returns the
 * commands as "ARG ARG|ARG|" and the final status. */
static int parse_all(const char *s, size_t n, size_t piece, char *out,
                     size_t out_size, char *err, size_t err_size) {
  struct teex_resp_parser p;
  teex_resp_parser_init(&p);
  size_t o = 0, from = 0;
  int rc = 0;
  out[0] = 0;
  if (piece == 0)
    piece = n ? n : 1;
  while (rc >= 0) {
    size_t take = n - from < piece ? n - from : piece;
    assert_int_equal(teex_resp_parser_feed(&p, (const uint8_t *)s + from, take),
                     0);
    from += take;
    while ((rc = teex_resp_parser_next(&p, &cmd)) == 1) {
      for (size_t i = 0; i < cmd.argc; i++) {
        assert_true(o + cmd.argv[i].len + 2 < out_size);
        if (i)
          out[o++] = ' ';
        memcpy(out + o, cmd.argv[i].p, cmd.argv[i].len);
        o += cmd.argv[i].len;
      }
      out[o++] = '|';
      out[o] = 0;
    }
    if (from == n)
      break;
  }
  if (err)
    snprintf(err, err_size, "%s", rc < 0 ? p.err : "");
  teex_resp_parser_free(&p);
  return rc;
}

static void expect_cmds(const char *s, size_t n, const char *want) {
  char out[4096];
  /* the same commands whatever the split */
  for (size_t piece = 0; piece <= n; piece++) {
    assert_int_equal(parse_all(s, n, piece, out, sizeof(out), NULL, 0), 0);
    assert_string_equal(out, want);
  }
}

static void expect_error(const char *s, size_t n, const char *want_before,
                         const char *want_err) {
  char out[4096], err[256];
  for (size_t piece = 0; piece <= n; piece++) {
    assert_int_equal(parse_all(s, n, piece, out, sizeof(out), err, sizeof(err)),
                     TEEX_EPROTO);
    assert_string_equal(out, want_before);
    assert_string_equal(err, want_err);
  }
}

#define STR(x) x, sizeof(x) - 1

static void test_multibulk_any_split(void **state) {
  (void)state;
  expect_cmds(STR("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhe\r\no\r\n"),
              "SET k he\r\no|");
  /* a pipeline of three, an empty bulk, and empty requests skipped */
  expect_cmds(
      STR("*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
          "*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"),
      "PING|GET |ECHO hi|");
  /* binary bytes pass through untouched */
  char out[256];
  static const char bin[] = "*2\r\n$3\r\nGET\r\n$3\r\n\x00\xff\n\r\n";
  assert_int_equal(
      parse_all(bin, sizeof(bin) - 1, 1, out, sizeof(out), NULL, 0), 0);
  assert_memory_equal(out, "GET \x00\xff\n|", 8);
  /* incomplete: nothing yet */
  assert_int_equal(
      parse_all(STR("*2\r\n$3\r\nGET\r\n$1\r\n"), 0, out, sizeof(out), NULL, 0),
      0);
  assert_string_equal(out, "");
}

static void test_inline_commands(void **state) {
  (void)state;
  expect_cmds(STR("PING\r\nset  k v\n\r\n   \nGET k\r\n"),
              "PING|set k v|GET k|");
  expect_cmds(STR("SET \"a b\\x41\\n\" 'it\\'s' \"\"\r\n"),
              "SET a bA\n it's |");
}

static void test_protocol_errors(void **state) {
  (void)state;
  expect_error(STR("PING\r\n*x\r\n"), "PING|",
               "Protocol error: invalid multibulk length");
  expect_error(STR("*1\r\n$-1\r\n"), "", "Protocol error: invalid bulk length");
  expect_error(STR("*1\r\n$abc\r\n"), "",
               "Protocol error: invalid bulk length");
  expect_error(STR("*1\r\n$+3\r\nabc\r\n"), "",
               "Protocol error: invalid bulk length");
  expect_error(STR("*2\r\n$3\r\nGET\r\n:1\r\n"), "",
               "Protocol error: expected '$', got ':'");
  expect_error(STR("*1\r\n$3\r\nGETxx"), "",
               "Protocol error: bulk string not followed by CRLF");
  expect_error(STR("*99999\r\n"), "",
               "Protocol error: invalid multibulk length");
  expect_error(STR("GET \"abc\r\n"), "",
               "Protocol error: unbalanced quotes in request");
  expect_error(STR("GET 'a'b\r\n"), "",
               "Protocol error: unbalanced quotes in request");
  /* a bulk longer than the maximum is refused from its header alone */
  char hdr[64];
  int n = snprintf(hdr, sizeof(hdr), "*1\r\n$%d\r\n", TEEX_RESP_BULK_MAX + 1);
  expect_error(hdr, (size_t)n, "", "Protocol error: invalid bulk length");
  /* a header line that never ends */
  char longhdr[80];
  memset(longhdr, '9', sizeof(longhdr));
  longhdr[0] = '*';
  expect_error(longhdr, sizeof(longhdr), "",
               "Protocol error: too big multibulk count string");
  struct teex_resp_parser p;
  /* once failed, always failed */
  teex_resp_parser_init(&p);
  assert_int_equal(teex_resp_parser_feed(&p, (const uint8_t *)"*z\r\n", 4), 0);
  assert_int_equal(teex_resp_parser_next(&p, &cmd), TEEX_EPROTO);
  assert_int_equal(teex_resp_parser_feed(&p, (const uint8_t *)"PING\r\n", 6),
                   0);
  assert_int_equal(teex_resp_parser_next(&p, &cmd), TEEX_EPROTO);
  teex_resp_parser_free(&p);
}

/* The request maximum: a multibulk whose bulks together announce more than
 * TEEX_RESP_REQUEST_MAX is refused before its bytes are buffered. */
static void test_request_max(void **state) {
  (void)state;
  struct teex_resp_parser p;
  teex_resp_parser_init(&p);
  static uint8_t chunk[TEEX_RESP_BULK_MAX];
  memset(chunk, 'v', sizeof(chunk));
  char hdr[64];
  int n = snprintf(hdr, sizeof(hdr), "*%d\r\n", TEEX_RESP_ARGS_MAX);
  assert_int_equal(teex_resp_parser_feed(&p, (uint8_t *)hdr, (size_t)n), 0);
  int rc = 0;
  size_t sent = 0;
  for (int i = 0; i < TEEX_RESP_ARGS_MAX && rc == 0; i++) {
    n = snprintf(hdr, sizeof(hdr), "$%d\r\n", TEEX_RESP_BULK_MAX);
    assert_int_equal(teex_resp_parser_feed(&p, (uint8_t *)hdr, (size_t)n), 0);
    rc = teex_resp_parser_next(&p, &cmd);
    if (rc != 0)
      break;
    assert_int_equal(teex_resp_parser_feed(&p, chunk, sizeof(chunk)), 0);
    assert_int_equal(teex_resp_parser_feed(&p, (uint8_t *)"\r\n", 2), 0);
    sent += sizeof(chunk);
    rc = teex_resp_parser_next(&p, &cmd);
  }
  assert_int_equal(rc, TEEX_EPROTO);
  assert_true(strstr(p.err, "request larger than") != NULL);
  assert_true(sent <= TEEX_RESP_REQUEST_MAX);
  assert_true(teex_resp_parser_pending(&p) <= TEEX_RESP_REQUEST_MAX + 64);
  teex_resp_parser_free(&p);
}

static void test_inline_too_big(void **state) {
  (void)state;
  struct teex_resp_parser p;
  teex_resp_parser_init(&p);
  static uint8_t line[TEEX_RESP_INLINE_MAX];
  memset(line, 'a', sizeof(line));
  assert_int_equal(teex_resp_parser_feed(&p, line, sizeof(line) - 1), 0);
  assert_int_equal(teex_resp_parser_next(&p, &cmd), 0);
  assert_int_equal(teex_resp_parser_feed(&p, line, 1), 0);
  assert_int_equal(teex_resp_parser_next(&p, &cmd), TEEX_EPROTO);
  assert_string_equal(p.err, "Protocol error: too big inline request");
  teex_resp_parser_free(&p);
}

static void test_reply_encoder(void **state) {
  (void)state;
  struct teex_buf b;
  teex_buf_init(&b, 64, 0);
  assert_int_equal(teex_resp_simple(&b, "OK"), 0);
  assert_int_equal(teex_resp_error(&b, "ERR bad\r\n%s", "x"), 0);
  assert_int_equal(teex_resp_int(&b, -42), 0);
  assert_int_equal(teex_resp_bulk(&b, "a\r\nb", 4), 0);
  assert_int_equal(teex_resp_null(&b), 0);
  assert_int_equal(teex_resp_array(&b, 2), 0);
  const char want[] =
      "+OK\r\n-ERR bad  x\r\n:-42\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n";
  assert_int_equal(b.len, sizeof(want) - 1);
  assert_memory_equal(b.data, want, sizeof(want) - 1);
  /* a reply that does not fit leaves the buffer as it was */
  size_t len = b.len;
  static char big[100];
  memset(big, 'x', sizeof(big));
  assert_int_equal(teex_resp_bulk(&b, big, sizeof(big)), TEEX_ETOOBIG);
  assert_int_equal(b.len, len);
  teex_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_multibulk_any_split),
      cmocka_unit_test(test_inline_commands),
      cmocka_unit_test(test_protocol_errors),
      cmocka_unit_test(test_request_max),
      cmocka_unit_test(test_inline_too_big),
      cmocka_unit_test(test_reply_encoder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
