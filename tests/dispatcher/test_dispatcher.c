/* The dispatcher's pieces without the network: batch ids, task records
 * round-trip and refuse damage, and the file-backed chain applies the
 * Settlement contract's rules (signatures, escrow, debits == credits, new
 * batch ids, cumulative semantics). */
#include "testutil.h"

#include "dispatcher/state.h"
#include "teex/crypto.h"
#include "teex/dispatcher.h"

#include <stdio.h>
#include <unistd.h>
#include <string.h>

static void test_batch_id(void **state) {
  (void)state;
  uint8_t disp[20], pre[64], want[32], got[32];
  memset(disp, 0xd1, 20);
  memset(pre, 0, 64);
  memcpy(pre + 12, disp, 20);
  pre[62] = 1; /* sequence 258 */
  pre[63] = 2;
  teex_keccak256(pre, 64, want);
  teex_dispatcher_batch_id(disp, 258, got);
  assert_memory_equal(got, want, 32);
  teex_dispatcher_batch_id(disp, 259, got);
  assert_memory_not_equal(got, want, 32);
}

static void test_task_record(void **state) {
  (void)state;
  struct dsp_task t, u;
  memset(&t, 0, sizeof t);
  t.seq = 42;
  t.state = DSP_EARNED;
  teex_random(&t.auth, sizeof t.auth);
  t.auth.price = 100;
  t.auth.cumulative = (teex_amount)1 << 100;
  t.svc.price = 100;
  t.svc.remuneration = 60;
  t.nassigned = 2;
  memset(t.assigned[1], 3, 20);
  t.nfailed = 1;
  memset(t.failed[0], 4, 20);
  t.expires_at = 1234;
  t.fail_at = 5678;
  t.has_receipt = 1;
  memset(t.rcpt.task_id, 9, 32);
  memset(t.rsig, 8, 65);
  uint8_t rec[DSP_TASK_REC_MAX];
  size_t n = dsp_task_encode(&t, rec);
  assert_true(n <= DSP_TASK_REC_MAX);
  assert_int_equal(dsp_task_decode(rec, n, &u), 0);
  assert_true(u.seq == 42 && u.state == DSP_EARNED && u.nassigned == 2 &&
              u.nfailed == 1 && u.expires_at == 1234 && u.fail_at == 5678 &&
              u.has_receipt == 1);
  assert_memory_equal(u.auth.task_id, t.auth.task_id, 32);
  assert_memory_equal(u.auth.sig, t.auth.sig, 65);
  assert_true(u.auth.cumulative == t.auth.cumulative);
  uint8_t again[DSP_TASK_REC_MAX];
  assert_int_equal(dsp_task_encode(&u, again), n);
  assert_memory_equal(again, rec, n);
  assert_true(u.svc.remuneration == 60);
  assert_memory_equal(u.assigned[1], t.assigned[1], 20);
  assert_memory_equal(u.rcpt.task_id, t.rcpt.task_id, 32);
  assert_memory_equal(u.rsig, t.rsig, 65);
  /* truncated, extended, or with a bad count: refused */
  assert_int_equal(dsp_task_decode(rec, n - 1, &u), TEEX_EFORMAT);
  rec[n] = 0;
  assert_int_equal(dsp_task_decode(rec, n + 1, &u), TEEX_EFORMAT);
  uint8_t bad[DSP_TASK_REC_MAX];
  memcpy(bad, rec, n);
  bad[1] = 9; /* state */
  assert_int_equal(dsp_task_decode(bad, n, &u), TEEX_EFORMAT);
  for (size_t i = 0; i < n; i++)
    (void)dsp_task_decode(rec, i, &u); /* every prefix: no crash */

  /* With datasets: the shares come back, and the receipt points at them;
   * the record without datasets is the one above, byte for byte. */
  t.nds = 2;
  memset(t.ds[0].dataset_id, 0x11, 32);
  memset(t.ds[0].payee, 0xaa, 20);
  teex_amount_word(50, t.ds[0].amount);
  memset(t.ds[1].dataset_id, 0x22, 32);
  memset(t.ds[1].payee, 0xbb, 20);
  teex_amount_word(30, t.ds[1].amount);
  size_t m = dsp_task_encode(&t, rec);
  assert_int_equal(m, n + 1 + 2 * 84);
  assert_memory_equal(rec, again, n);
  assert_int_equal(dsp_task_decode(rec, m, &u), 0);
  assert_int_equal(u.nds, 2);
  assert_memory_equal(u.ds, t.ds, sizeof t.ds[0] * 2);
  assert_true(u.rcpt.shares == u.ds && u.rcpt.nshares == 2);
  assert_int_equal(dsp_task_encode(&u, again), m);
  assert_memory_equal(again, rec, m);
  assert_int_equal(dsp_task_decode(rec, m - 1, &u), TEEX_EFORMAT);
  rec[n] = TEEX_EXEC_DATASETS_MAX + 1; /* too many */
  assert_int_equal(dsp_task_decode(rec, m, &u), TEEX_EFORMAT);
}

struct chain_fx {
  char *dir;
  char path[4096];
  struct teex_domain dom;
  struct teex_dispatcher_chain c;
  uint8_t usk[32], user[20], disp[20];
};

static void sign(struct chain_fx *f, struct teex_payment_auth *a,
                 teex_amount cum) {
  memset(a, 0, sizeof *a);
  memcpy(a->user, f->user, 20);
  memcpy(a->dispatcher, f->disp, 20);
  a->price = 100;
  a->cumulative = cum;
  uint8_t d[32];
  teex_stmt_payment_auth_digest(&f->dom, a, d);
  assert_int_equal(teex_stmt_sign(f->usk, d, a->sig), 0);
}

/* In-flight batch records: a round trip, and every malformed shape
 * refused (truncated, trailing bytes, too many entries, no task). */
static void test_inflight_record(void **state) {
  (void)state;
  uint8_t users[2 * DSP_INFLIGHT_USER_LEN], tasks[3 * 32];
  for (size_t i = 0; i < sizeof users; i++)
    users[i] = (uint8_t)(i * 7);
  for (size_t i = 0; i < sizeof tasks; i++)
    tasks[i] = (uint8_t)(i * 13 + 1);
  struct dsp_inflight f;
  memset(&f, 0, sizeof f);
  memset(f.batch_id, 0xb1, 32);
  memset(f.root, 0x40, 32);
  snprintf(f.cid, sizeof f.cid, "%s",
           "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
  f.nusers = 2;
  f.users = users;
  f.ntasks = 3;
  f.tasks = tasks;
  size_t n = dsp_inflight_len(&f);
  assert_int_equal(n, 64 + 1 + strlen(f.cid) + 4 + 2 * 52 + 4 + 3 * 32);
  uint8_t rec[512];
  dsp_inflight_encode(&f, rec);
  struct dsp_inflight g;
  assert_int_equal(dsp_inflight_decode(rec, n, 10, &g), 0);
  assert_memory_equal(g.batch_id, f.batch_id, 32);
  assert_memory_equal(g.root, f.root, 32);
  assert_string_equal(g.cid, f.cid);
  assert_int_equal(g.nusers, 2);
  assert_memory_equal(g.users, users, sizeof users);
  assert_int_equal(g.ntasks, 3);
  assert_memory_equal(g.tasks, tasks, sizeof tasks);
  for (size_t cut = 0; cut < n; cut++)
    assert_int_equal(dsp_inflight_decode(rec, cut, 10, &g), TEEX_EFORMAT);
  rec[n] = 0;
  assert_int_equal(dsp_inflight_decode(rec, n + 1, 10, &g), TEEX_EFORMAT);
  assert_int_equal(dsp_inflight_decode(rec, n, 2, &g), TEEX_EFORMAT);
  f.ntasks = 0;
  dsp_inflight_encode(&f, rec);
  assert_int_equal(dsp_inflight_decode(rec, dsp_inflight_len(&f), 10, &g),
                   TEEX_EFORMAT);
}

static void test_file_chain(void **state) {
  (void)state;
  struct chain_fx f;
  struct teex_err err;
  memset(&f, 0, sizeof f);
  f.dir = tu_mkdtemp("dspc");
  snprintf(f.path, sizeof f.path, "%s/chain", f.dir);
  f.dom.chain_id = 31337;
  memset(f.dom.verifying_contract, 0x5e, 20);
  memset(f.disp, 0xd1, 20);
  uint8_t pub[64];
  assert_int_equal(teex_secp256k1_keypair(f.usk, pub), 0);
  teex_eth_address(pub, f.user);
  char uh[43], text[1024];
  teex_eth_address_hex(f.user, uh);
  int n = snprintf(text, sizeof text,
                   "service 0x%064d 0x%064d 100 60 0x%040d\n"
                   "escrow %s 250 0 # funded\n",
                   1, 2, 3, uh);
  assert_int_equal(tu_write_file(f.path, text, (size_t)n), 0);
  assert_int_equal(teex_dispatcher_chain_file(f.path, &f.dom, &f.c, &err), 0);
  teex_amount e, s;
  assert_int_equal(f.c.ops->escrow(f.c.arg, f.user, &e, &s, &err), 0);
  assert_true(e == 250 && s == 0);
  uint8_t other[20];
  memset(other, 7, 20);
  assert_int_equal(f.c.ops->escrow(f.c.arg, other, &e, &s, &err), 0);
  assert_true(e == 0);
  struct teex_dispatcher_service svc;
  uint8_t sid[32], img[32];
  memset(sid, 0, 32);
  memset(img, 0, 32);
  sid[31] = 1;
  img[31] = 2;
  assert_int_equal(f.c.ops->service(f.c.arg, sid, img, &svc, &err), 0);
  assert_true(svc.price == 100 && svc.remuneration == 60);
  img[31] = 3;
  assert_int_equal(f.c.ops->service(f.c.arg, sid, img, &svc, &err),
                   TEEX_ENOTFOUND);

  struct teex_payment_auth a;
  struct teex_dispatcher_credit cr = {.amount = 200};
  memset(cr.payee, 0x11, 20);
  struct teex_dispatcher_batch b;
  memset(&b, 0, sizeof b);
  memset(b.batch_id, 1, 32);
  memset(b.root, 2, 32);
  b.task_count = 2;
  snprintf(b.cid, sizeof b.cid, "bafkreitest");
  b.auths = &a;
  b.nauths = 1;
  b.credits = &cr;
  b.ncredits = 1;
  sign(&f, &a, 200);
  a.sig[5] ^= 1;
  assert_int_equal(f.c.ops->settle(f.c.arg, &b, &err), TEEX_EBADSIG);
  sign(&f, &a, 300); /* more than the escrow */
  cr.amount = 300;
  assert_int_equal(f.c.ops->settle(f.c.arg, &b, &err), TEEX_EFUNDS);
  sign(&f, &a, 200);
  cr.amount = 199;
  assert_int_equal(f.c.ops->settle(f.c.arg, &b, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "DebitsCreditsMismatch"));
  cr.amount = 200;
  assert_int_equal(f.c.ops->settle(f.c.arg, &b, &err), 0);
  assert_int_equal(f.c.ops->escrow(f.c.arg, f.user, &e, &s, &err), 0);
  assert_true(e == 50 && s == 200);
  assert_int_equal(f.c.ops->settle(f.c.arg, &b, &err), TEEX_EEXIST);
  /* the same authorisation again debits nothing: credits must be zero */
  b.batch_id[0] = 9;
  assert_int_equal(f.c.ops->settle(f.c.arg, &b, &err), TEEX_EINVAL);
  /* a damaged file is a clear error */
  assert_int_equal(tu_write_file(f.path, "escrow 0x12 1 1\n", 16), 0);
  assert_int_equal(f.c.ops->escrow(f.c.arg, f.user, &e, &s, &err),
                   TEEX_EFORMAT);
  assert_non_null(strstr(err.msg, ":1:"));
  unlink(f.path);
  assert_int_equal(f.c.ops->escrow(f.c.arg, f.user, &e, &s, &err), TEEX_ECHAIN);
  f.c.ops->close(f.c.arg);
  tu_rmtree(f.dir);
  free(f.dir);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_id),
      cmocka_unit_test(test_task_record),
      cmocka_unit_test(test_inflight_record),
      cmocka_unit_test(test_file_chain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
