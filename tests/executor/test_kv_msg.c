/* The teex.kv messages of the executor channel and the namespace mapping
 * the worker applies: round trips of every operation; calls out of bounds
 * (long keys and values, unknown operations and flags, bad TTL and scan
 * page, repeated fields) refused by encoder and decoder alike; a reply
 * carrying the call's error, a command's outcome, or a scan page cut to
 * what fits (more = 1); a service's namespace from its id, keys mapped in
 * and scan keys mapped out, and a server reply outside the namespace
 * refused. */
#include "executor/msg.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct teex_buf buf(void) {
  struct teex_buf b;
  teex_buf_init(&b, 4u << 20, 0);
  return b;
}

static const uint8_t *body(const struct teex_buf *b) {
  return b->data + TEEX_XMSG_HDR;
}

static size_t body_len(const struct teex_buf *b) {
  return b->len - TEEX_XMSG_HDR;
}

static void test_round_trips(void **state) {
  (void)state;
  struct teex_buf b = buf();
  struct teex_err err;
  struct teex_ds_cmd in = {.op = TEEX_DS_CAS,
                           .flags = TEEX_DS_EXPECT_ABSENT,
                           .key = (const uint8_t *)"k\0ey",
                           .key_len = 4,
                           .val = (const uint8_t *)"new",
                           .val_len = 3,
                           .expect = (const uint8_t *)"",
                           .expect_len = 0,
                           .ttl_ms = 1500},
                     out;
  assert_int_equal(teex_xmsg_encode_kv(&b, &in), 0);
  assert_int_equal(b.data[2], TEEX_XMSG_KV);
  assert_int_equal(teex_xmsg_decode_kv(body(&b), body_len(&b), &out, &err), 0);
  assert_int_equal(out.op, TEEX_DS_CAS);
  assert_int_equal(out.flags, TEEX_DS_EXPECT_ABSENT);
  assert_int_equal(out.key_len, 4);
  assert_memory_equal(out.key, "k\0ey", 4);
  assert_int_equal(out.val_len, 3);
  assert_int_equal(out.ttl_ms, 1500);
  assert_null(out.grant);

  struct teex_ds_cmd incr = {.op = TEEX_DS_INCR,
                             .key = (const uint8_t *)"n",
                             .key_len = 1,
                             .delta = -7};
  assert_int_equal(teex_xmsg_encode_kv(&b, &incr), 0);
  assert_int_equal(teex_xmsg_decode_kv(body(&b), body_len(&b), &out, &err), 0);
  assert_int_equal(out.delta, -7);
  assert_true(teex_xmsg_kv_writes(out.op));

  struct teex_ds_cmd scan = {.op = TEEX_DS_SCAN,
                             .key = (const uint8_t *)"",
                             .after = (const uint8_t *)"p/3",
                             .after_len = 3,
                             .limit = TEEX_EXEC_KV_SCAN_MAX};
  assert_int_equal(teex_xmsg_encode_kv(&b, &scan), 0);
  assert_int_equal(teex_xmsg_decode_kv(body(&b), body_len(&b), &out, &err), 0);
  assert_int_equal(out.op, TEEX_DS_SCAN);
  assert_int_equal(out.key_len, 0);
  assert_int_equal(out.after_len, 3);
  assert_int_equal(out.limit, TEEX_EXEC_KV_SCAN_MAX);
  assert_false(teex_xmsg_kv_writes(out.op));
  teex_buf_free(&b);
}

static void test_bounds(void **state) {
  (void)state;
  struct teex_buf b = buf();
  struct teex_err err;
  static uint8_t big[TEEX_EXEC_KV_VALUE_MAX + 1];
  struct teex_ds_cmd c = {.op = TEEX_DS_SET,
                          .key = big,
                          .key_len = TEEX_EXEC_KV_KEY_MAX + 1,
                          .val = big,
                          .val_len = 1},
                     out;
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), TEEX_ETOOBIG);
  c.key_len = TEEX_EXEC_KV_KEY_MAX;
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), 0);
  c.val_len = TEEX_EXEC_KV_VALUE_MAX + 1;
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), TEEX_ETOOBIG);
  c.val_len = 1;
  c.key_len = 0;
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), TEEX_EINVAL);
  c.key_len = 1;
  c.op = TEEX_DS_MSET; /* not a teex.kv operation */
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), TEEX_EINVAL);
  c.op = TEEX_DS_SET;
  c.flags = 0x80;
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), TEEX_EINVAL);
  c.flags = 0;
  c.ttl_ms = TEEX_DS_TTL_MAX_MS + 1;
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), TEEX_EINVAL);
  c.ttl_ms = 0;
  struct teex_ds_cmd scan = {
      .op = TEEX_DS_SCAN, .key = big, .key_len = 0, .limit = 0};
  assert_int_equal(teex_xmsg_encode_kv(&b, &scan), TEEX_EINVAL);
  scan.limit = TEEX_EXEC_KV_SCAN_MAX + 1;
  assert_int_equal(teex_xmsg_encode_kv(&b, &scan), TEEX_EINVAL);

  /* Hand-made bodies: the decoder applies the same rules. */
  assert_int_equal(teex_xmsg_encode_kv(&b, &c), 0);
  uint8_t raw[64];
  size_t n = body_len(&b);
  assert_true(n + 9 <= sizeof raw);
  memcpy(raw, body(&b), n);
  /* a repeated op */
  memcpy(raw + n, body(&b), 9);
  assert_int_equal(teex_xmsg_decode_kv(raw, n + 9, &out, &err), TEEX_EFORMAT);
  /* truncated */
  assert_int_equal(teex_xmsg_decode_kv(raw, n - 1, &out, &err), TEEX_ETRUNC);
  /* an unknown op (99) */
  memcpy(raw, body(&b), n);
  raw[8] = 99;
  assert_int_equal(teex_xmsg_decode_kv(raw, n, &out, &err), TEEX_EINVAL);
  /* no key at all */
  assert_int_equal(teex_xmsg_decode_kv(body(&b), 9, &out, &err), TEEX_EFORMAT);
  teex_buf_free(&b);
}

static void test_replies(void **state) {
  (void)state;
  struct teex_buf b = buf();
  struct teex_err err;
  struct teex_xkv_reply r;
  assert_int_equal(
      teex_xmsg_encode_kv_reply(&b, TEEX_EPERM, NULL, "not your namespace"), 0);
  assert_int_equal(teex_xmsg_decode_kv_reply(body(&b), body_len(&b), &r, &err),
                   0);
  assert_int_equal(r.rc, TEEX_EPERM);
  assert_string_equal(r.text, "not your namespace");

  struct teex_ds_result res = {.status = TEEX_ESTATE,
                               .found = 1,
                               .val = (uint8_t *)"cur",
                               .val_len = 3,
                               .num = -5};
  assert_int_equal(teex_xmsg_encode_kv_reply(&b, 0, &res, ""), 0);
  assert_int_equal(teex_xmsg_decode_kv_reply(body(&b), body_len(&b), &r, &err),
                   0);
  assert_int_equal(r.rc, 0);
  assert_int_equal(r.status, TEEX_ESTATE);
  assert_int_equal(r.found, 1);
  assert_int_equal(r.val_len, 3);
  assert_memory_equal(r.val, "cur", 3);
  assert_int_equal(r.num, -5);
  assert_int_equal(r.n_items, 0);

  /* A page of 20 big items: cut to what fits, the rest on the next page. */
  struct teex_ds_pair items[20];
  static uint8_t v[TEEX_EXEC_KV_VALUE_MAX];
  char keys[20][8];
  for (int i = 0; i < 20; i++) {
    snprintf(keys[i], sizeof keys[i], "k%02d", i);
    items[i] = (struct teex_ds_pair){.key = (const uint8_t *)keys[i],
                                     .key_len = 3,
                                     .val = v,
                                     .val_len = sizeof v};
  }
  struct teex_ds_result page = {.items = items, .n_items = 20};
  assert_int_equal(teex_xmsg_encode_kv_reply(&b, 0, &page, ""), 0);
  assert_true(body_len(&b) <= teex_xmsg_body_max(TEEX_XMSG_KV_REPLY));
  assert_int_equal(teex_xmsg_decode_kv_reply(body(&b), body_len(&b), &r, &err),
                   0);
  assert_true(r.n_items > 0 && r.n_items <= TEEX_EXEC_KV_SCAN_MAX);
  assert_int_equal(r.more, 1);
  assert_memory_equal(r.items[0].key, "k00", 3);
  assert_int_equal(r.items[0].val_len, sizeof v);

  /* A key without its value, and a positive status, are refused. */
  struct teex_buf bad = buf();
  assert_int_equal(teex_xmsg_begin(&bad, TEEX_XMSG_KV_REPLY), 0);
  assert_int_equal(teex_xmsg_put_u32(&bad, TEEX_XT_KV_STATUS, 0), 0);
  assert_int_equal(teex_xmsg_put(&bad, TEEX_XT_KV_ITEM_KEY, "k", 1), 0);
  assert_int_equal(teex_xmsg_end(&bad), 0);
  assert_int_equal(
      teex_xmsg_decode_kv_reply(body(&bad), body_len(&bad), &r, &err),
      TEEX_EFORMAT);
  assert_int_equal(teex_xmsg_begin(&bad, TEEX_XMSG_KV_REPLY), 0);
  assert_int_equal(teex_xmsg_put_u32(&bad, TEEX_XT_KV_STATUS, 7), 0);
  assert_int_equal(teex_xmsg_end(&bad), 0);
  assert_int_equal(
      teex_xmsg_decode_kv_reply(body(&bad), body_len(&bad), &r, &err),
      TEEX_EFORMAT);
  teex_buf_free(&bad);
  teex_buf_free(&b);
}

static void test_namespace(void **state) {
  (void)state;
  uint8_t id[32];
  for (int i = 0; i < 32; i++)
    id[i] = (uint8_t)(0xa0 + i);
  char ns[TEEX_DS_SERVICE_NS_LEN + 1];
  teex_ds_service_ns(id, ns);
  assert_string_equal(ns, "sa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3");

  uint8_t key[TEEX_DS_KEY_MAX], after[TEEX_DS_KEY_MAX];
  struct teex_ds_cmd in = {.op = TEEX_DS_SCAN,
                           .grant = "other",
                           .key = (const uint8_t *)"p/",
                           .key_len = 2,
                           .after = (const uint8_t *)"p/1",
                           .after_len = 3,
                           .limit = 4},
                     out;
  assert_int_equal(teex_ds_ns_cmd(ns, &in, &out, key, after), 0);
  assert_null(out.grant);
  assert_int_equal(out.key_len, strlen(ns) + 3);
  assert_memory_equal(out.key, ns, strlen(ns));
  assert_memory_equal(out.key + strlen(ns), "/p/", 3);
  assert_int_equal(out.after_len, strlen(ns) + 4);
  assert_memory_equal(out.after + strlen(ns), "/p/1", 4);
  /* A key that would not fit with the namespace in front. */
  static uint8_t long_key[TEEX_DS_KEY_MAX];
  in.key = long_key;
  in.key_len = TEEX_DS_KEY_MAX - strlen(ns);
  assert_int_equal(teex_ds_ns_cmd(ns, &in, &out, key, after), TEEX_ETOOBIG);
  in.key_len = 1;
  in.op = TEEX_DS_COUNT;
  assert_int_equal(teex_ds_ns_cmd(ns, &in, &out, key, after), TEEX_EINVAL);
  in.op = TEEX_DS_GET;
  assert_int_equal(teex_ds_ns_cmd("a/b", &in, &out, key, after), TEEX_EINVAL);

  /* Scan items mapped back out; one outside the namespace is refused. */
  struct teex_ds_result res = {0};
  res.items = calloc(2, sizeof *res.items);
  char *k0 = malloc(64), *k1 = malloc(64);
  snprintf(k0, 64, "%s/a", ns);
  snprintf(k1, 64, "%s/bc", ns);
  res.items[0] =
      (struct teex_ds_pair){.key = (uint8_t *)k0, .key_len = strlen(k0)};
  res.items[1] =
      (struct teex_ds_pair){.key = (uint8_t *)k1, .key_len = strlen(k1)};
  res.n_items = 2;
  assert_int_equal(teex_ds_ns_result(ns, &res), 0);
  assert_int_equal(res.items[0].key_len, 1);
  assert_memory_equal(res.items[0].key, "a", 1);
  assert_int_equal(res.items[1].key_len, 2);
  assert_memory_equal(res.items[1].key, "bc", 2);
  snprintf(k1, 64, "sother/x");
  res.items[1].key_len = strlen(k1);
  assert_int_equal(teex_ds_ns_result(ns, &res), TEEX_EPROTO);
  teex_ds_result_free(&res);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_replies),
      cmocka_unit_test(test_namespace),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
