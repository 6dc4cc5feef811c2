/* TEE-DS state machine: command semantics, limits, encoding, snapshots. */
#include "testutil.h"

#include "teex/ds.h"

#include <stdio.h>
#include <string.h>

#define S(x) (const uint8_t *)(x), strlen(x)

static struct teex_ds_result run(struct teex_ds_kv *kv, uint64_t clock,
                                 const struct teex_ds_cmd *c) {
  static uint64_t index = 1;
  struct teex_ds_result res;
  /* Every command goes through encode/decode, as in the log. */
  uint8_t *enc;
  size_t len;
  struct teex_err err;
  assert_int_equal(teex_ds_cmd_encode(c, &enc, &len, &err), 0);
  struct teex_ds_cmd_view v;
  assert_int_equal(teex_ds_cmd_decode(enc, len, &v, &err), 0);
  assert_int_equal(teex_ds_kv_apply(kv, index++, clock, &v.cmd, &res), 0);
  free(enc);
  return res;
}

static struct teex_ds_result set(struct teex_ds_kv *kv, uint64_t clock,
                                 const char *k, const char *v, uint8_t flags,
                                 uint64_t ttl) {
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .flags = flags, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)v;
  c.val_len = strlen(v);
  c.ttl_ms = ttl;
  return run(kv, clock, &c);
}

/* GET: returns the value as a static string, or NULL when absent. */
static const char *get(struct teex_ds_kv *kv, uint64_t clock, const char *k) {
  static char buf[256];
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  struct teex_ds_result r = run(kv, clock, &c);
  const char *out = NULL;
  if (r.status == 0) {
    assert_true(r.val_len < sizeof(buf));
    memcpy(buf, r.val, r.val_len);
    buf[r.val_len] = 0;
    out = buf;
  } else {
    assert_int_equal(r.status, TEEX_ENOTFOUND);
  }
  teex_ds_result_free(&r);
  return out;
}

static void test_set_get_flags(void **state) {
  (void)state;
  struct teex_ds_kv *kv;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  struct teex_ds_result r = set(kv, 1, "app/a", "1", TEEX_DS_IF_PRESENT, 0);
  assert_int_equal(r.status, TEEX_ENOTFOUND);
  assert_null(get(kv, 1, "app/a"));
  r = set(kv, 1, "app/a", "1", TEEX_DS_IF_ABSENT, 0);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.found, 0);
  r = set(kv, 1, "app/a", "2", TEEX_DS_IF_ABSENT, 0);
  assert_int_equal(r.status, TEEX_EEXIST);
  assert_string_equal(get(kv, 1, "app/a"), "1");
  r = set(kv, 1, "app/a", "3", TEEX_DS_IF_PRESENT, 0);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.found, 1);
  assert_string_equal(get(kv, 1, "app/a"), "3");
  /* delete: 1 then not found */
  struct teex_ds_cmd d = {.op = TEEX_DS_DEL, .grant = "app"};
  d.key = (const uint8_t *)"app/a";
  d.key_len = 5;
  r = run(kv, 1, &d);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.num, 1);
  r = run(kv, 1, &d);
  assert_int_equal(r.status, TEEX_ENOTFOUND);
  assert_int_equal(teex_ds_kv_count(kv), 0);
  teex_ds_kv_free(kv);
}

static void test_cas_incr(void **state) {
  (void)state;
  struct teex_ds_kv *kv;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  struct teex_ds_cmd c = {.op = TEEX_DS_CAS, .grant = "app"};
  c.key = (const uint8_t *)"app/c";
  c.key_len = 5;
  c.flags = TEEX_DS_EXPECT_ABSENT;
  c.val = (const uint8_t *)"v1";
  c.val_len = 2;
  struct teex_ds_result r = run(kv, 1, &c);
  assert_int_equal(r.status, 0);
  r = run(kv, 1, &c); /* absent expected, now present: mismatch */
  assert_int_equal(r.status, TEEX_ESTATE);
  assert_int_equal(r.found, 1);
  assert_memory_equal(r.val, "v1", 2);
  teex_ds_result_free(&r);
  c.flags = 0;
  c.expect = (const uint8_t *)"v0";
  c.expect_len = 2;
  c.val = (const uint8_t *)"v2";
  r = run(kv, 1, &c);
  assert_int_equal(r.status, TEEX_ESTATE);
  teex_ds_result_free(&r);
  assert_string_equal(get(kv, 1, "app/c"), "v1");
  c.expect = (const uint8_t *)"v1";
  r = run(kv, 1, &c);
  assert_int_equal(r.status, 0);
  assert_string_equal(get(kv, 1, "app/c"), "v2");

  struct teex_ds_cmd in = {.op = TEEX_DS_INCR, .grant = "app", .delta = 5};
  in.key = (const uint8_t *)"app/n";
  in.key_len = 5;
  r = run(kv, 1, &in);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.num, 5);
  in.delta = -7;
  r = run(kv, 1, &in);
  assert_int_equal(r.num, -2);
  assert_string_equal(get(kv, 1, "app/n"), "-2");
  in.delta = INT64_MAX;
  r = run(kv, 1, &in);
  assert_int_equal(r.num, INT64_MAX - 2);
  r = run(kv, 1, &in); /* overflow: refused, value unchanged */
  assert_int_equal(r.status, TEEX_EINVAL);
  in.key = (const uint8_t *)"app/c"; /* "v2" is not an integer */
  r = run(kv, 1, &in);
  assert_int_equal(r.status, TEEX_EFORMAT);
  set(kv, 1, "app/z", "007", 0, 0); /* not canonical decimal */
  in.key = (const uint8_t *)"app/z";
  r = run(kv, 1, &in);
  assert_int_equal(r.status, TEEX_EFORMAT);
  teex_ds_kv_free(kv);
}

static void test_ttl_deterministic(void **state) {
  (void)state;
  struct teex_ds_kv *a, *b;
  assert_int_equal(teex_ds_kv_new(&a), 0);
  assert_int_equal(teex_ds_kv_new(&b), 0);
  struct teex_ds_kv *kvs[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    set(kvs[i], 1000, "app/t", "x", 0, 500);
    assert_string_equal(get(kvs[i], 1499, "app/t"), "x");
    /* A new leader whose clock lags: the group clock does not go back. */
    assert_string_equal(get(kvs[i], 900, "app/t"), "x");
    assert_int_equal(teex_ds_kv_clock(kvs[i]), 1499);
    assert_null(get(kvs[i], 1500, "app/t"));
    assert_int_equal(teex_ds_kv_count(kvs[i]), 0);
    /* KEEP_TTL on an existing key */
    set(kvs[i], 2000, "app/u", "1", 0, 100);
    set(kvs[i], 2050, "app/u", "2", TEEX_DS_KEEP_TTL, 0);
    assert_string_equal(get(kvs[i], 2099, "app/u"), "2");
    assert_null(get(kvs[i], 2100, "app/u"));
    /* if-absent succeeds once the old value expired */
    set(kvs[i], 3000, "app/v", "old", 0, 10);
    struct teex_ds_result r =
        set(kvs[i], 3010, "app/v", "new", TEEX_DS_IF_ABSENT, 0);
    assert_int_equal(r.status, 0);
  }
  uint8_t da[32], db[32];
  teex_ds_kv_digest(a, da);
  teex_ds_kv_digest(b, db);
  assert_memory_equal(da, db, 32);
  teex_ds_kv_free(a);
  teex_ds_kv_free(b);
}

static void test_namespace_refused(void **state) {
  (void)state;
  struct teex_ds_kv *kv;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  struct teex_ds_result r = set(kv, 1, "other/a", "1", 0, 0);
  assert_int_equal(r.status, TEEX_EPERM);
  r = set(kv, 1, "app", "1", 0, 0); /* the bare namespace is not a key */
  assert_int_equal(r.status, TEEX_EPERM);
  r = set(kv, 1, "apple/a", "1", 0, 0); /* a prefix is not the namespace */
  assert_int_equal(r.status, TEEX_EPERM);
  struct teex_ds_pair p[2] = {{S("app/ok"), S("1")}, {S("other/x"), S("2")}};
  struct teex_ds_cmd m = {
      .op = TEEX_DS_MSET, .grant = "app", .pairs = p, .n_pairs = 2};
  r = run(kv, 1, &m);
  assert_int_equal(r.status, TEEX_EPERM);
  assert_int_equal(teex_ds_kv_count(kv), 0); /* nothing of it applied */
  struct teex_ds_cmd s = {.op = TEEX_DS_SCAN, .grant = "app", .limit = 10};
  s.key = (const uint8_t *)"oth";
  s.key_len = 3;
  r = run(kv, 1, &s);
  assert_int_equal(r.status, TEEX_EPERM);
  teex_ds_kv_free(kv);
}

static void test_mset_scan_pages(void **state) {
  (void)state;
  struct teex_ds_kv *kv;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  char keys[20][16];
  struct teex_ds_pair p[20];
  for (int i = 0; i < 20; i++) {
    snprintf(keys[i], sizeof(keys[i]), "app/k%02d", 19 - i);
    p[i] = (struct teex_ds_pair){(const uint8_t *)keys[i], strlen(keys[i]),
                                 (const uint8_t *)keys[i], strlen(keys[i])};
  }
  struct teex_ds_cmd m = {
      .op = TEEX_DS_MSET, .grant = "app", .pairs = p, .n_pairs = 20};
  struct teex_ds_result r = run(kv, 1, &m);
  assert_int_equal(r.status, 0);
  set(kv, 1, "app/j", "before", 0, 0);
  set(kv, 1, "app/l", "after", 0, 0);
  set(kv, 1, "app/k05x", "gone", 0, 5); /* expires: skipped by scan */
  int seen = 0, pages = 0;
  uint8_t cursor[64];
  size_t cursor_len = 0;
  do {
    struct teex_ds_cmd s = {.op = TEEX_DS_SCAN, .grant = "app", .limit = 7};
    s.key = (const uint8_t *)"app/k";
    s.key_len = 5;
    s.after = cursor;
    s.after_len = cursor_len;
    r = run(kv, 10, &s);
    assert_int_equal(r.status, 0);
    for (size_t i = 0; i < r.n_items; i++) {
      char want[16];
      snprintf(want, sizeof(want), "app/k%02d", seen++);
      assert_int_equal(r.items[i].key_len, strlen(want));
      assert_memory_equal(r.items[i].key, want, strlen(want));
    }
    pages++;
    int more = r.more;
    if (r.n_items) {
      cursor_len = r.items[r.n_items - 1].key_len;
      memcpy(cursor, r.items[r.n_items - 1].key, cursor_len);
    }
    teex_ds_result_free(&r);
    if (!more)
      break;
  } while (pages < 10);
  assert_int_equal(seen, 20);
  assert_int_equal(pages, 3);
  teex_ds_kv_free(kv);
}

static void test_limits_and_decode(void **state) {
  (void)state;
  struct teex_err err;
  uint8_t *enc;
  size_t len;
  static uint8_t big[TEEX_DS_VALUE_MAX + 1];
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = "app"};
  c.key = (const uint8_t *)"app/big";
  c.key_len = 7;
  c.val = big;
  c.val_len = sizeof(big);
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_ETOOBIG);
  c.val_len = TEEX_DS_VALUE_MAX;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), 0);
  free(enc);
  c.key = big;
  c.key_len = TEEX_DS_KEY_MAX + 1;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_ETOOBIG);
  c.key_len = 7;
  c.key = (const uint8_t *)"app/big";
  c.grant = "Bad/NS";
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_EINVAL);
  c.grant = "app";
  c.flags = TEEX_DS_IF_ABSENT | TEEX_DS_IF_PRESENT;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_EINVAL);
  c.flags = 0;
  c.val_len = 3;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), 0);
  struct teex_ds_cmd_view v;
  /* every truncation is refused; a trailing byte too; a bad version too */
  for (size_t i = 0; i < len; i++)
    assert_int_not_equal(teex_ds_cmd_decode(enc, i, &v, &err), 0);
  uint8_t *longer = malloc(len + 1);
  memcpy(longer, enc, len);
  longer[len] = 0;
  assert_int_equal(teex_ds_cmd_decode(longer, len + 1, &v, &err), TEEX_EFORMAT);
  longer[0] = 9;
  assert_int_equal(teex_ds_cmd_decode(longer, len, &v, &err), TEEX_EVERSION);
  /* a key length field claiming more than the limit */
  memcpy(longer, enc, len);
  size_t koff = 4 + 3;
  longer[koff + 3] = 0x7f;
  assert_int_equal(teex_ds_cmd_decode(longer, len, &v, &err), TEEX_ETOOBIG);
  free(longer);
  assert_int_equal(teex_ds_cmd_decode(enc, len, &v, &err), 0);
  assert_int_equal(v.cmd.val_len, 3);
  assert_string_equal(v.cmd.grant, "app");
  free(enc);
}

static void test_snapshot_roundtrip(void **state) {
  (void)state;
  struct teex_ds_kv *a, *b;
  assert_int_equal(teex_ds_kv_new(&a), 0);
  assert_int_equal(teex_ds_kv_new(&b), 0);
  set(a, 100, "app/x", "1", 0, 0);
  set(a, 100, "app/y", "2", 0, 50);
  set(b, 1, "app/old", "zzz", 0, 0);
  uint8_t *snap;
  size_t len;
  assert_int_equal(teex_ds_kv_snapshot(a, &snap, &len), 0);
  struct teex_err err;
  /* a corrupt snapshot changes nothing */
  assert_int_not_equal(teex_ds_kv_restore(b, snap, len - 1, &err), 0);
  assert_string_equal(get(b, 1, "app/old"), "zzz");
  assert_int_equal(teex_ds_kv_restore(b, snap, len, &err), 0);
  uint8_t da[32], db[32];
  teex_ds_kv_digest(a, da);
  teex_ds_kv_digest(b, db);
  assert_memory_equal(da, db, 32);
  assert_null(get(b, 150, "app/y"));
  assert_null(get(b, 150, "app/old"));
  free(snap);
  teex_ds_kv_free(a);
  teex_ds_kv_free(b);
}

static struct teex_ds_result expire(struct teex_ds_kv *kv, uint64_t clock,
                                    const char *k, uint64_t ttl) {
  struct teex_ds_cmd c = {.op = TEEX_DS_EXPIRE, .grant = "app", .ttl_ms = ttl};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  return run(kv, clock, &c);
}

/* GET through the log, returning the whole result (caller frees). */
static struct teex_ds_result get_res(struct teex_ds_kv *kv, uint64_t clock,
                                     const char *k) {
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = "app"};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  return run(kv, clock, &c);
}

static void test_expire_and_ttl(void **state) {
  (void)state;
  struct teex_ds_kv *a, *b;
  assert_int_equal(teex_ds_kv_new(&a), 0);
  assert_int_equal(teex_ds_kv_new(&b), 0);
  struct teex_ds_kv *kvs[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    struct teex_ds_kv *kv = kvs[i];
    /* a missing key: not found, nothing created */
    struct teex_ds_result r = expire(kv, 1000, "app/e", 500);
    assert_int_equal(r.status, TEEX_ENOTFOUND);
    assert_int_equal(r.found, 0);
    assert_int_equal(teex_ds_kv_count(kv), 0);
    /* GET reports no expiry, then the one EXPIRE set */
    set(kv, 1000, "app/e", "v", 0, 0);
    r = get_res(kv, 1000, "app/e");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.expire_at_ms, 0);
    teex_ds_result_free(&r);
    r = expire(kv, 1100, "app/e", 500);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.found, 1);
    assert_int_equal(r.num, 0); /* it had no expiry */
    assert_int_equal(r.expire_at_ms, 1600);
    r = get_res(kv, 1200, "app/e");
    assert_int_equal(r.expire_at_ms, 1600);
    assert_int_equal(r.expire_at_ms - r.clock_ms, 400); /* remaining TTL */
    assert_memory_equal(r.val, "v", 1);
    teex_ds_result_free(&r);
    /* the value is untouched by EXPIRE; a second EXPIRE reports the first */
    r = expire(kv, 1300, "app/e", 1000);
    assert_int_equal(r.num, 1600);
    assert_int_equal(r.expire_at_ms, 2300);
    assert_string_equal(get(kv, 2299, "app/e"), "v");
    /* ttl 0 removes the expiry (PERSIST): the key outlives its old TTL */
    r = expire(kv, 2299, "app/e", 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.num, 2300);
    assert_int_equal(r.expire_at_ms, 0);
    assert_string_equal(get(kv, 5000, "app/e"), "v");
    /* an expired key cannot be revived by EXPIRE */
    set(kv, 5000, "app/f", "w", 0, 10);
    r = expire(kv, 5010, "app/f", 0);
    assert_int_equal(r.status, TEEX_ENOTFOUND);
    assert_null(get(kv, 5010, "app/f"));
    /* outside the grant: refused before anything is looked at */
    r = expire(kv, 5010, "other/e", 10);
    assert_int_equal(r.status, TEEX_EPERM);
    /* a TTL past the limit is an invalid command */
    struct teex_ds_cmd c = {.op = TEEX_DS_EXPIRE, .grant = "app"};
    c.key = (const uint8_t *)"app/e";
    c.key_len = 5;
    c.ttl_ms = TEEX_DS_TTL_MAX_MS + 1;
    uint8_t *enc;
    size_t len;
    struct teex_err err;
    assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_EINVAL);
    assert_int_equal(teex_ds_kv_apply(kv, 99, 5010, &c, &r), 0);
    assert_int_equal(r.status, TEEX_EINVAL);
  }
  /* both machines went through the same commands: same state */
  uint8_t da[32], db[32];
  teex_ds_kv_digest(a, da);
  teex_ds_kv_digest(b, db);
  assert_memory_equal(da, db, 32);
  /* the expiry survives a snapshot */
  uint8_t *snap;
  size_t len;
  struct teex_err err;
  struct teex_ds_kv *c;
  assert_int_equal(teex_ds_kv_new(&c), 0);
  expire(a, 6000, "app/e", 100);
  assert_int_equal(teex_ds_kv_snapshot(a, &snap, &len), 0);
  assert_int_equal(teex_ds_kv_restore(c, snap, len, &err), 0);
  struct teex_ds_result r = get_res(c, 6050, "app/e");
  assert_int_equal(r.expire_at_ms, 6100);
  teex_ds_result_free(&r);
  assert_null(get(c, 6100, "app/e"));
  free(snap);
  teex_ds_kv_free(a);
  teex_ds_kv_free(b);
  teex_ds_kv_free(c);
}

static struct teex_ds_cmd count_cmd(const char *prefix) {
  struct teex_ds_cmd c = {.op = TEEX_DS_COUNT, .grant = "app"};
  c.key = (const uint8_t *)prefix;
  c.key_len = strlen(prefix);
  return c;
}

static void test_count(void **state) {
  (void)state;
  struct teex_ds_kv *kv;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  set(kv, 100, "app/a1", "x", 0, 0);
  set(kv, 100, "app/a2", "x", 0, 0);
  set(kv, 100, "app/a3", "x", 0, 50); /* expires at 150 */
  set(kv, 100, "app/b1", "x", 0, 0);
  set(kv, 100, "app/a", "x", 0, 0); /* the prefix itself is a key too */
  struct teex_ds_cmd c = count_cmd("app/a");
  struct teex_ds_result r = run(kv, 120, &c);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.num, 4);
  /* through teex_ds_kv_read too, without changing anything */
  uint8_t before[32], after[32];
  teex_ds_kv_digest(kv, before);
  assert_int_equal(teex_ds_kv_read(kv, &c, &r), 0);
  assert_int_equal(r.num, 4);
  teex_ds_kv_digest(kv, after);
  assert_memory_equal(before, after, 32);
  /* the expired key no longer counts */
  r = run(kv, 150, &c);
  assert_int_equal(r.num, 3);
  struct teex_ds_cmd all = count_cmd("app/");
  assert_int_equal(teex_ds_kv_read(kv, &all, &r), 0);
  assert_int_equal(r.num, 4);
  assert_int_equal((size_t)r.num, teex_ds_kv_count(kv));
  struct teex_ds_cmd none = count_cmd("app/zz");
  r = run(kv, 150, &none);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.num, 0);
  /* the prefix must be inside the grant: not the bare namespace, not
   * another one */
  struct teex_ds_cmd bad = count_cmd("app");
  assert_int_equal(teex_ds_kv_read(kv, &bad, &r), 0);
  assert_int_equal(r.status, TEEX_EPERM);
  bad = count_cmd("ap");
  r = run(kv, 150, &bad);
  assert_int_equal(r.status, TEEX_EPERM);
  /* a write is not a read */
  struct teex_ds_cmd e = {.op = TEEX_DS_EXPIRE, .grant = "app"};
  e.key = (const uint8_t *)"app/a1";
  e.key_len = 6;
  assert_int_equal(teex_ds_kv_read(kv, &e, &r), TEEX_EINVAL);
  teex_ds_kv_free(kv);
}

/* TEEX_DS_TXN: checks against the state before the command, writes only if
 * every check holds, nothing at all otherwise; deterministic replicas. */
static struct teex_ds_result txn(struct teex_ds_kv *kv, const char *kinds,
                                 const char *const *kvs) {
  struct teex_ds_pair pairs[8];
  size_t n = strlen(kinds);
  for (size_t i = 0; i < n; i++)
    pairs[i] = (struct teex_ds_pair){S(kvs[2 * i]), S(kvs[2 * i + 1])};
  struct teex_ds_cmd c = {.op = TEEX_DS_TXN, .grant = "app"};
  c.pairs = pairs;
  c.n_pairs = n;
  c.expect = (const uint8_t *)kinds;
  c.expect_len = n;
  return run(kv, 1, &c);
}

static void test_txn(void **state) {
  (void)state;
  struct teex_ds_kv *kv, *kv2;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  assert_int_equal(teex_ds_kv_new(&kv2), 0);
  static const char E = TEEX_DS_TXN_EQ, A = TEEX_DS_TXN_ABSENT,
                    P = TEEX_DS_TXN_PUT, D = TEEX_DS_TXN_DEL;
  char k1[] = {A, P, P, 0};
  const char *v1[] = {"app/n", "", "app/n", "1", "app/x", "a"};
  struct teex_ds_result r = txn(kv, k1, v1);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.num, 2);
  assert_string_equal(get(kv, 1, "app/n"), "1");
  /* A stale read: the first check fails, nothing of it is written. */
  char k2[] = {E, E, P, D, 0};
  const char *v2[] = {"app/n", "1", "app/x", "b", "app/n", "2", "app/x", ""};
  r = txn(kv, k2, v2);
  assert_int_equal(r.status, TEEX_ESTATE);
  assert_int_equal(r.num, 1);
  assert_string_equal(get(kv, 1, "app/n"), "1");
  assert_string_equal(get(kv, 1, "app/x"), "a");
  /* An absent check on a present key fails too. */
  char k3[] = {A, P, 0};
  const char *v3[] = {"app/x", "", "app/y", "y"};
  r = txn(kv, k3, v3);
  assert_int_equal(r.status, TEEX_ESTATE);
  assert_int_equal(r.num, 0);
  assert_null(get(kv, 1, "app/y"));
  /* Fresh reads: both writes land, a delete of an absent key is fine. */
  const char *v4[] = {"app/n", "1", "app/x", "a", "app/n", "2", "app/x", ""};
  r = txn(kv, k2, v4);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.num, 2);
  assert_string_equal(get(kv, 1, "app/n"), "2");
  assert_null(get(kv, 1, "app/x"));
  char k5[] = {D, 0};
  const char *v5[] = {"app/x", ""};
  assert_int_equal(txn(kv, k5, v5).status, 0);
  /* Outside the grant, and malformed: refused, nothing written. */
  char k6[] = {P, P, 0};
  const char *v6[] = {"app/z", "1", "other/z", "1"};
  assert_int_equal(txn(kv, k6, v6).status, TEEX_EPERM);
  assert_null(get(kv, 1, "app/z"));
  struct teex_ds_pair pr = {S("app/z"), S("1")};
  uint8_t bad = 9;
  struct teex_ds_cmd c = {.op = TEEX_DS_TXN,
                          .grant = "app",
                          .pairs = &pr,
                          .n_pairs = 1,
                          .expect = &bad,
                          .expect_len = 1};
  uint8_t *enc;
  size_t len;
  struct teex_err err;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_EINVAL);
  c.expect_len = 0;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &len, &err), TEEX_EINVAL);
  /* Determinism: the same commands on another replica, the same state. */
  assert_int_equal(txn(kv2, k1, v1).status, 0);
  assert_int_equal(txn(kv2, k2, v2).status, TEEX_ESTATE);
  assert_int_equal(txn(kv2, k3, v3).status, TEEX_ESTATE);
  assert_int_equal(txn(kv2, k2, v4).status, 0);
  assert_int_equal(txn(kv2, k5, v5).status, 0);
  assert_int_equal(txn(kv2, k6, v6).status, TEEX_EPERM);
  uint8_t d1[32], d2[32];
  /* Same clock on both (get() above ran at clock 1 too). */
  teex_ds_kv_digest(kv, d1);
  teex_ds_kv_digest(kv2, d2);
  assert_memory_equal(d1, d2, 32);
  teex_ds_kv_free(kv);
  teex_ds_kv_free(kv2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_set_get_flags),
      cmocka_unit_test(test_cas_incr),
      cmocka_unit_test(test_ttl_deterministic),
      cmocka_unit_test(test_namespace_refused),
      cmocka_unit_test(test_mset_scan_pages),
      cmocka_unit_test(test_limits_and_decode),
      cmocka_unit_test(test_snapshot_roundtrip),
      cmocka_unit_test(test_expire_and_ttl),
      cmocka_unit_test(test_count),
      cmocka_unit_test(test_txn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
