/* The TEE-DS group config (src/ds/group.c): members parse with their peer
 * and client addresses; addresses with characters a host:port cannot hold
 * (control characters, carriage returns) are refused, since they would not
 * read back the same after a save (found by fuzz_ds_group). */
#include "testutil.h"

#include "ds/group.h"

#include <string.h>

static const char good[] = "[group]\n"
                           "id = 64e9133416b9aebee2a4a21c5ee9562a\n"
                           "[members]\n"
                           "1 = 127.0.0.1:7001 127.0.0.1:7101\n"
                           "2 = [::1]:7002,ds-2.example_net:7102\n";

static void test_members(void **state) {
  (void)state;
  static struct teex_ds_group g;
  struct teex_err err;
  teex_err_clear(&err);
  assert_int_equal(teex_ds_group_parse(&g, good, strlen(good), &err), 0);
  assert_int_equal(g.n_members, 2);
  assert_string_equal(g.members[0].peer, "127.0.0.1:7001");
  assert_string_equal(g.members[0].client, "127.0.0.1:7101");
  assert_string_equal(g.members[1].peer, "[::1]:7002");
  assert_string_equal(g.members[1].client, "ds-2.example_net:7102");
}

static void test_bad_address_chars(void **state) {
  (void)state;
  static const char *const bad[] = {
      "1 = 127.0.0.1:7001 sm\r\r\n", /* carriage returns */
      "1 = 127.0.0.1:7001 a\x18"
      "b:1\n",                      /* a control character */
      "1 = 1\x7f.0.0.1:7001 a:1\n", /* DEL in the peer */
      "1 = 127.0.0.1:7001 a/b:1\n", /* not a host character */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char text[512];
    snprintf(text, sizeof text,
             "[group]\nid = 64e9133416b9aebee2a4a21c5ee9562a\n[members]\n%s",
             bad[i]);
    static struct teex_ds_group g;
    struct teex_err err;
    teex_err_clear(&err);
    int rc = teex_ds_group_parse(&g, text, strlen(text), &err);
    if (rc != TEEX_ECONFIG)
      fail_msg("case %zu: want TEEX_ECONFIG, got %d (%s)", i, rc, err.msg);
    assert_non_null(strstr(err.msg, "bad addresses"));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_members),
                                     cmocka_unit_test(test_bad_address_chars)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
