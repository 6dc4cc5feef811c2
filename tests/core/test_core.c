/* Unit tests of the core module: errors, buffers, config, logging. */
#include "testutil.h"

#include "teex/buf.h"
#include "teex/config.h"
#include "teex/error.h"
#include "teex/log.h"
#include "teex/mem.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_error_table(void **state) {
  (void)state;
  assert_string_equal(teex_strerror(TEEX_EBADSIG), "bad signature");
  assert_string_equal(teex_err_name(TEEX_EAUTH), "EAUTH");
  assert_string_equal(teex_strerror(-9999), "unknown error");
  assert_int_equal(TEEX_OK, 0);
}

static void test_error_wrap(void **state) {
  (void)state;
  struct teex_err e;
  teex_err_clear(&e);
  assert_int_equal(teex_err_set(&e, TEEX_ECONN, "connection refused"),
                   TEEX_ECONN);
  assert_int_equal(teex_err_wrap(&e, 0, "upload image"), TEEX_ECONN);
  teex_err_wrap(&e, 0, "deploy service");
  assert_string_equal(e.msg,
                      "deploy service: upload image: connection refused");
  /* Wrapping an empty message uses the code's text. */
  teex_err_clear(&e);
  e.code = TEEX_ETIMEDOUT;
  teex_err_wrap(&e, 0, "invoke");
  assert_string_equal(e.msg, "invoke: timed out");
  /* Long messages are cut, never overflowed. */
  char big[2000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  teex_err_set(&e, TEEX_EINVAL, "%s", big);
  teex_err_wrap(&e, 0, "%s", big);
  assert_int_equal(strlen(e.msg), TEEX_ERRMSG_SIZE - 1);
  /* NULL err is allowed. */
  assert_int_equal(teex_err_set(NULL, TEEX_EIO, "x"), TEEX_EIO);
}

static void test_buf_bounds(void **state) {
  (void)state;
  struct teex_buf b;
  teex_buf_init(&b, 10, 0);
  assert_int_equal(teex_buf_append(&b, "hello", 5), 0);
  assert_int_equal(teex_buf_append(&b, "world", 5), 0);
  assert_int_equal(b.len, 10);
  assert_int_equal(teex_buf_append(&b, "!", 1), TEEX_ETOOBIG);
  assert_int_equal(b.len, 10);
  assert_memory_equal(b.data, "helloworld", 10);
  teex_buf_consume(&b, 5);
  assert_memory_equal(b.data, "world", 5);
  assert_int_equal(teex_buf_printf(&b, "%d", 12345), 0);
  assert_string_equal((char *)b.data, "world12345");
  assert_int_equal(teex_buf_printf(&b, "x"), TEEX_ETOOBIG);
  /* Huge reservation requests fail without allocating. */
  assert_int_equal(teex_buf_reserve(&b, SIZE_MAX), TEEX_ETOOBIG);
  teex_buf_free(&b);
  teex_buf_free(&b);

  teex_buf_init(&b, 1 << 20, TEEX_BUF_SECRET);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(teex_buf_append(&b, "secret-bytes", 12), 0);
  size_t n;
  uint8_t *p = teex_buf_steal(&b, &n);
  assert_int_equal(n, 12000);
  assert_int_equal(p[n], 0);
  free(p);
}

static void test_config_parse(void **state) {
  (void)state;
  struct teex_config c;
  struct teex_err e;
  teex_config_init(&c);
  const char *text = "# comment\n"
                     "data_dir = /var/lib/teex\n"
                     "[chain]\n"
                     "rpc = \"http://127.0.0.1:8545\"  # trailing\n"
                     "chain_id = 31337\n"
                     "[tee]\r\n"
                     "allow_simulated = yes\n"
                     "quoted = \"a \\\"b\\\" \\\\c\"\n";
  assert_int_equal(teex_config_set(&c, "chain.chain_id", "1", &e), 0);
  assert_int_equal(teex_config_parse(&c, text, strlen(text), &e), 0);
  assert_string_equal(teex_config_get(&c, "data_dir", NULL), "/var/lib/teex");
  assert_string_equal(teex_config_get(&c, "chain.rpc", NULL),
                      "http://127.0.0.1:8545");
  uint64_t v;
  /* A flag wins over the file. */
  assert_int_equal(teex_config_get_u64(&c, "chain.chain_id", 0, &v, &e), 0);
  assert_int_equal(v, 1);
  int b;
  assert_int_equal(teex_config_get_bool(&c, "tee.allow_simulated", 0, &b, &e),
                   0);
  assert_true(b);
  assert_string_equal(teex_config_get(&c, "tee.quoted", NULL), "a \"b\" \\c");
  assert_null(teex_config_get(&c, "nope", NULL));
  assert_int_equal(teex_config_get_u64(&c, "data_dir", 0, &v, &e), TEEX_EINVAL);
  assert_non_null(strstr(e.msg, "data_dir"));
  teex_config_free(&c);

  const char *bad[] = {"[unterminated\n", "novalue\n",        "k = \"open\n",
                       "[a b]\n",         "k = \"x\" junk\n", "= v\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    teex_config_init(&c);
    teex_err_clear(&e);
    assert_int_equal(teex_config_parse(&c, bad[i], strlen(bad[i]), &e),
                     TEEX_EFORMAT);
    assert_non_null(strstr(e.msg, "line 1"));
    teex_config_free(&c);
  }
}

static void test_parse_u64(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(teex_parse_u64("18446744073709551615", &v), 0);
  assert_true(v == UINT64_MAX);
  assert_int_equal(teex_parse_u64("18446744073709551616", &v), TEEX_EINVAL);
  assert_int_equal(teex_parse_u64("-1", &v), TEEX_EINVAL);
  assert_int_equal(teex_parse_u64("12a", &v), TEEX_EINVAL);
  assert_int_equal(teex_parse_u64("", &v), TEEX_EINVAL);
  assert_int_equal(teex_parse_u64(" 1", &v), TEEX_EINVAL);
}

/* The logger must refuse to print a registered secret in any encoding; the
 * positive control (an unregistered value) must come through. */
static void test_log_redacts_secrets(void **state) {
  (void)state;
  char *dir = tu_mkdtemp("log");
  assert_non_null(dir);
  char path[4096];
  snprintf(path, sizeof path, "%s/log", dir);
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  assert_true(fd >= 0);
  teex_log_set_fd(fd);
  teex_log_set_level(TEEX_LOG_DEBUG);

  uint8_t *key = teex_secret_alloc(32);
  assert_non_null(key);
  for (int i = 0; i < 32; i++)
    key[i] = (uint8_t)(0xA0 + i);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", key[i]);
  unsigned long before = teex_log_redacted_count();
  TEEX_INFO("test", "control", "value=%s", "CANARY-PUBLIC-1234");
  TEEX_INFO("test", "leak hex", "key=%s", hex);
  TEEX_INFO("test", "leak raw", "key=%.*s", 32, (const char *)key);
  for (int i = 0; hex[i]; i++)
    if (hex[i] >= 'a')
      hex[i] = (char)(hex[i] - 32);
  TEEX_INFO("test", "leak HEX", "key=%s", hex);
  TEEX_DEBUG("test", "quote \" and newline\n", "k=%d", 1);
  assert_int_equal(teex_log_redacted_count() - before, 3);
  teex_log_set_fd(2);
  close(fd);

  size_t n;
  uint8_t *logtext = tu_read_file(path, &n);
  assert_non_null(logtext);
  assert_non_null(strstr((char *)logtext, "CANARY-PUBLIC-1234"));
  assert_false(tu_buf_contains_any_encoding(logtext, n, key, 32));
  assert_non_null(strstr((char *)logtext, "level=info comp=test"));
  assert_non_null(strstr((char *)logtext, "msg=\"quote \\\" and newline \""));
  /* Exactly five lines: the newline inside a field did not forge a line. */
  int lines = 0;
  for (size_t i = 0; i < n; i++)
    lines += logtext[i] == '\n';
  assert_int_equal(lines, 5);
  free(logtext);
  teex_secret_free(key);
  tu_rmtree(dir);
  free(dir);
}

static void test_secret_memory(void **state) {
  (void)state;
  uint8_t *s = teex_secret_alloc(64);
  assert_non_null(s);
  for (int i = 0; i < 64; i++)
    assert_int_equal(s[i], 0);
  assert_true(teex_secret_overlaps(s + 10, 4));
  uint8_t other[16];
  assert_false(teex_secret_overlaps(other, sizeof other));
  teex_secret_free(s);
  teex_secret_free(NULL);
  uint8_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};
  assert_true(teex_ct_equal(a, a, 4));
  assert_false(teex_ct_equal(a, b, 4));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_error_wrap),
      cmocka_unit_test(test_buf_bounds),
      cmocka_unit_test(test_config_parse),
      cmocka_unit_test(test_parse_u64),
      cmocka_unit_test(test_log_redacts_secrets),
      cmocka_unit_test(test_secret_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
