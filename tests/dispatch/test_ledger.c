/* Tests of the dispatcher's payment ledger: reservations against escrow,
 * cumulative authorisations, retries and replays, at-most-once charging,
 * refunds of failed tasks, and what is settled. */
#include "testutil.h"

#include "teex/error.h"
#include "teex/ledger.h"

#include <string.h>

static const uint8_t DISPATCHER[20] = {0xD1, 0xD2};
static const uint8_t ALICE[20] = {0xA1};
static const uint8_t BOB[20] = {0xB0};

static struct teex_ledger *mk(void) {
  struct teex_ledger_limits lim = {.max_users = 16, .max_tasks = 16};
  struct teex_ledger *l = teex_ledger_new(DISPATCHER, &lim);
  assert_non_null(l);
  return l;
}

static struct teex_payment_auth auth(const uint8_t user[20], uint8_t task,
                                     teex_amount price, teex_amount cum) {
  struct teex_payment_auth a;
  memset(&a, 0, sizeof a);
  memcpy(a.user, user, 20);
  memcpy(a.dispatcher, DISPATCHER, 20);
  memset(a.task_id, task, 32);
  a.task_id[0] = user[0];
  a.price = price;
  a.cumulative = cum;
  return a;
}

static void test_sequence_and_refund(void **state) {
  (void)state;
  struct teex_ledger *l = mk();
  struct teex_err e;
  assert_int_equal(teex_ledger_set_chain(l, ALICE, 100, 0), 0);
  struct teex_payment_auth t1 = auth(ALICE, 1, 10, 10);
  assert_int_equal(teex_ledger_accept(l, &t1, 10, &e), TEEX_LEDGER_NEW);
  assert_int_equal(teex_ledger_accept(l, &t1, 10, &e), TEEX_LEDGER_RETRY);
  struct teex_payment_auth t2 = auth(ALICE, 2, 10, 15);
  assert_int_equal(teex_ledger_accept(l, &t2, 10, &e), TEEX_EPOLICY);
  assert_non_null(strstr(e.msg, "sign cumulative = 10 + price"));
  t2.cumulative = 20;
  assert_int_equal(teex_ledger_accept(l, &t2, 10, &e), TEEX_LEDGER_NEW);
  assert_int_equal(teex_ledger_complete(l, t1.task_id), 0);
  assert_int_equal(teex_ledger_fail(l, t2.task_id), 0);
  /* Charged at most once, and never both ways. */
  assert_int_equal(teex_ledger_complete(l, t1.task_id), TEEX_ESTATE);
  assert_int_equal(teex_ledger_complete(l, t2.task_id), TEEX_ESTATE);
  assert_int_equal(teex_ledger_fail(l, t1.task_id), TEEX_ESTATE);
  /* The failed task is not charged: base is 10, not 20. */
  teex_amount base;
  assert_int_equal(teex_ledger_base(l, ALICE, &base), 0);
  assert_true(base == 10);
  struct teex_payment_auth due;
  teex_amount debit;
  assert_int_equal(teex_ledger_due(l, ALICE, &due, &debit), 1);
  assert_true(due.cumulative == 10 && debit == 10);
  /* The next authorisation is refunded the failed price by not growing. */
  struct teex_payment_auth t3 = auth(ALICE, 3, 10, 20);
  assert_int_equal(teex_ledger_accept(l, &t3, 10, &e), TEEX_LEDGER_NEW);
  assert_int_equal(teex_ledger_complete(l, t3.task_id), 0);
  assert_int_equal(teex_ledger_due(l, ALICE, &due, &debit), 1);
  assert_true(due.cumulative == 20 && debit == 20);
  assert_memory_equal(due.task_id, t3.task_id, 32); /* the completed one */
  /* A finished task cannot be accepted again. */
  assert_int_equal(teex_ledger_accept(l, &t2, 10, &e), TEEX_EREPLAY);
  teex_ledger_free(l);
}

static void test_escrow_limit(void **state) {
  (void)state;
  struct teex_ledger *l = mk();
  struct teex_err e;
  teex_ledger_set_chain(l, BOB, 25, 0);
  struct teex_payment_auth a = auth(BOB, 1, 10, 10);
  assert_int_equal(teex_ledger_accept(l, &a, 10, &e), TEEX_LEDGER_NEW);
  a = auth(BOB, 2, 10, 20);
  assert_int_equal(teex_ledger_accept(l, &a, 10, &e), TEEX_LEDGER_NEW);
  a = auth(BOB, 3, 10, 30);
  assert_int_equal(teex_ledger_accept(l, &a, 10, &e), TEEX_EFUNDS);
  assert_non_null(strstr(e.msg, "deposit 5 wei more"));
  /* A user the dispatcher knows nothing of has no escrow. */
  uint8_t carol[20] = {0xC0};
  a = auth(carol, 1, 1, 1);
  assert_int_equal(teex_ledger_accept(l, &a, 1, &e), TEEX_EFUNDS);
  teex_ledger_free(l);
}

static void test_bad_authorisations(void **state) {
  (void)state;
  struct teex_ledger *l = mk();
  struct teex_err e;
  teex_ledger_set_chain(l, ALICE, 100, 0);
  struct teex_payment_auth a = auth(ALICE, 1, 10, 10);
  a.dispatcher[0] ^= 1;
  assert_int_equal(teex_ledger_accept(l, &a, 10, &e), TEEX_EINVAL);
  a = auth(ALICE, 1, 9, 10);
  assert_int_equal(teex_ledger_accept(l, &a, 10, &e), TEEX_EINVAL);
  assert_non_null(strstr(e.msg, "differs"));
  a = auth(ALICE, 1, 10, 10);
  assert_int_equal(teex_ledger_accept(l, &a, 10, &e), TEEX_LEDGER_NEW);
  /* Same task id, different terms: a replay, not a retry. */
  struct teex_payment_auth b = a;
  b.cumulative = 50;
  assert_int_equal(teex_ledger_accept(l, &b, 10, &e), TEEX_EREPLAY);
  b = a;
  b.image_hash[5] = 1;
  assert_int_equal(teex_ledger_accept(l, &b, 10, &e), TEEX_EREPLAY);
  uint8_t unknown[32] = {9};
  assert_int_equal(teex_ledger_complete(l, unknown), TEEX_ENOTFOUND);
  teex_ledger_free(l);
}

static void test_settlement_and_replay_after(void **state) {
  (void)state;
  struct teex_ledger *l = mk();
  struct teex_err e;
  teex_ledger_set_chain(l, ALICE, 100, 0);
  struct teex_payment_auth t1 = auth(ALICE, 1, 10, 10);
  struct teex_payment_auth t2 = auth(ALICE, 2, 10, 20);
  assert_int_equal(teex_ledger_accept(l, &t1, 10, &e), 0);
  assert_int_equal(teex_ledger_accept(l, &t2, 10, &e), 0);
  teex_ledger_complete(l, t1.task_id);
  teex_ledger_complete(l, t2.task_id);
  struct teex_payment_auth due;
  teex_amount debit;
  assert_int_equal(teex_ledger_due(l, ALICE, &due, &debit), 1);
  assert_true(due.cumulative == 20);
  assert_int_equal(teex_ledger_settled(l, ALICE, 20), 0);
  assert_int_equal(teex_ledger_due(l, ALICE, &due, &debit), 0);
  /* Forgotten after settlement, yet a replay is still refused. */
  assert_int_equal(teex_ledger_accept(l, &t1, 10, &e), TEEX_EPOLICY);
  assert_int_equal(teex_ledger_accept(l, &t2, 10, &e), TEEX_EPOLICY);
  /* Escrow went down by the debit: 80 left, so cumulative up to 100. */
  struct teex_payment_auth t3 = auth(ALICE, 3, 80, 100);
  assert_int_equal(teex_ledger_accept(l, &t3, 80, &e), TEEX_LEDGER_NEW);
  struct teex_payment_auth t4 = auth(ALICE, 4, 1, 101);
  assert_int_equal(teex_ledger_accept(l, &t4, 1, &e), TEEX_EFUNDS);
  /* A stale chain read (settled lower than known) changes nothing. */
  teex_ledger_set_chain(l, ALICE, 100, 0);
  teex_amount base;
  teex_ledger_base(l, ALICE, &base);
  assert_true(base == 100);
  teex_ledger_free(l);
}

/* Concurrent tasks where an earlier one fails and a later one completes:
 * the dispatcher settles exactly what was earned, never more. */
static void test_out_of_order_failure(void **state) {
  (void)state;
  struct teex_ledger *l = mk();
  struct teex_err e;
  teex_ledger_set_chain(l, ALICE, 1000, 0);
  for (uint8_t i = 1; i <= 4; i++) {
    struct teex_payment_auth a = auth(ALICE, i, 10, 10 * (teex_amount)i);
    assert_int_equal(teex_ledger_accept(l, &a, 10, &e), 0);
  }
  uint8_t id[32];
  struct teex_payment_auth a = auth(ALICE, 1, 10, 10);
  teex_ledger_complete(l, a.task_id);
  a = auth(ALICE, 2, 10, 20);
  teex_ledger_complete(l, a.task_id);
  a = auth(ALICE, 3, 10, 30);
  memcpy(id, a.task_id, 32);
  teex_ledger_fail(l, id);
  a = auth(ALICE, 4, 10, 40);
  teex_ledger_complete(l, a.task_id);
  struct teex_payment_auth due;
  teex_amount debit;
  assert_int_equal(teex_ledger_due(l, ALICE, &due, &debit), 1);
  assert_true(due.cumulative == 30 && debit == 30); /* 3 tasks earned */
  teex_ledger_free(l);
}

static void test_limits_and_amounts(void **state) {
  (void)state;
  struct teex_ledger_limits lim = {.max_users = 1, .max_tasks = 2};
  struct teex_ledger *l = teex_ledger_new(DISPATCHER, &lim);
  struct teex_err e;
  teex_ledger_set_chain(l, ALICE, 100, 0);
  assert_int_equal(teex_ledger_set_chain(l, BOB, 100, 0), TEEX_ETOOBIG);
  struct teex_payment_auth a = auth(ALICE, 1, 1, 1);
  assert_int_equal(teex_ledger_accept(l, &a, 1, &e), 0);
  a = auth(ALICE, 2, 1, 2);
  assert_int_equal(teex_ledger_accept(l, &a, 1, &e), 0);
  a = auth(ALICE, 3, 1, 3);
  assert_int_equal(teex_ledger_accept(l, &a, 1, &e), TEEX_ETOOBIG);
  teex_ledger_free(l);

  teex_amount v;
  char buf[40];
  const char *max = "340282366920938463463374607431768211455";
  assert_int_equal(teex_amount_parse(max, &v), 0);
  teex_amount_format(v, buf);
  assert_string_equal(buf, max);
  assert_int_equal(
      teex_amount_parse("340282366920938463463374607431768211456", &v),
      TEEX_EINVAL);
  assert_int_equal(teex_amount_parse("1e18", &v), TEEX_EINVAL);
  assert_int_equal(teex_amount_parse("", &v), TEEX_EINVAL);
  assert_int_equal(teex_amount_parse("1000000000000000000", &v), 0);
  teex_amount_format(v, buf);
  assert_string_equal(buf, "1000000000000000000");
  teex_amount_format(0, buf);
  assert_string_equal(buf, "0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sequence_and_refund),
      cmocka_unit_test(test_escrow_limit),
      cmocka_unit_test(test_bad_authorisations),
      cmocka_unit_test(test_settlement_and_replay_after),
      cmocka_unit_test(test_out_of_order_failure),
      cmocka_unit_test(test_limits_and_amounts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
