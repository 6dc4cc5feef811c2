/* The TEE-DS group config (src/ds/group.c): members parse with their peer
 * and client addresses; addresses with characters a host:port cannot hold
 * (control characters, carriage returns) are refused, since they would not
 * read back the same after a save (found by fuzz_ds_group). */
#include "testutil.h"

#include "ds/group.h"

#include <stdio.h>
#include <stdlib.h>
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

/* group.operators names certificate clients that may change the
 * membership: it must name listed clients, saves and parses back the same,
 * and matches whole labels only. */
static void test_operators(void **state) {
  (void)state;
  static struct teex_ds_group g, g2;
  struct teex_err err;
  static const char ok[] =
      "[group]\nid = 64e9133416b9aebee2a4a21c5ee9562a\noperators = ops,app\n"
      "[members]\n1 = 127.0.0.1:7001 127.0.0.1:7101\n[clients]\n"
      "app = "
      "0000000000000000000000000000000000000000000000000000000000000001 app\n"
      "ops = "
      "0000000000000000000000000000000000000000000000000000000000000002 app\n"
      "viewer = "
      "0000000000000000000000000000000000000000000000000000000000000003 app\n";
  assert_int_equal(teex_ds_group_parse(&g, ok, strlen(ok), &err), 0);
  assert_true(teex_ds_group_is_operator(&g, "ops"));
  assert_true(teex_ds_group_is_operator(&g, "app"));
  assert_false(teex_ds_group_is_operator(&g, "viewer"));
  assert_false(teex_ds_group_is_operator(&g, "op"));
  assert_false(teex_ds_group_is_operator(&g, ""));
  char *dir = tu_mkdtemp("dsgroup");
  char path[512];
  snprintf(path, sizeof path, "%s/group.conf", dir);
  assert_int_equal(teex_ds_group_save(&g, path, &err), 0);
  assert_int_equal(teex_ds_group_load(&g2, path, &err), 0);
  assert_string_equal(g2.operators, "ops,app");
  tu_rmtree(dir);
  free(dir);
  /* An operator that is not a listed client is a config error. */
  static const char bad[] =
      "[group]\nid = 64e9133416b9aebee2a4a21c5ee9562a\noperators = ghost\n"
      "[members]\n1 = 127.0.0.1:7001 127.0.0.1:7101\n";
  assert_int_equal(teex_ds_group_parse(&g, bad, strlen(bad), &err),
                   TEEX_ECONFIG);
  assert_non_null(strstr(err.msg, "ghost"));
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
                                     cmocka_unit_test(test_operators),
                                     cmocka_unit_test(test_bad_address_chars)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
