/* The dispatcher's pieces without the network: the batch content decodes
 * with the ABI decoder as settlement.md §4.2 declares it, task records
 * round-trip and refuse damage, and the file-backed chain applies the
 * Settlement contract's rules (signatures, escrow, debits == credits, new
 * batch ids, cumulative semantics). */
#include "testutil.h"

#include "dispatcher/state.h"
#include "teex/abi.h"
#include "teex/crypto.h"
#include "teex/dispatcher.h"

#include <stdio.h>
#include <unistd.h>
#include <string.h>

#define BATCH_TYPE                                                             \
  "((bytes32,uint256,address,address,bytes32,bytes32,"                         \
  "(bytes32,bytes32,bytes32,address,address,address,address,bytes32,bytes32,"  \
  "uint256,uint256,uint256,(bytes32,address,uint256)[],uint8,bytes32,bytes32)" \
  "[],(address,bytes32,bytes32,bytes32,bytes32,uint256,uint256,uint8,bytes32," \
  "bytes32)[],(address,uint256)[]))"

static void fill_receipt(struct teex_signed_receipt *s, uint8_t seed) {
  memset(s, 0, sizeof *s);
  memset(s->r.task_id, seed, 32);
  memset(s->r.service_id, seed + 1, 32);
  memset(s->r.image_hash, seed + 2, 32);
  memset(s->r.user, seed + 3, 20);
  memset(s->r.dispatcher, 0xd1, 20);
  memset(s->r.worker, seed + 4, 20);
  memset(s->r.provider, seed + 5, 20);
  teex_amount_word(100, s->r.price);
  teex_amount_word(60, s->r.worker_amount);
  teex_amount_word(40, s->r.provider_amount);
  s->r.shares = s->shares;
  memset(s->sig, seed + 6, 64);
  s->sig[64] = 27;
}

static void test_batch_content_decodes(void **state) {
  (void)state;
  struct teex_domain dom = {.chain_id = 31337};
  memset(dom.verifying_contract, 0x5e, 20);
  uint8_t disp[20];
  memset(disp, 0xd1, 20);
  struct teex_signed_receipt rs[2];
  fill_receipt(&rs[0], 1);
  fill_receipt(&rs[1], 9);
  rs[1].r.nshares = 1; /* the encoding carries shares too */
  memset(rs[1].shares[0].dataset_id, 0xda, 32);
  memset(rs[1].shares[0].payee, 0xbe, 20);
  teex_amount_word(7, rs[1].shares[0].amount);
  struct teex_payment_auth auth;
  memset(&auth, 0, sizeof auth);
  memset(auth.user, 4, 20);
  auth.price = 100;
  auth.cumulative = 300;
  auth.sig[64] = 28;
  struct teex_dispatcher_credit cr[2];
  memset(cr, 0, sizeof cr);
  memset(cr[0].payee, 0x11, 20);
  cr[0].amount = 120;
  memset(cr[1].payee, 0x22, 20);
  cr[1].amount = 80;
  struct teex_dispatcher_batch b;
  memset(&b, 0, sizeof b);
  teex_dispatcher_batch_id(disp, 1, b.batch_id);
  memset(b.root, 0x77, 32);
  b.auths = &auth;
  b.nauths = 1;
  b.credits = cr;
  b.ncredits = 2;
  struct teex_buf out;
  teex_buf_init(&out, 1 << 20, 0);
  assert_int_equal(teex_dispatcher_batch_content(&dom, disp, &b, rs, 2, &out),
                   0);
  struct teex_abi_type *t;
  struct teex_abi_value v;
  struct teex_err err;
  memset(&v, 0, sizeof v);
  if (teex_abi_type_parse(BATCH_TYPE, &t, &err) != 0)
    fail_msg("type: %s", err.msg);
  if (teex_abi_decode(t, out.data, out.len, &v, &err) != 0)
    fail_msg("decode: %s", err.msg);
  const struct teex_abi_value *c = &v.items[0];
  assert_int_equal(c->n_items, 9);
  uint8_t magic[32];
  teex_keccak256("teex/settlement/v1/batch", 24, magic);
  assert_memory_equal(c->items[0].word, magic, 32);
  assert_int_equal(c->items[1].word[31], 31337 & 0xff);
  assert_memory_equal(c->items[2].word + 12, dom.verifying_contract, 20);
  assert_memory_equal(c->items[3].word + 12, disp, 20);
  assert_memory_equal(c->items[4].word, b.batch_id, 32);
  assert_memory_equal(c->items[5].word, b.root, 32);
  const struct teex_abi_value *rv = &c->items[6];
  assert_int_equal(rv->n_items, 2);
  assert_memory_equal(rv->items[1].items[0].word, rs[1].r.task_id, 32);
  assert_memory_equal(rv->items[1].items[5].word + 12, rs[1].r.worker, 20);
  assert_int_equal(rv->items[1].items[12].n_items, 1);
  assert_memory_equal(rv->items[1].items[12].items[0].items[1].word + 12,
                      rs[1].shares[0].payee, 20);
  assert_int_equal(rv->items[0].items[13].word[31], 27);
  assert_memory_equal(rv->items[0].items[14].word, rs[0].sig, 32);
  const struct teex_abi_value *av = &c->items[7];
  assert_int_equal(av->n_items, 1);
  assert_int_equal(av->items[0].items[6].word[31], 300 & 0xff);
  assert_int_equal(av->items[0].items[7].word[31], 28);
  const struct teex_abi_value *cv = &c->items[8];
  assert_int_equal(cv->n_items, 2);
  assert_int_equal(cv->items[1].items[1].word[31], 80);
  /* nothing after the encoding */
  uint8_t w[32];
  assert_true(out.len % 32 == 0);
  memset(w, 0, 32);
  teex_abi_value_clear(&v);
  teex_abi_type_free(t);
  teex_buf_free(&out);
  /* the batch id is keccak256(abi.encode(dispatcher, seq)) */
  uint8_t pre[64], id[32];
  memset(pre, 0, 64);
  memcpy(pre + 12, disp, 20);
  pre[63] = 1;
  teex_keccak256(pre, 64, id);
  assert_memory_equal(id, b.batch_id, 32);
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
      cmocka_unit_test(test_batch_content_decodes),
      cmocka_unit_test(test_task_record),
      cmocka_unit_test(test_file_chain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
