/* The worker's I/O-free core: the assignment check (every refusal), the
 * worker.Run decoder's bounds, and the replay memory (replays, expiry,
 * growth). */
#include "testutil.h"

#include "teex/crypto.h"
#include "teex/executor.h"
#include "teex/proto/worker.pb-c.h"
#include "teex/worker.h"

#include <string.h>

struct keys {
  uint8_t sk[32], addr[20];
};

static void keypair(struct keys *k) {
  uint8_t pub[64];
  assert_int_equal(teex_secp256k1_keypair(k->sk, pub), 0);
  teex_eth_address(pub, k->addr);
}

static void make(struct teex_assignment *a, const struct keys *d,
                 const uint8_t worker[20], uint64_t expires, uint8_t sig[65]) {
  memset(a, 0, sizeof *a);
  a->chain_id = 31337;
  memcpy(a->dispatcher, d->addr, 20);
  memcpy(a->worker, worker, 20);
  memset(a->user, 0x0u, 20);
  teex_random(a->task_id, 32);
  memset(a->service_id, 0x5e, 32);
  memset(a->image_hash, 0x1a, 32);
  a->price = 1000;
  a->expires_at = expires;
  uint8_t dg[32];
  teex_stmt_assignment_digest(a, dg);
  assert_int_equal(teex_stmt_sign(d->sk, dg, sig), 0);
}

static void test_check_assignment(void **state) {
  (void)state;
  struct keys d1, d2, rogue, me;
  keypair(&d1);
  keypair(&d2);
  keypair(&rogue);
  keypair(&me);
  uint8_t ds[2][20];
  memcpy(ds[0], d1.addr, 20);
  memcpy(ds[1], d2.addr, 20);
  struct teex_worker_policy p = {.chain_id = 31337,
                                 .dispatchers = (const uint8_t(*)[20])ds,
                                 .n_dispatchers = 2};
  memcpy(p.self, me.addr, 20);
  struct teex_err err;
  struct teex_assignment a;
  uint8_t sig[65];
  const uint64_t now = 1800000000;

  make(&a, &d2, me.addr, now + 60, sig);
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err), 0);
  /* Any field changed after signing breaks the signature. */
  a.price++;
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EBADSIG);
  a.price--;
  sig[64] ^= 1; /* v out of {27, 28} */
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EBADSIG);
  sig[64] ^= 1;
  /* A key the worker does not trust. */
  make(&a, &rogue, me.addr, now + 60, sig);
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EBADSIG);
  assert_non_null(strstr(err.msg, "not a dispatcher"));
  /* Another worker's task. */
  make(&a, &d1, d2.addr, now + 60, sig);
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EPERM);
  /* Expired, exactly at expiry, and living too long. */
  make(&a, &d1, me.addr, now - 1, sig);
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EEXPIRED);
  make(&a, &d1, me.addr, now, sig);
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EEXPIRED);
  make(&a, &d1, me.addr, now + TEEX_WORKER_MAX_ASSIGNMENT_TTL + 1, sig);
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EINVAL);
  /* Another chain. */
  make(&a, &d1, me.addr, now + 60, sig);
  p.chain_id = 1;
  assert_int_equal(teex_worker_check_assignment(&p, &a, sig, now, &err),
                   TEEX_EINVAL);
}

static void test_task_set(void **state) {
  (void)state;
  struct teex_task_set *s;
  assert_int_equal(teex_task_set_new(&s), 0);
  uint8_t id[32];
  memset(id, 7, 32);
  assert_int_equal(teex_task_set_add(s, id, 100, 10), 0);
  assert_int_equal(teex_task_set_add(s, id, 100, 50), TEEX_EREPLAY);
  /* After its assignment expired, the id is forgotten (the assignment
   * check refuses an expired assignment anyway). */
  assert_int_equal(teex_task_set_add(s, id, 200, 100), 0);
  /* Many ids: growth keeps every one; expiry frees them. */
  for (uint32_t i = 0; i < 5000; i++) {
    memset(id, 0, 32);
    memcpy(id, &i, 4);
    id[31] = 1;
    assert_int_equal(teex_task_set_add(s, id, 1000, 150), 0);
  }
  assert_int_equal(teex_task_set_count(s), 5001);
  for (uint32_t i = 0; i < 5000; i += 97) {
    memset(id, 0, 32);
    memcpy(id, &i, 4);
    id[31] = 1;
    assert_int_equal(teex_task_set_add(s, id, 1000, 150), TEEX_EREPLAY);
  }
  /* Past 1000 every old one is dropped on the next rebuild. */
  for (uint32_t i = 0; i < 5000; i++) {
    memset(id, 0, 32);
    memcpy(id, &i, 4);
    id[31] = 2;
    assert_int_equal(teex_task_set_add(s, id, 3000, 2000), 0);
  }
  assert_true(teex_task_set_count(s) <= 5000 + 1);
  teex_task_set_free(s);
}

static size_t pack_req(uint8_t *buf, size_t field_len_delta, size_t input_len,
                       uint8_t *input) {
  static uint8_t b20[21], b32[33], b65[66];
  Teex__Worker__RunRequest r = TEEX__WORKER__RUN_REQUEST__INIT;
  r.dispatcher = (ProtobufCBinaryData){20, b20};
  r.worker = (ProtobufCBinaryData){20, b20};
  r.user = (ProtobufCBinaryData){20 + field_len_delta, b20};
  r.task_id = (ProtobufCBinaryData){32, b32};
  r.service_id = (ProtobufCBinaryData){32, b32};
  r.image_hash = (ProtobufCBinaryData){32, b32};
  r.price = (ProtobufCBinaryData){32, b32};
  r.dispatcher_sig = (ProtobufCBinaryData){65, b65};
  r.input_salt = (ProtobufCBinaryData){32, b32};
  r.input = (ProtobufCBinaryData){input_len, input};
  r.expires_at = 99;
  return teex__worker__run_request__pack(&r, buf);
}

static void test_run_req_decode(void **state) {
  (void)state;
  uint8_t buf[4096], in[3] = {'a', 'b', 'c'};
  struct teex_worker_run_req r;
  struct teex_err err;
  size_t n = pack_req(buf, 0, 3, in);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), 0);
  assert_int_equal(r.input_len, 3);
  assert_memory_equal(r.input, "abc", 3);
  assert_int_equal(r.assignment.expires_at, 99);
  teex_worker_run_req_free(&r);
  n = pack_req(buf, 1, 3, in);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "user"));
  assert_int_equal(
      teex_worker_run_req_decode((const uint8_t *)"\xff", 1, &r, &err),
      TEEX_EFORMAT);
  /* An input over the executor's bound is refused before anything runs. */
  size_t big = TEEX_EXEC_INPUT_MAX + 1;
  uint8_t *bin = calloc(1, big), *bbuf = malloc(big + 4096);
  n = pack_req(bbuf, 0, big, bin);
  assert_int_equal(teex_worker_run_req_decode(bbuf, n, &r, &err), TEEX_ETOOBIG);
  free(bin);
  free(bbuf);
  teex_worker_run_req_free(NULL);
}

/* A run request with datasets: packs ids (n of them) and hash. */
static size_t pack_data_req(uint8_t *buf, const uint8_t *ids, size_t n,
                            const uint8_t *hash) {
  static uint8_t b20[21], b32[33], b65[66];
  Teex__Worker__RunRequest r = TEEX__WORKER__RUN_REQUEST__INIT;
  r.dispatcher = (ProtobufCBinaryData){20, b20};
  r.worker = (ProtobufCBinaryData){20, b20};
  r.user = (ProtobufCBinaryData){20, b20};
  r.task_id = (ProtobufCBinaryData){32, b32};
  r.service_id = (ProtobufCBinaryData){32, b32};
  r.image_hash = (ProtobufCBinaryData){32, b32};
  r.price = (ProtobufCBinaryData){32, b32};
  r.dispatcher_sig = (ProtobufCBinaryData){65, b65};
  r.input_salt = (ProtobufCBinaryData){32, b32};
  r.dataset_ids = (ProtobufCBinaryData){32 * n, (uint8_t *)ids};
  if (hash != NULL)
    r.datasets_hash = (ProtobufCBinaryData){32, (uint8_t *)hash};
  return teex__worker__run_request__pack(&r, buf);
}

static void test_run_req_datasets(void **state) {
  (void)state;
  uint8_t buf[4096], ids[32 * (TEEX_EXEC_DATASETS_MAX + 1)], h[32];
  struct teex_worker_run_req r;
  struct teex_err err;
  teex_random(ids, sizeof ids);
  teex_stmt_datasets_hash(ids, 2, h);
  size_t n = pack_data_req(buf, ids, 2, h);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), 0);
  assert_int_equal(r.n_datasets, 2);
  assert_memory_equal(r.dataset_ids, ids, 64);
  assert_memory_equal(r.assignment.datasets_hash, h, 32);
  teex_worker_run_req_free(&r);
  /* no datasets: the assignment's hash stays all zero (old digest) */
  n = pack_data_req(buf, ids, 0, NULL);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), 0);
  uint8_t zero[32] = {0};
  assert_int_equal(r.n_datasets, 0);
  assert_memory_equal(r.assignment.datasets_hash, zero, 32);
  teex_worker_run_req_free(&r);
  /* ids that are not what the hash covers */
  n = pack_data_req(buf, ids, 1, h);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), TEEX_EINVAL);
  assert_non_null(strstr(err.msg, "do not hash"));
  /* a hash without ids, ids without a hash, too many ids */
  n = pack_data_req(buf, ids, 0, h);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), TEEX_EINVAL);
  n = pack_data_req(buf, ids, 2, NULL);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), TEEX_EINVAL);
  teex_stmt_datasets_hash(ids, TEEX_EXEC_DATASETS_MAX + 1, h);
  n = pack_data_req(buf, ids, TEEX_EXEC_DATASETS_MAX + 1, h);
  assert_int_equal(teex_worker_run_req_decode(buf, n, &r, &err), TEEX_EINVAL);
}

int main(void) {
  assert_int_equal(teex_crypto_init(), 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_assignment),
      cmocka_unit_test(test_task_set),
      cmocka_unit_test(test_run_req_decode),
      cmocka_unit_test(test_run_req_datasets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
