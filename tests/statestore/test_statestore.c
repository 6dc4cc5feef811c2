/* The statestore's front and local backend (include/teex/statestore.h):
 * names checked, transactions all or nothing (a body that fails writes
 * nothing), reads that see the transaction's own writes, deletes, scans
 * per category, the one-time migration between two stores
 * (teex_statestore_migrate). The TEE-DS backend:
 * tests/ds/test_net_statestore.c. */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/statestore.h"

#include <string.h>

struct fx {
  char *dir;
  struct teex_store *store;
  struct teex_statestore *s;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  uint8_t root[32];
  struct teex_err err;
  teex_random(root, sizeof root);
  f->dir = tu_mkdtemp("statestore");
  assert_int_equal(
      teex_store_open(f->dir, root, TEEX_STORE_CREATE, &f->store, &err), 0);
  assert_int_equal(teex_statestore_open_local(f->store, &f->s, &err), 0);
  assert_string_equal(teex_statestore_backend(f->s), "local");
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  teex_statestore_close(f->s);
  teex_store_close(f->store);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void test_names(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_buf b;
  teex_buf_init(&b, 64, 0);
  static const char *const bad[] = {
      "", "nocat", "/x", "cat/", "Cat/x", "a b/x", "waytoolongcategory1/x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(teex_statestore_put(f->s, bad[i], "v", 1, &err),
                     TEEX_EINVAL);
    assert_int_equal(teex_statestore_get(f->s, bad[i], &b, &err), TEEX_EINVAL);
  }
  char big[TEEX_STATESTORE_NAME_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  big[1] = '/';
  big[sizeof big - 1] = '\0';
  assert_int_equal(teex_statestore_put(f->s, big, "v", 1, &err), TEEX_EINVAL);
  assert_int_equal(teex_statestore_put(f->s, "cat-1_x/a/b", "v", 1, &err), 0);
  assert_int_equal(teex_statestore_get(f->s, "cat-1_x/a/b", &b, &err), 0);
  assert_int_equal(teex_statestore_get(f->s, "cat-1_x/a", &b, &err),
                   TEEX_ENOTFOUND);
  teex_buf_free(&b);
}

struct body {
  int fail; /* after writing, fail with this code */
  int saw_own_write, saw_deleted;
};

static int body_fn(struct teex_statestore_txn *txn, void *arg,
                   struct teex_err *err) {
  struct body *x = arg;
  struct teex_buf b;
  teex_buf_init(&b, 64, 0);
  int rc = teex_statestore_txn_put(txn, "c/new", "1", 1, err);
  if (rc == 0 && teex_statestore_txn_get(txn, "c/new", &b, err) == 0 &&
      b.len == 1 && b.data[0] == '1')
    x->saw_own_write = 1;
  if (rc == 0)
    rc = teex_statestore_txn_del(txn, "c/old", err);
  if (rc == 0)
    rc = teex_statestore_txn_del(txn, "c/never-there", err);
  if (rc == 0 &&
      teex_statestore_txn_get(txn, "c/old", &b, err) == TEEX_ENOTFOUND)
    x->saw_deleted = 1;
  teex_buf_free(&b);
  if (rc == 0 && x->fail)
    rc = teex_err_set(err, x->fail, "the body failed");
  return rc;
}

static int count(const char *name, const uint8_t *val, size_t len, void *arg) {
  (void)val;
  (void)len;
  assert_memory_equal(name, "c/", 2);
  (*(int *)arg)++;
  return 0;
}

static void test_transactions(void **state) {
  struct fx *f = *state;
  struct teex_err err;
  struct teex_buf b;
  teex_buf_init(&b, 64, 0);
  assert_int_equal(teex_statestore_put(f->s, "c/old", "0", 1, &err), 0);
  assert_int_equal(teex_statestore_put(f->s, "d/other", "0", 1, &err), 0);
  /* A failing body: nothing of it is kept. */
  struct body x = {.fail = TEEX_EPOLICY};
  assert_int_equal(teex_statestore_run(f->s, body_fn, &x, &err), TEEX_EPOLICY);
  assert_string_equal(err.msg, "the body failed");
  assert_true(x.saw_own_write && x.saw_deleted);
  assert_int_equal(teex_statestore_get(f->s, "c/new", &b, &err),
                   TEEX_ENOTFOUND);
  assert_int_equal(teex_statestore_get(f->s, "c/old", &b, &err), 0);
  /* A body that succeeds: all of it. */
  struct body y = {0};
  assert_int_equal(teex_statestore_run(f->s, body_fn, &y, &err), 0);
  assert_int_equal(teex_statestore_get(f->s, "c/new", &b, &err), 0);
  assert_int_equal(teex_statestore_get(f->s, "c/old", &b, &err),
                   TEEX_ENOTFOUND);
  /* Scans stay in their category. */
  int n = 0;
  assert_int_equal(teex_statestore_scan(f->s, "c", count, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(teex_statestore_scan(f->s, "c/", count, &n, &err),
                   TEEX_EINVAL);
  teex_buf_free(&b);
}

static int keep_k(const char *name, void *arg) {
  (*(int *)arg)++;
  return strcmp(name, "a/keep") == 0;
}

static void expect(struct teex_statestore *s, const char *name,
                   const char *val) {
  struct teex_err err;
  struct teex_buf b;
  teex_buf_init(&b, 64, 0);
  int rc = teex_statestore_get(s, name, &b, &err);
  if (val == NULL) {
    assert_int_equal(rc, TEEX_ENOTFOUND);
  } else {
    assert_int_equal(rc, 0);
    assert_int_equal(b.len, strlen(val));
    assert_memory_equal(b.data, val, b.len);
  }
  teex_buf_free(&b);
}

/* Migration from one local store (f) into another (g): copies, skips a
 * record the target holds identical, refuses one it holds different
 * (the source untouched), honours keep, leaves other categories. */
static void test_migrate(void **state) {
  struct fx *f = *state, *g;
  struct teex_err err;
  assert_int_equal(setup((void **)&g), 0);
  static const char *const from_recs[][2] = {{"a/0", "0"},  {"a/1", "x"},
                                             {"a/2", "yy"}, {"a/keep", "k"},
                                             {"b/1", ""},   {"c/other", "o"}};
  for (size_t i = 0; i < sizeof from_recs / sizeof *from_recs; i++)
    assert_int_equal(teex_statestore_put(f->s, from_recs[i][0], from_recs[i][1],
                                         strlen(from_recs[i][1]), &err),
                     0);
  assert_int_equal(teex_statestore_put(g->s, "a/0", "zz", 2, &err), 0);
  assert_int_equal(teex_statestore_put(g->s, "a/2", "yy", 2, &err), 0);
  static const char *const cats[] = {"a", "b"};
  int calls = 0;
  size_t moved = 99;
  /* a/0 differs in the target: refused, nothing deleted locally. */
  assert_int_equal(teex_statestore_migrate(f->s, g->s, cats, 2, keep_k, &calls,
                                           "test", &moved, &err),
                   TEEX_EEXIST);
  assert_non_null(strstr(err.msg, "local record a/.. differs"));
  assert_non_null(strstr(err.msg, "two tests' state"));
  assert_int_equal(moved, 0);
  for (size_t i = 0; i < sizeof from_recs / sizeof *from_recs; i++)
    expect(f->s, from_recs[i][0], from_recs[i][1]);
  expect(g->s, "a/0", "zz");
  /* Once the target agrees, everything but a/keep and c/ moves. */
  assert_int_equal(teex_statestore_put(g->s, "a/0", "0", 1, &err), 0);
  calls = 0;
  assert_int_equal(teex_statestore_migrate(f->s, g->s, cats, 2, keep_k, &calls,
                                           "test", &moved, &err),
                   0);
  assert_int_equal(calls, 5);
  assert_int_equal(moved, 4);
  static const char *const gone[] = {"a/0", "a/1", "a/2", "b/1"};
  for (size_t i = 0; i < 4; i++) {
    expect(f->s, gone[i], NULL);
    expect(g->s, gone[i], from_recs[i < 3 ? i : 4][1]);
  }
  expect(f->s, "a/keep", "k");
  expect(f->s, "c/other", "o");
  expect(g->s, "a/keep", NULL);
  expect(g->s, "c/other", NULL);
  /* Again: nothing left to move. */
  assert_int_equal(teex_statestore_migrate(f->s, g->s, cats, 2, NULL, NULL,
                                           "test", &moved, &err),
                   0);
  assert_int_equal(moved, 1); /* a/keep, without a keep callback */
  expect(f->s, "a/keep", NULL);
  expect(g->s, "a/keep", "k");
  assert_int_equal(teardown((void **)&g), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrate, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
