/* Tests of the sealed local store: the API (put/get/del/scan/transactions),
 * persistence, wrong keys and foreign data, tampering of every byte of a
 * record, swapped and rolled-back records, a full map, and a canary search
 * of every file the store writes (with positive controls). On-disk attacks
 * go through the LMDB API directly, as an attacker with the files would. */
#include "testutil.h"

#include "store/record.h"
#include "teex/buf.h"
#include "teex/crypto.h"
#include "teex/error.h"
#include "teex/store.h"

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static uint8_t root_a[32], root_b[32];

static int setup(void **state) {
  (void)state;
  assert_int_equal(teex_crypto_init(), 0);
  teex_random(root_a, sizeof root_a);
  teex_random(root_b, sizeof root_b);
  return 0;
}

/* A fresh store path (a directory that does not exist yet). */
static char *store_path(const char *tag, char **dir) {
  *dir = tu_mkdtemp(tag);
  assert_non_null(*dir);
  size_t n = strlen(*dir) + 16;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s/store", *dir);
  return p;
}

static struct teex_store *open_ok(const char *path, const uint8_t key[32],
                                  unsigned flags) {
  struct teex_store *s = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_store_open(path, key, flags, &s, &err);
  if (rc != 0)
    fail_msg("open %s: %s", path, teex_err_msg(&err));
  return s;
}

static int open_rc(const char *path, const uint8_t key[32], unsigned flags,
                   struct teex_err *err) {
  struct teex_store *s = NULL;
  teex_err_clear(err);
  int rc = teex_store_open(path, key, flags, &s, err);
  if (rc == 0) {
    assert_non_null(s);
    teex_store_close(s);
  } else {
    assert_null(s);
    assert_int_equal(err->code, rc);
    assert_true(strlen(err->msg) > 0);
  }
  return rc;
}

static void put_ok(struct teex_store *s, const char *k, const char *v) {
  struct teex_err err;
  int rc = teex_store_put(s, k, strlen(k), v, strlen(v), &err);
  if (rc != 0)
    fail_msg("put %s: %s", k, teex_err_msg(&err));
}

/* Returns get's code; on success checks the value equals want (if given). */
static int get_rc(struct teex_store *s, const char *k, const char *want) {
  struct teex_buf b;
  struct teex_err err;
  teex_buf_init(&b, TEEX_STORE_VALUE_MAX, TEEX_BUF_SECRET);
  teex_err_clear(&err);
  int rc = teex_store_get(s, k, strlen(k), &b, &err);
  if (rc == 0 && want != NULL) {
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
  }
  if (rc != 0)
    assert_true(strlen(err.msg) > 0);
  teex_buf_free(&b);
  return rc;
}

/* ---- raw LMDB access, as an attacker with the files ---- */

struct raw {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi rec, meta;
};

static void raw_open(struct raw *r, const char *path) {
  assert_int_equal(mdb_env_create(&r->env), 0);
  assert_int_equal(mdb_env_set_maxdbs(r->env, 4), 0);
  assert_int_equal(mdb_env_open(r->env, path, 0, 0600), 0);
  assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
  assert_int_equal(mdb_dbi_open(r->txn, "rec", 0, &r->rec), 0);
  assert_int_equal(mdb_dbi_open(r->txn, "meta", 0, &r->meta), 0);
}

static void raw_close(struct raw *r) {
  assert_int_equal(mdb_txn_commit(r->txn), 0);
  mdb_env_close(r->env);
}

/* The idx-th record (in LMDB order): copies of its key and value. */
static void raw_nth(struct raw *r, int idx, MDB_val *k, MDB_val *v) {
  MDB_cursor *c;
  assert_int_equal(mdb_cursor_open(r->txn, r->rec, &c), 0);
  MDB_val ck, cv;
  int rc = mdb_cursor_get(c, &ck, &cv, MDB_FIRST);
  for (int i = 0; i < idx && rc == 0; i++)
    rc = mdb_cursor_get(c, &ck, &cv, MDB_NEXT);
  assert_int_equal(rc, 0);
  k->mv_size = ck.mv_size;
  k->mv_data = malloc(ck.mv_size);
  memcpy(k->mv_data, ck.mv_data, ck.mv_size);
  v->mv_size = cv.mv_size;
  v->mv_data = malloc(cv.mv_size);
  memcpy(v->mv_data, cv.mv_data, cv.mv_size);
  mdb_cursor_close(c);
}

static void raw_put(struct raw *r, MDB_dbi dbi, MDB_val *k, MDB_val *v) {
  assert_int_equal(mdb_put(r->txn, dbi, k, v, 0), 0);
}

static void raw_free(MDB_val *k, MDB_val *v) {
  free(k->mv_data);
  free(v->mv_data);
}

/* ---- internals ---- */

/* The precomputed-pad HMAC equals teex_hmac_sha256 (RFC 2104), for
 * messages around the block boundaries. */
static void test_mac(void **state) {
  (void)state;
  uint8_t key[32], msg[300], a[32], b[32];
  teex_random(key, sizeof key);
  teex_random(msg, sizeof msg);
  struct store_mac m;
  store_mac_init(&m, key);
  const size_t lens[] = {0, 1, 16, 55, 56, 63, 64, 65, 119, 128, 144, 300};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    store_mac(&m, msg, lens[i], a);
    teex_hmac_sha256(key, sizeof key, msg, lens[i], b);
    assert_memory_equal(a, b, 32);
  }
  store_mac_wipe(&m);
}

/* ---- API ---- */

static void test_put_get_del(void **state) {
  (void)state;
  char *dir, *path = store_path("store-basic", &dir);
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  struct teex_err err;
  put_ok(s, "svc/alpha", "one");
  put_ok(s, "beta", "two");
  assert_int_equal(get_rc(s, "svc/alpha", "one"), 0);
  assert_int_equal(get_rc(s, "beta", "two"), 0);
  put_ok(s, "beta", "two-again");
  assert_int_equal(get_rc(s, "beta", "two-again"), 0);
  assert_int_equal(get_rc(s, "missing", NULL), TEEX_ENOTFOUND);
  /* Empty value. */
  assert_int_equal(teex_store_put(s, "empty", 5, NULL, 0, &err), 0);
  assert_int_equal(get_rc(s, "empty", ""), 0);
  assert_int_equal(teex_store_del(s, "beta", 4, &err), 0);
  assert_int_equal(get_rc(s, "beta", NULL), TEEX_ENOTFOUND);
  assert_int_equal(teex_store_del(s, "beta", 4, &err), TEEX_ENOTFOUND);

  struct teex_store_info info;
  assert_int_equal(teex_store_info(s, &info, &err), 0);
  assert_int_equal(info.records, 2);
  assert_int_equal(info.seq, 5); /* 4 puts + 1 delete */

  /* Bounds are checked before anything is allocated or read. */
  static uint8_t big[TEEX_STORE_KEY_MAX + 1];
  assert_int_equal(teex_store_put(s, big, 0, "v", 1, &err), TEEX_EINVAL);
  assert_int_equal(teex_store_put(s, big, sizeof big, "v", 1, &err),
                   TEEX_EINVAL);
  assert_int_equal(teex_store_put(s, big, TEEX_STORE_KEY_MAX, "v", 1, &err), 0);
  assert_int_equal(
      teex_store_put(s, "k", 1, big, (size_t)TEEX_STORE_VALUE_MAX + 1, &err),
      TEEX_ETOOBIG);
  assert_non_null(strstr(err.msg, "exceeds the maximum"));
  /* The caller's buffer bounds what get may allocate. */
  put_ok(s, "long", "0123456789abcdef");
  struct teex_buf small;
  teex_buf_init(&small, 8, 0);
  assert_int_equal(teex_store_get(s, "long", 4, &small, &err), TEEX_ETOOBIG);
  teex_buf_free(&small);

  /* One owner at a time. */
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EBUSY);
  teex_store_close(s);

  /* Reopen: everything persisted. */
  s = open_ok(path, root_a, 0);
  assert_int_equal(get_rc(s, "svc/alpha", "one"), 0);
  assert_int_equal(get_rc(s, "empty", ""), 0);
  assert_int_equal(get_rc(s, "beta", NULL), TEEX_ENOTFOUND);
  assert_int_equal(teex_store_info(s, &info, &err), 0);
  assert_int_equal(info.records, 4);
  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

static void test_transactions(void **state) {
  (void)state;
  char *dir, *path = store_path("store-txn", &dir);
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  struct teex_err err;
  struct teex_store_txn *t;
  struct teex_buf b;
  teex_buf_init(&b, 1024, TEEX_BUF_SECRET);

  /* Abort discards everything. */
  assert_int_equal(teex_store_txn_begin(s, 0, &t, &err), 0);
  assert_int_equal(teex_store_txn_put(t, "a", 1, "1", 1, &err), 0);
  assert_int_equal(teex_store_txn_put(t, "b", 1, "2", 1, &err), 0);
  assert_int_equal(teex_store_txn_get(t, "a", 1, &b, &err), 0);
  assert_memory_equal(b.data, "1", 1);
  teex_store_txn_abort(t);
  assert_int_equal(get_rc(s, "a", NULL), TEEX_ENOTFOUND);

  /* Commit keeps all of it, atomically. */
  assert_int_equal(teex_store_txn_begin(s, 0, &t, &err), 0);
  assert_int_equal(teex_store_txn_put(t, "a", 1, "1", 1, &err), 0);
  assert_int_equal(teex_store_txn_put(t, "b", 1, "2", 1, &err), 0);
  assert_int_equal(teex_store_txn_put(t, "a", 1, "3", 1, &err), 0);
  assert_int_equal(teex_store_txn_del(t, "b", 1, &err), 0);
  assert_int_equal(teex_store_txn_del(t, "b", 1, &err), TEEX_ENOTFOUND);
  assert_int_equal(teex_store_txn_commit(t, &err), 0);
  assert_int_equal(get_rc(s, "a", "3"), 0);
  assert_int_equal(get_rc(s, "b", NULL), TEEX_ENOTFOUND);

  /* A read transaction sees a snapshot and cannot write. */
  struct teex_store_txn *r;
  assert_int_equal(teex_store_txn_begin(s, TEEX_STORE_TXN_RDONLY, &r, &err), 0);
  assert_int_equal(teex_store_txn_put(r, "c", 1, "x", 1, &err), TEEX_EPERM);
  assert_int_equal(teex_store_txn_del(r, "a", 1, &err), TEEX_EPERM);
  put_ok(s, "a", "4");
  assert_int_equal(teex_store_txn_get(r, "a", 1, &b, &err), 0);
  assert_memory_equal(b.data, "3", 1);
  assert_int_equal(teex_store_txn_commit(r, &err), 0);
  assert_int_equal(get_rc(s, "a", "4"), 0);

  teex_buf_free(&b);
  teex_store_close(s);
  /* The digest kept up with every commit and abort. */
  s = open_ok(path, root_a, 0);
  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

static void scan_expect(struct teex_store_txn *t, const char *prefix,
                        const char *const *want, size_t n) {
  struct teex_store_iter *it;
  struct teex_err err;
  assert_int_equal(teex_store_iter_begin(t, prefix, strlen(prefix), &it, &err),
                   0);
  const uint8_t *k, *v;
  size_t kl, vl;
  size_t i = 0;
  int rc;
  while ((rc = teex_store_iter_next(it, &k, &kl, &v, &vl, &err)) == 1) {
    assert_true(i < n);
    assert_int_equal(kl, strlen(want[i]));
    assert_memory_equal(k, want[i], kl);
    /* Every value is "v:" + its key. */
    assert_int_equal(vl, kl + 2);
    assert_memory_equal(v, "v:", 2);
    assert_memory_equal(v + 2, k, kl);
    i++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(i, n);
  teex_store_iter_free(it);
}

static void test_scan(void **state) {
  (void)state;
  char *dir, *path = store_path("store-scan", &dir);
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  struct teex_err err;
  const char *keys[] = {"a/2", "a/10", "a/1", "b/1", "ab",
                        "a",   "a/",   "b/",  "c",   "a/1/x"};
  char v[64];
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    snprintf(v, sizeof v, "v:%s", keys[i]);
    put_ok(s, keys[i], v);
  }
  struct teex_store_txn *t;
  assert_int_equal(teex_store_txn_begin(s, TEEX_STORE_TXN_RDONLY, &t, &err), 0);
  const char *ns_a[] = {"a/", "a/1", "a/1/x", "a/10", "a/2"};
  scan_expect(t, "a/", ns_a, 5);
  const char *a1[] = {"a/1", "a/1/x", "a/10"};
  scan_expect(t, "a/1", a1, 3);
  const char *pa[] = {"a", "a/", "a/1", "a/1/x", "a/10", "a/2", "ab"};
  scan_expect(t, "a", pa, 7);
  const char *all[] = {"a",   "a/", "a/1", "a/1/x", "a/10",
                       "a/2", "ab", "b/",  "b/1",   "c"};
  scan_expect(t, "", all, 10);
  scan_expect(t, "zz/", NULL, 0);
  scan_expect(t, "a/3", NULL, 0);
  teex_store_txn_abort(t);

  /* Inside a write transaction: its own puts are seen, records deleted
   * after begin are skipped. */
  assert_int_equal(teex_store_txn_begin(s, 0, &t, &err), 0);
  assert_int_equal(teex_store_txn_put(t, "b/0", 3, "v:b/0", 5, &err), 0);
  struct teex_store_iter *it;
  assert_int_equal(teex_store_iter_begin(t, "b/", 2, &it, &err), 0);
  assert_int_equal(teex_store_txn_del(t, "b/1", 3, &err), 0);
  const uint8_t *k, *val;
  size_t kl, vl;
  assert_int_equal(teex_store_iter_next(it, &k, &kl, &val, &vl, &err), 1);
  assert_memory_equal(k, "b/", 2);
  assert_int_equal(teex_store_iter_next(it, &k, &kl, &val, &vl, &err), 1);
  assert_memory_equal(k, "b/0", 3);
  assert_int_equal(teex_store_iter_next(it, &k, &kl, &val, &vl, &err), 0);
  teex_store_iter_free(it);
  teex_store_txn_abort(t);

  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

/* ---- keys, foreign data ---- */

static void test_wrong_key_and_foreign(void **state) {
  (void)state;
  char *dir, *path = store_path("store-key", &dir);
  struct teex_err err;
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_ENOTFOUND);
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  put_ok(s, "k", "v");
  teex_store_close(s);
  assert_int_equal(open_rc(path, root_b, 0, &err), TEEX_EAUTH);
  assert_non_null(strstr(err.msg, "wrong root sealing key"));
  assert_int_equal(open_rc(path, root_b, TEEX_STORE_SALVAGE, &err), TEEX_EAUTH);
  assert_int_equal(open_rc(path, root_a, 0, &err), 0);

  /* A second store under the same root key: its records do not verify in
   * the first (each store's subkeys are salted with its random id). */
  char path2[4096];
  snprintf(path2, sizeof path2, "%s/other", dir);
  struct teex_store *s2 = open_ok(path2, root_a, TEEX_STORE_CREATE);
  put_ok(s2, "foreign", "data");
  teex_store_close(s2);
  struct raw r;
  MDB_val k, v;
  raw_open(&r, path2);
  raw_nth(&r, 0, &k, &v);
  raw_close(&r);
  raw_open(&r, path);
  raw_put(&r, r.rec, &k, &v);
  raw_close(&r);
  raw_free(&k, &v);
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EAUTH);
  s = open_ok(path, root_a, TEEX_STORE_SALVAGE);
  assert_int_equal(teex_store_integrity(s), TEEX_EAUTH);
  assert_int_equal(get_rc(s, "k", "v"), 0);
  assert_int_equal(get_rc(s, "foreign", NULL), TEEX_ENOTFOUND);
  assert_int_equal(teex_store_put(s, "x", 1, "y", 1, &err), TEEX_EPERM);
  teex_store_close(s);

  /* A data file that is not LMDB at all. */
  char path3[4096], file[4200];
  snprintf(path3, sizeof path3, "%s/garbage", dir);
  assert_int_equal(mkdir(path3, 0700), 0);
  snprintf(file, sizeof file, "%s/data.mdb", path3);
  static uint8_t junk[16384];
  teex_random(junk, sizeof junk);
  assert_int_equal(tu_write_file(file, junk, sizeof junk), 0);
  int rc = open_rc(path3, root_a, TEEX_STORE_CREATE, &err);
  assert_true(rc == TEEX_EFORMAT);
  /* A plain file where the directory should be. */
  assert_int_equal(open_rc(file, root_a, TEEX_STORE_CREATE, &err), TEEX_EINVAL);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

/* ---- tampering ---- */

static const char *const tk[] = {"rec/one", "rec/two", "three"};
static const char *const tv[] = {"value-1", "value-22", "value-333"};

static void fill3(const char *path) {
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  for (int i = 0; i < 3; i++)
    put_ok(s, tk[i], tv[i]);
  teex_store_close(s);
}

/* Opens for salvage and counts records whose get is `code` (others must
 * read back intact). */
static int salvage_count(const char *path, int code) {
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_SALVAGE);
  int n = 0;
  for (int i = 0; i < 3; i++) {
    int rc = get_rc(s, tk[i], tv[i]);
    if (rc == code)
      n++;
    else
      assert_int_equal(rc, 0);
  }
  teex_store_close(s);
  return n;
}

static void test_flip_every_byte(void **state) {
  (void)state;
  char *dir, *path = store_path("store-flip", &dir);
  fill3(path);
  struct raw r;
  MDB_val k, v;
  raw_open(&r, path);
  raw_nth(&r, 1, &k, &v);
  raw_close(&r);
  struct teex_err err;
  int at_open = 0, at_read = 0;
  uint8_t *rec = v.mv_data;
  for (size_t i = 0; i < v.mv_size; i++) {
    rec[i] ^= 0x01;
    raw_open(&r, path);
    raw_put(&r, r.rec, &k, &v);
    raw_close(&r);
    int rc = open_rc(path, root_a, 0, &err);
    if (rc != 0) {
      /* Header, nonces and tags are in the digest: caught at open. */
      if (rc != TEEX_EAUTH)
        fail_msg("byte %zu: open gave %s: %s", i, teex_err_name(rc), err.msg);
      assert_int_equal(salvage_count(path, TEEX_EAUTH), 1);
      at_open++;
    } else {
      /* Ciphertext bytes: caught when that record is read. */
      struct teex_store *s = open_ok(path, root_a, 0);
      int bad = 0;
      for (int j = 0; j < 3; j++) {
        int g = get_rc(s, tk[j], tv[j]);
        if (g == TEEX_EAUTH)
          bad++;
        else
          assert_int_equal(g, 0);
      }
      teex_store_close(s);
      assert_int_equal(bad, 1);
      at_read++;
    }
    rec[i] ^= 0x01;
  }
  raw_open(&r, path);
  raw_put(&r, r.rec, &k, &v);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), 0);
  /* Both paths were exercised: 16 + 2*40 bytes are digested, the
   * ciphertext is not. */
  assert_int_equal((size_t)at_open, 16 + 2 * 40);
  assert_int_equal((size_t)at_read, v.mv_size - 16 - 2 * 40);

  /* A record moved to another key (its LMDB key changed). */
  uint8_t *kb = k.mv_data;
  kb[20] ^= 0x80;
  raw_open(&r, path);
  raw_put(&r, r.rec, &k, &v);
  kb[20] ^= 0x80;
  assert_int_equal(mdb_del(r.txn, r.rec, &k, NULL), 0);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EAUTH);
  raw_free(&k, &v);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

static void test_swap_records(void **state) {
  (void)state;
  char *dir, *path = store_path("store-swap", &dir);
  fill3(path);
  struct raw r;
  MDB_val k0, v0, k1, v1;
  raw_open(&r, path);
  raw_nth(&r, 0, &k0, &v0);
  raw_nth(&r, 1, &k1, &v1);
  raw_put(&r, r.rec, &k0, &v1);
  raw_put(&r, r.rec, &k1, &v0);
  raw_close(&r);
  struct teex_err err;
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EAUTH);
  assert_non_null(strstr(err.msg, "fails authentication"));
  /* Each swapped record reads as tampered; the third is intact. */
  assert_int_equal(salvage_count(path, TEEX_EAUTH), 2);
  raw_free(&k0, &v0);
  raw_free(&k1, &v1);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

static void test_rollback(void **state) {
  (void)state;
  char *dir, *path = store_path("store-rollback", &dir);
  struct teex_err err;
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  put_ok(s, "svc/key", "old-value");
  teex_store_close(s);
  /* Snapshot the only record and the digest. */
  struct raw r;
  MDB_val ok, ov, dk = {6, "digest"}, dv, odv;
  raw_open(&r, path);
  raw_nth(&r, 0, &ok, &ov);
  assert_int_equal(mdb_get(r.txn, r.meta, &dk, &dv), 0);
  odv.mv_size = dv.mv_size;
  odv.mv_data = malloc(dv.mv_size);
  memcpy(odv.mv_data, dv.mv_data, dv.mv_size);
  raw_close(&r);

  s = open_ok(path, root_a, 0);
  put_ok(s, "svc/key", "new-value");
  put_ok(s, "other", "x");
  teex_store_close(s);

  /* One record replaced with its older version: authentic, but stale. */
  raw_open(&r, path);
  MDB_val nv, cur;
  assert_int_equal(mdb_get(r.txn, r.rec, &ok, &cur), 0);
  nv.mv_size = cur.mv_size;
  nv.mv_data = malloc(cur.mv_size);
  memcpy(nv.mv_data, cur.mv_data, cur.mv_size);
  raw_put(&r, r.rec, &ok, &ov);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EROLLBACK);
  assert_non_null(strstr(err.msg, "older version"));
  s = open_ok(path, root_a, TEEX_STORE_SALVAGE);
  assert_int_equal(teex_store_integrity(s), TEEX_EROLLBACK);
  teex_store_close(s);

  /* Put the current record back: the store verifies again. */
  raw_open(&r, path);
  raw_put(&r, r.rec, &ok, &nv);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), 0);

  /* The digest rolled back while the records were not. */
  raw_open(&r, path);
  assert_int_equal(mdb_get(r.txn, r.meta, &dk, &dv), 0);
  MDB_val cdv = {dv.mv_size, malloc(dv.mv_size)};
  memcpy(cdv.mv_data, dv.mv_data, dv.mv_size);
  raw_put(&r, r.meta, &dk, &odv);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EROLLBACK);
  /* Read side: in salvage mode the newer records read as rolled back. */
  s = open_ok(path, root_a, TEEX_STORE_SALVAGE);
  assert_int_equal(get_rc(s, "svc/key", NULL), TEEX_EROLLBACK);
  teex_store_close(s);
  raw_open(&r, path);
  raw_put(&r, r.meta, &dk, &cdv);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), 0);

  /* A deleted record, and a duplicated one. */
  raw_open(&r, path);
  assert_int_equal(mdb_del(r.txn, r.rec, &ok, NULL), 0);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EROLLBACK);
  assert_non_null(strstr(err.msg, "deleted or added"));
  raw_open(&r, path);
  raw_put(&r, r.rec, &ok, &nv);
  raw_close(&r);
  assert_int_equal(open_rc(path, root_a, 0, &err), 0);

  raw_free(&ok, &ov);
  free(nv.mv_data);
  free(odv.mv_data);
  free(cdv.mv_data);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

/* ---- a full map ---- */

static void test_map_full(void **state) {
  (void)state;
  char *dir, *path = store_path("store-full", &dir);
  struct teex_err err;
  struct teex_store_opts opts = {.map_size = 256 * 1024};
  struct teex_store *s = NULL;
  assert_int_equal(
      teex_store_open_opts(path, root_a, TEEX_STORE_CREATE, &opts, &s, &err),
      0);
  static uint8_t val[3000];
  memset(val, 'x', sizeof val);
  char key[32];
  int stored = 0, rc = 0;
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "k/%04d", i);
    rc = teex_store_put(s, key, strlen(key), val, sizeof val, &err);
    if (rc != 0)
      break;
    stored++;
  }
  assert_int_equal(rc, TEEX_ENOSPC);
  assert_non_null(strstr(err.msg, "full"));
  assert_true(stored > 10);
  /* A failed write poisons its transaction; commit refuses. */
  struct teex_store_txn *t;
  assert_int_equal(teex_store_txn_begin(s, 0, &t, &err), 0);
  rc = 0;
  for (int i = 0; i < 200 && rc == 0; i++) {
    snprintf(key, sizeof key, "t/%04d", i);
    rc = teex_store_txn_put(t, key, strlen(key), val, sizeof val, &err);
  }
  assert_int_equal(rc, TEEX_ENOSPC);
  assert_int_equal(teex_store_txn_put(t, "z", 1, "z", 1, &err), TEEX_ESTATE);
  assert_int_equal(teex_store_txn_commit(t, &err), TEEX_ENOSPC);
  /* Nothing was lost, and the store still verifies. */
  assert_int_equal(get_rc(s, "k/0000", NULL), 0);
  assert_int_equal(get_rc(s, "t/0000", NULL), TEEX_ENOTFOUND);
  /* Room can be made again. */
  assert_int_equal(teex_store_del(s, "k/0000", 6, &err), 0);
  teex_store_close(s);
  s = NULL;
  assert_int_equal(teex_store_open_opts(path, root_a, 0, &opts, &s, &err), 0);
  struct teex_store_info info;
  assert_int_equal(teex_store_info(s, &info, &err), 0);
  assert_int_equal(info.records, (uint64_t)stored - 1);
  snprintf(key, sizeof key, "k/%04d", stored - 1);
  struct teex_buf b;
  teex_buf_init(&b, sizeof val, 0);
  assert_int_equal(teex_store_get(s, key, strlen(key), &b, &err), 0);
  assert_memory_equal(b.data, val, sizeof val);
  teex_buf_free(&b);
  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

/* The digest on disk rolled back by another process while the store is
 * open: the next write transaction refuses. */
static void test_rollback_while_open(void **state) {
  (void)state;
  char *dir, *path = store_path("store-live", &dir);
  struct teex_err err;
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  put_ok(s, "a", "1");
  struct raw r;
  MDB_val dk = {6, "digest"}, dv;
  /* LMDB lets a second process into the files (only teex.lock keeps other
   * teex processes out): the attacker is one. It snapshots the digest, the
   * store commits another write, the attacker puts the snapshot back. */
  int st;
  pid_t pid;
  int p2c[2], c2p[2];
  assert_int_equal(pipe(p2c), 0);
  assert_int_equal(pipe(c2p), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char c;
    close(p2c[1]);
    close(c2p[0]);
    raw_open(&r, path);
    if (mdb_get(r.txn, r.meta, &dk, &dv) != 0)
      _exit(2);
    uint8_t old[256];
    size_t n = dv.mv_size;
    memcpy(old, dv.mv_data, n);
    if (mdb_txn_commit(r.txn) != 0) /* commit keeps the dbi handles */
      _exit(6);
    if (write(c2p[1], "s", 1) != 1 || read(p2c[0], &c, 1) != 1)
      _exit(3);
    if (mdb_txn_begin(r.env, NULL, 0, &r.txn) != 0)
      _exit(4);
    MDB_val ov = {n, old};
    if (mdb_put(r.txn, r.meta, &dk, &ov, 0) != 0 || mdb_txn_commit(r.txn) != 0)
      _exit(5);
    mdb_env_close(r.env);
    _exit(0);
  }
  close(p2c[0]);
  close(c2p[1]);
  char c;
  assert_int_equal(read(c2p[0], &c, 1), 1); /* child has its snapshot */
  put_ok(s, "b", "2");
  assert_int_equal(write(p2c[1], "g", 1), 1);
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  close(p2c[1]);
  close(c2p[0]);
  struct teex_store_txn *t;
  assert_int_equal(teex_store_txn_begin(s, 0, &t, &err), TEEX_EROLLBACK);
  assert_non_null(strstr(err.msg, "changed on disk"));
  assert_int_equal(teex_store_put(s, "c", 1, "3", 1, &err), TEEX_EROLLBACK);
  teex_store_close(s);
  assert_int_equal(open_rc(path, root_a, 0, &err), TEEX_EROLLBACK);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

/* A full disk (simulated with RLIMIT_FSIZE in a child: writes past it fail
 * with EFBIG, as they would with ENOSPC): a clear error, nothing lost. */
static void test_disk_full(void **state) {
  (void)state;
  char *dir, *path = store_path("store-disk", &dir);
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  put_ok(s, "keep", "me");
  teex_store_close(s);
  char file[4200];
  snprintf(file, sizeof file, "%s/data.mdb", path);
  struct stat st;
  assert_int_equal(stat(file, &st), 0);
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(pfd[0]);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {(rlim_t)st.st_size + 65536, (rlim_t)st.st_size + 65536};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
      _exit(10);
    struct teex_store *cs;
    struct teex_err cerr;
    if (teex_store_open(path, root_a, 0, &cs, &cerr) != 0)
      _exit(11);
    static uint8_t v[4000];
    char k[32];
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
      snprintf(k, sizeof k, "fill/%d", i);
      rc = teex_store_put(cs, k, strlen(k), v, sizeof v, &cerr);
    }
    if (write(pfd[1], cerr.msg, strlen(cerr.msg)) < 0)
      _exit(12);
    teex_store_close(cs);
    _exit(rc == TEEX_ENOSPC ? 0 : 13);
  }
  close(pfd[1]);
  char msg[600] = {0};
  ssize_t n = read(pfd[0], msg, sizeof msg - 1);
  close(pfd[0]);
  int wst;
  assert_int_equal(waitpid(pid, &wst, 0), pid);
  assert_true(WIFEXITED(wst));
  if (WEXITSTATUS(wst) != 0)
    fail_msg("child status %d: %s", WEXITSTATUS(wst), msg);
  assert_true(n > 0);
  assert_non_null(strstr(msg, "disk full"));
  /* The store is intact: it verifies, and keeps what was committed. */
  s = open_ok(path, root_a, 0);
  assert_int_equal(get_rc(s, "keep", "me"), 0);
  put_ok(s, "after", "ok");
  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

struct writer {
  struct teex_store *s;
  int id;
  int failures;
};

static void *writer_main(void *arg) {
  struct writer *w = arg;
  struct teex_err err;
  char k[32];
  struct teex_buf b;
  teex_buf_init(&b, 64, 0);
  for (int i = 0; i < 150; i++) {
    snprintf(k, sizeof k, "w%d/%d", w->id, i);
    if (teex_store_put(w->s, k, strlen(k), k, strlen(k), &err) != 0 ||
        teex_store_get(w->s, k, strlen(k), &b, &err) != 0 ||
        b.len != strlen(k) || memcmp(b.data, k, b.len) != 0)
      w->failures++;
  }
  teex_buf_free(&b);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  char *dir, *path = store_path("store-threads", &dir);
  struct teex_err err;
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  pthread_t th[3];
  struct writer w[3];
  for (int i = 0; i < 3; i++) {
    w[i] = (struct writer){s, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(w[i].failures, 0);
  }
  struct teex_store_info info;
  assert_int_equal(teex_store_info(s, &info, &err), 0);
  assert_int_equal(info.records, 450);
  teex_store_close(s);
  s = open_ok(path, root_a, 0);
  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

/* ---- confidentiality: canaries ---- */

static void test_canaries(void **state) {
  (void)state;
  char *dir, *path = store_path("store-canary", &dir);
  struct teex_err err;
  char kc[64], vc[64], nc[64];
  uint8_t rnd[12];
  char hex[25];
  teex_random(rnd, sizeof rnd);
  teex_hex_encode(rnd, sizeof rnd, hex);
  snprintf(kc, sizeof kc, "CANARYKEY%s", hex);
  snprintf(vc, sizeof vc, "CANARYVALUE%s", hex);
  snprintf(nc, sizeof nc, "CANARYNS%s", hex);
  struct teex_store *s = open_ok(path, root_a, TEEX_STORE_CREATE);
  char key[256], val[256];
  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof key, "%s/%s-%d", nc, kc, i);
    snprintf(val, sizeof val, "%s-%d", vc, i);
    put_ok(s, key, val);
    snprintf(key, sizeof key, "%s-%d", kc, i);
    put_ok(s, key, vc);
  }
  /* Overwrites and deletes leave free pages behind: they must hold no
   * plaintext either. */
  for (int i = 0; i < 50; i += 2) {
    snprintf(key, sizeof key, "%s-%d", kc, i);
    assert_int_equal(teex_store_del(s, key, strlen(key), &err), 0);
    snprintf(key, sizeof key, "%s/%s-%d", nc, kc, i + 1);
    put_ok(s, key, vc);
  }
  /* The largest value: a page-spanning record. */
  static char bigv[20000];
  for (size_t i = 0; i + strlen(vc) < sizeof bigv; i += strlen(vc))
    memcpy(bigv + i, vc, strlen(vc));
  assert_int_equal(teex_store_put(s, kc, strlen(kc), bigv, sizeof bigv, &err),
                   0);
  teex_store_close(s);

  char hit[512];
  const char *canaries[] = {kc, vc, nc};
  for (int i = 0; i < 3; i++) {
    int n = tu_tree_contains(dir, canaries[i], strlen(canaries[i]), hit);
    if (n != 0)
      fail_msg("canary %d found in %s", i, hit);
  }
  /* The root key never reaches the disk. */
  assert_int_equal(tu_tree_contains(dir, root_a, sizeof root_a, hit), 0);

  /* Positive controls: the same search finds a canary written in the clear,
   * in hex and in base64, beside the store's files. */
  char file[4200];
  snprintf(file, sizeof file, "%s/plain.txt", path);
  char blob[512];
  snprintf(blob, sizeof blob, "junk before %s junk after", vc);
  assert_int_equal(tu_write_file(file, blob, strlen(blob)), 0);
  assert_int_equal(tu_tree_contains(dir, vc, strlen(vc), hit), 1);
  assert_non_null(strstr(hit, "plain.txt"));
  unlink(file);
  char enc[256];
  teex_hex_encode(kc, strlen(kc), enc);
  snprintf(file, sizeof file, "%s/hex.txt", path);
  assert_int_equal(tu_write_file(file, enc, strlen(enc)), 0);
  assert_int_equal(tu_tree_contains(dir, kc, strlen(kc), hit), 1);
  unlink(file);
  teex_base64_encode(nc, strlen(nc), enc);
  snprintf(file, sizeof file, "%s/b64.txt", path);
  assert_int_equal(tu_write_file(file, enc, strlen(enc)), 0);
  assert_int_equal(tu_tree_contains(dir, nc, strlen(nc), hit), 1);
  unlink(file);

  /* And the store still reads them back. */
  s = open_ok(path, root_a, 0);
  snprintf(key, sizeof key, "%s/%s-%d", nc, kc, 3);
  assert_int_equal(get_rc(s, key, vc), 0);
  teex_store_close(s);
  tu_rmtree(dir);
  free(dir);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mac),
      cmocka_unit_test(test_put_get_del),
      cmocka_unit_test(test_transactions),
      cmocka_unit_test(test_scan),
      cmocka_unit_test(test_wrong_key_and_foreign),
      cmocka_unit_test(test_flip_every_byte),
      cmocka_unit_test(test_swap_records),
      cmocka_unit_test(test_rollback),
      cmocka_unit_test(test_rollback_while_open),
      cmocka_unit_test(test_map_full),
      cmocka_unit_test(test_disk_full),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_canaries),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
