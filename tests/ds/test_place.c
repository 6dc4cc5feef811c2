/* TEE-DS scale-out, the I/O-free parts: the signed placement directory
 * (sign/open, forged, altered and unsigned directories refused, canonical
 * text), rendezvous placement (balanced; adding a hashed group moves about
 * 1/n of the namespaces and only onto the new group; a group added without
 * "hash" moves none; explicit placements override), the placement record,
 * and the state machine's TEEX_DS_PLACE (frozen namespaces refuse writes,
 * moved ones answer TEEX_EMOVED with the record and lose their keys, older
 * epochs never undo newer ones, the marker survives a snapshot). */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/ds.h"
#include "teex/ds_place.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t pk[32], sk[64];

static void add_group(struct teex_ds_dir *d, uint64_t id, int hashed) {
  struct teex_ds_dir_group g;
  memset(&g, 0, sizeof g);
  g.id = id;
  g.hashed = hashed;
  memset(g.policy, (int)id, 32);
  for (int m = 0; m < 3; m++)
    snprintf(g.members[m], sizeof g.members[m], "127.0.0.1:%d",
             7000 + (int)id * 10 + m);
  g.n_members = 3;
  struct teex_err err;
  assert_int_equal(teex_ds_dir_put_group(d, &g, &err), 0);
}

static struct teex_ds_dir *new_dir(int groups) {
  struct teex_ds_dir *d = calloc(1, sizeof(*d));
  assert_non_null(d);
  d->epoch = 1;
  for (int i = 1; i <= groups; i++)
    add_group(d, (uint64_t)i, 1);
  return d;
}

static void test_sign_open(void **state) {
  (void)state;
  struct teex_ds_dir *d = new_dir(2), *o = calloc(1, sizeof(*o));
  struct teex_err err;
  teex_err_clear(&err);
  assert_int_equal(teex_ds_dir_set_place(d, "app", 2, &err), 0);
  assert_int_equal(teex_ds_dir_set_place(d, "alpha", 1, &err), 0);
  assert_int_not_equal(teex_ds_dir_set_place(d, "bad/ns", 1, &err), 0);
  assert_int_not_equal(teex_ds_dir_set_place(d, "x", 9, &err), 0);
  static uint8_t text[TEEX_DS_DIR_MAX], text2[TEEX_DS_DIR_MAX];
  size_t n = 0, n2 = 0;
  assert_int_equal(teex_ds_dir_sign(d, sk, text, sizeof text, &n, &err), 0);
  assert_int_equal(teex_ds_dir_open(text, n, pk, o, &err), 0);
  assert_int_equal(o->epoch, 1);
  assert_int_equal(o->n_groups, 2);
  assert_int_equal(o->n_places, 2);
  assert_string_equal(o->places[0].ns, "alpha"); /* kept sorted */
  assert_int_equal(teex_ds_dir_owner(o, "app"), 2);
  assert_string_equal(o->groups[1].members[2], "127.0.0.1:7022");
  /* canonical: what was read signs to the same bytes */
  assert_int_equal(teex_ds_dir_sign(o, sk, text2, sizeof text2, &n2, &err), 0);
  assert_int_equal(n2, n);
  assert_memory_equal(text2, text, n);

  /* altered: every single byte flipped in turn is refused */
  for (size_t i = 0; i < n; i++) {
    memcpy(text2, text, n);
    text2[i] ^= 0x01;
    assert_int_not_equal(teex_ds_dir_open(text2, n, pk, o, &err), 0);
  }
  /* a placement edited by hand, signature kept */
  memcpy(text2, text, n);
  char *pl = strstr((char *)text2, "place app 2");
  assert_non_null(pl);
  pl[10] = '1';
  assert_int_equal(teex_ds_dir_open(text2, n, pk, o, &err), TEEX_EBADSIG);
  /* signed by another key */
  uint8_t pk2[32], sk2[64];
  teex_ed25519_keypair(pk2, sk2);
  assert_int_equal(teex_ds_dir_sign(d, sk2, text2, sizeof text2, &n2, &err), 0);
  assert_int_equal(teex_ds_dir_open(text2, n2, pk, o, &err), TEEX_EBADSIG);
  /* unsigned: the text without its signature line */
  char *sig = strstr((char *)text, "signature ");
  assert_non_null(sig);
  size_t body = (size_t)((uint8_t *)sig - text);
  assert_int_equal(teex_ds_dir_open(text, body, pk, o, &err), TEEX_EBADSIG);
  /* truncated mid-line, trailing text, unknown version */
  assert_int_equal(teex_ds_dir_open(text, n - 1, pk, o, &err), TEEX_EFORMAT);
  memcpy(text2, text, n);
  memcpy(text2 + n, "x\n", 2);
  assert_int_equal(teex_ds_dir_open(text2, n + 2, pk, o, &err), TEEX_EFORMAT);
  memcpy(text2, text, n);
  text2[19] = '2'; /* "teex-ds-directory v2" */
  assert_int_equal(teex_ds_dir_open(text2, n, pk, o, &err), TEEX_EVERSION);
  /* a placement on a group the directory does not have */
  d->places[0].group = 7;
  assert_int_equal(teex_ds_dir_sign(d, sk, text2, sizeof text2, &n2, &err),
                   TEEX_EINVAL);
  free(d);
  free(o);
}

static void test_rendezvous(void **state) {
  (void)state;
  enum { NS = 20000 };
  struct teex_ds_dir *d = new_dir(4);
  static uint64_t before[NS];
  size_t per[6] = {0};
  char ns[32];
  for (int i = 0; i < NS; i++) {
    snprintf(ns, sizeof ns, "ns%d", i);
    before[i] = teex_ds_dir_owner(d, ns);
    assert_true(before[i] >= 1 && before[i] <= 4);
    per[before[i]]++;
  }
  /* balanced: each of 4 groups holds 25% +- 2% */
  for (int g = 1; g <= 4; g++)
    assert_true(per[g] > NS * 23 / 100 && per[g] < NS * 27 / 100);

  /* a group added without "hash" moves nothing */
  add_group(d, 5, 0);
  for (int i = 0; i < NS; i++) {
    snprintf(ns, sizeof ns, "ns%d", i);
    assert_int_equal(teex_ds_dir_owner(d, ns), before[i]);
  }
  /* ... made a hash group: ~1/5 move, all of them onto group 5 */
  d->groups[4].hashed = 1;
  size_t moved = 0;
  for (int i = 0; i < NS; i++) {
    snprintf(ns, sizeof ns, "ns%d", i);
    uint64_t now = teex_ds_dir_owner(d, ns);
    if (now != before[i]) {
      assert_int_equal(now, 5);
      moved++;
    }
  }
  printf("rendezvous: %zu of %d namespaces moved to the 5th group (%.1f%%)\n",
         moved, NS, 100.0 * (double)moved / NS);
  assert_true(moved > NS * 18 / 100 && moved < NS * 22 / 100);

  /* an explicit placement overrides the hash, and removing it restores it */
  struct teex_err err;
  uint64_t h = teex_ds_dir_hash_owner(d, "ns7");
  uint64_t other = h == 1 ? 2 : 1;
  assert_int_equal(teex_ds_dir_set_place(d, "ns7", other, &err), 0);
  assert_int_equal(teex_ds_dir_owner(d, "ns7"), other);
  assert_int_equal(teex_ds_dir_set_place(d, "ns7", 0, &err), 0);
  assert_int_equal(teex_ds_dir_owner(d, "ns7"), h);
  /* no hash group at all: nothing owns an unplaced namespace */
  for (size_t i = 0; i < d->n_groups; i++)
    d->groups[i].hashed = 0;
  assert_int_equal(teex_ds_dir_owner(d, "ns7"), 0);
  /* the score is a fixed function (stable across builds and machines) */
  assert_int_equal(teex_ds_place_score("app", 1),
                   teex_ds_place_score("app", 1));
  assert_int_not_equal(teex_ds_place_score("app", 1),
                       teex_ds_place_score("app", 2));
  free(d);
}

static void test_record(void **state) {
  (void)state;
  const uint8_t dir[] = "directory bytes";
  struct teex_ds_place_record r = {TEEX_DS_PLACE_MOVED, 3, 9, dir, 15}, p;
  uint8_t *b;
  size_t n;
  assert_int_equal(teex_ds_place_record_encode(&r, &b, &n), 0);
  assert_int_equal(n, TEEX_DS_PLACE_RECORD_HDR + 15);
  assert_int_equal(teex_ds_place_record_parse(b, n, &p), 0);
  assert_int_equal(p.state, TEEX_DS_PLACE_MOVED);
  assert_int_equal(p.group, 3);
  assert_int_equal(p.epoch, 9);
  assert_memory_equal(p.dir, dir, 15);
  assert_int_not_equal(teex_ds_place_record_parse(b, n - 1, &p), 0);
  b[4] = 3; /* unknown state */
  assert_int_not_equal(teex_ds_place_record_parse(b, n, &p), 0);
  free(b);
  r.state = 7;
  assert_int_equal(teex_ds_place_record_encode(&r, &b, &n), TEEX_EINVAL);
}

/* ---- the state machine ---- */

static uint64_t idx;

static int run(struct teex_ds_kv *kv, struct teex_ds_cmd *c,
               struct teex_ds_result *res) {
  assert_int_equal(teex_ds_kv_apply(kv, ++idx, 1000, c, res), 0);
  return res->status;
}

static int set(struct teex_ds_kv *kv, const char *ns, const char *k) {
  struct teex_ds_cmd c = {.op = TEEX_DS_SET, .grant = ns};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  c.val = (const uint8_t *)"v";
  c.val_len = 1;
  struct teex_ds_result res;
  int st = run(kv, &c, &res);
  teex_ds_result_free(&res);
  return st;
}

static int get(const struct teex_ds_kv *kv, const char *ns, const char *k,
               struct teex_ds_result *res) {
  struct teex_ds_cmd c = {.op = TEEX_DS_GET, .grant = ns};
  c.key = (const uint8_t *)k;
  c.key_len = strlen(k);
  assert_int_equal(teex_ds_kv_read(kv, &c, res), 0);
  return res->status;
}

static int place(struct teex_ds_kv *kv, const char *ns, uint8_t st,
                 uint64_t epoch, int64_t *removed) {
  const uint8_t dir[] = "signed directory";
  struct teex_ds_place_record r = {st, 2, epoch, dir, 16};
  uint8_t *b;
  size_t n;
  assert_int_equal(teex_ds_place_record_encode(&r, &b, &n), 0);
  struct teex_ds_cmd c = {
      .op = TEEX_DS_PLACE, .grant = ns, .val = b, .val_len = n};
  /* it travels through the command encoding like any other */
  uint8_t *enc;
  size_t el;
  struct teex_ds_cmd_view v;
  struct teex_err err;
  assert_int_equal(teex_ds_cmd_encode(&c, &enc, &el, &err), 0);
  assert_int_equal(teex_ds_cmd_decode(enc, el, &v, &err), 0);
  struct teex_ds_result res;
  int s = run(kv, &v.cmd, &res);
  if (removed)
    *removed = res.num;
  teex_ds_result_free(&res);
  free(enc);
  free(b);
  return s;
}

static void test_kv_place(void **state) {
  (void)state;
  struct teex_ds_kv *kv;
  struct teex_ds_result res;
  assert_int_equal(teex_ds_kv_new(&kv), 0);
  assert_int_equal(set(kv, "app", "app/a"), 0);
  assert_int_equal(set(kv, "app", "app/b"), 0);
  assert_int_equal(set(kv, "apple", "apple/a"), 0); /* a namespace prefix */
  assert_int_equal(set(kv, "other", "other/x"), 0);

  /* a key is refused on PLACE; only operators send it (server.c) */
  struct teex_ds_cmd bad = {.op = TEEX_DS_PLACE,
                            .grant = "app",
                            .key = (const uint8_t *)"app/a",
                            .key_len = 5};
  assert_int_equal(run(kv, &bad, &res), TEEX_EPERM);
  teex_ds_result_free(&res);

  assert_int_equal(place(kv, "app", TEEX_DS_PLACE_FROZEN, 2, NULL), 0);
  assert_int_equal(set(kv, "app", "app/c"), TEEX_EBUSY);
  assert_int_equal(set(kv, "other", "other/y"), 0); /* others unaffected */
  assert_int_equal(set(kv, "apple", "apple/b"), 0);
  assert_int_equal(get(kv, "app", "app/a", &res), 0); /* reads go on */
  teex_ds_result_free(&res);
  /* the write refused carries the record */
  struct teex_ds_cmd w = {.op = TEEX_DS_DEL,
                          .grant = "app",
                          .key = (const uint8_t *)"app/a",
                          .key_len = 5};
  assert_int_equal(run(kv, &w, &res), TEEX_EBUSY);
  struct teex_ds_place_record rec;
  assert_int_equal(teex_ds_place_record_parse(res.val, res.val_len, &rec), 0);
  assert_int_equal(rec.state, TEEX_DS_PLACE_FROZEN);
  teex_ds_result_free(&res);
  assert_int_equal(teex_ds_kv_count(kv), 6); /* the marker is not counted */

  /* a snapshot carries the marker */
  uint8_t *snap;
  size_t sn;
  struct teex_ds_kv *kv2;
  struct teex_err err;
  assert_int_equal(teex_ds_kv_snapshot(kv, &snap, &sn), 0);
  assert_int_equal(teex_ds_kv_new(&kv2), 0);
  assert_int_equal(teex_ds_kv_restore(kv2, snap, sn, &err), 0);
  assert_int_equal(set(kv2, "app", "app/c"), TEEX_EBUSY);
  teex_ds_kv_free(kv2);
  free(snap);

  int64_t removed = -1;
  assert_int_equal(place(kv, "app", TEEX_DS_PLACE_MOVED, 2, &removed), 0);
  assert_int_equal(removed, 2); /* app/a, app/b dropped */
  assert_int_equal(get(kv, "app", "app/a", &res), TEEX_EMOVED);
  assert_int_equal(teex_ds_place_record_parse(res.val, res.val_len, &rec), 0);
  assert_int_equal(rec.state, TEEX_DS_PLACE_MOVED);
  assert_int_equal(rec.group, 2);
  assert_int_equal(rec.epoch, 2);
  assert_memory_equal(rec.dir, "signed directory", 16);
  teex_ds_result_free(&res);
  assert_int_equal(set(kv, "app", "app/z"), TEEX_EMOVED);
  assert_int_equal(get(kv, "apple", "apple/a", &res), 0); /* not a prefix */
  teex_ds_result_free(&res);
  assert_int_equal(get(kv, "other", "other/x", &res), 0);
  teex_ds_result_free(&res);

  /* the epoch that moved it cannot freeze or own it again */
  assert_int_equal(place(kv, "app", TEEX_DS_PLACE_FROZEN, 2, NULL),
                   TEEX_ESTATE);
  /* an older epoch never undoes it */
  assert_int_equal(place(kv, "app", TEEX_DS_PLACE_OWNED, 1, NULL), TEEX_ESTATE);
  assert_int_equal(set(kv, "app", "app/z"), TEEX_EMOVED);
  /* moved back at a newer epoch: served here again, empty */
  assert_int_equal(place(kv, "app", TEEX_DS_PLACE_OWNED, 3, NULL), 0);
  assert_int_equal(get(kv, "app", "app/a", &res), TEEX_ENOTFOUND);
  teex_ds_result_free(&res);
  assert_int_equal(set(kv, "app", "app/z"), 0);
  /* a malformed record is refused */
  struct teex_ds_cmd junk = {.op = TEEX_DS_PLACE,
                             .grant = "app",
                             .val = (const uint8_t *)"junk",
                             .val_len = 4};
  assert_int_equal(run(kv, &junk, &res), TEEX_EINVAL);
  teex_ds_result_free(&res);
  teex_ds_kv_free(kv);
}

int main(void) {
  teex_ed25519_keypair(pk, sk);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_open),
      cmocka_unit_test(test_rendezvous),
      cmocka_unit_test(test_record),
      cmocka_unit_test(test_kv_place),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
