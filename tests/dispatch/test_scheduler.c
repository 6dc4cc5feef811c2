/* Tests of the dispatcher's scheduler: capacity, load balance, warm images,
 * exclusion after failures, heartbeats, fairness between users, deadlines,
 * and a randomized run against invariants. */
#include "testutil.h"

#include "teex/error.h"
#include "teex/scheduler.h"

#include <string.h>

static struct teex_sched *mk(uint32_t max_workers, uint32_t max_queued) {
  struct teex_sched_config cfg = {.max_workers = max_workers,
                                  .max_queued = max_queued,
                                  .max_queued_per_user = 0,
                                  .heartbeat_timeout_ms = 3000,
                                  .seed = 42};
  struct teex_sched *s = teex_sched_new(&cfg);
  assert_non_null(s);
  return s;
}

static void addr_of(uint32_t i, uint8_t addr[20]) {
  memset(addr, 0, 20);
  memcpy(addr, &i, sizeof i);
  addr[19] = 0xAA;
}

static struct teex_sched_task task_for(uint8_t image_byte, uint8_t user_byte) {
  struct teex_sched_task t;
  memset(&t, 0, sizeof t);
  memset(t.image, image_byte, 32);
  memset(t.user, user_byte, 20);
  return t;
}

static void test_capacity_and_busy(void **state) {
  (void)state;
  struct teex_sched *s = mk(8, 16);
  struct teex_sched_task t = task_for(1, 1);
  uint32_t w;
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), TEEX_ENOTFOUND);
  uint8_t a[20];
  uint32_t h1, h2;
  addr_of(1, a);
  assert_int_equal(teex_sched_worker_add(s, a, 2, 0, &h1), 0);
  addr_of(2, a);
  assert_int_equal(teex_sched_worker_add(s, a, 1, 0, &h2), 0);
  assert_int_equal(teex_sched_worker_add(s, a, 0, 0, &h2), TEEX_EINVAL);
  int count[2] = {0, 0};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
    count[w == h1 ? 0 : 1]++;
  }
  assert_int_equal(count[0], 2);
  assert_int_equal(count[1], 1);
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), TEEX_EBUSY);
  assert_int_equal(teex_sched_release(s, h2, t.image, 1), 0);
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
  assert_int_equal(w, h2);
  /* Releasing more than was taken is an error, not a negative load. */
  assert_int_equal(teex_sched_release(s, h2, NULL, 0), 0);
  assert_int_equal(teex_sched_release(s, h2, NULL, 0), TEEX_ESTATE);
  teex_sched_free(s);
}

static void test_least_loaded_balance(void **state) {
  (void)state;
  struct teex_sched *s = mk(100, 16);
  uint8_t a[20];
  uint32_t h;
  for (uint32_t i = 0; i < 100; i++) {
    addr_of(i, a);
    assert_int_equal(teex_sched_worker_add(s, a, 8, 0, &h), 0);
  }
  uint32_t w;
  for (int i = 0; i < 400; i++) {
    struct teex_sched_task t = task_for((uint8_t)i, 1); /* all cold */
    memset(t.image, 0, 32);
    memcpy(t.image, &i, sizeof i);
    assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
  }
  int lo = 99, hi = 0;
  for (uint32_t i = 0; i < 100; i++) {
    int l = teex_sched_worker_load(s, i);
    lo = l < lo ? l : lo;
    hi = l > hi ? l : hi;
  }
  /* 4 tasks per worker on average; power-of-4-choices keeps the spread
   * tight (a uniform random choice gives a max around 10 here). */
  assert_true(hi - lo <= 3);
  assert_true(hi <= 6);
  teex_sched_free(s);
}

static void test_warm_preferred(void **state) {
  (void)state;
  struct teex_sched *s = mk(64, 16);
  uint8_t a[20], img[32];
  uint32_t h, warm_h = 0;
  memset(img, 7, 32);
  for (uint32_t i = 0; i < 50; i++) {
    addr_of(i, a);
    assert_int_equal(teex_sched_worker_add(s, a, 4, 0, &h), 0);
    if (i == 17) {
      warm_h = h;
      assert_int_equal(teex_sched_worker_heartbeat(s, h, 0, img, 1), 0);
    }
  }
  struct teex_sched_task t = task_for(7, 1);
  uint32_t w;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
    assert_int_equal(w, warm_h);
  }
  /* Warm worker full: a cold one takes it; it becomes warm when it ran ok. */
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
  assert_int_not_equal(w, warm_h);
  uint32_t second = w;
  assert_int_equal(teex_sched_release(s, second, t.image, 1), 0);
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
  assert_int_equal(w, second);
  struct teex_sched_stats st;
  teex_sched_stats(s, &st);
  assert_int_equal(st.picks, 6);
  assert_int_equal(st.warm_hits, 5);
  teex_sched_free(s);
}

static void test_exclude_failed_worker(void **state) {
  (void)state;
  struct teex_sched *s = mk(8, 16);
  uint8_t a[20];
  uint32_t h1, h2, w;
  addr_of(1, a);
  teex_sched_worker_add(s, a, 4, 0, &h1);
  addr_of(2, a);
  teex_sched_worker_add(s, a, 4, 0, &h2);
  struct teex_sched_task t = task_for(3, 1);
  t.exclude[0] = h1;
  t.nexclude = 1;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
    assert_int_equal(w, h2);
  }
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), TEEX_EBUSY);
  t.exclude[1] = h2;
  t.nexclude = 2;
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), TEEX_ENOTFOUND);
  teex_sched_free(s);
}

static void test_heartbeat_timeout(void **state) {
  (void)state;
  struct teex_sched *s = mk(8, 16);
  uint8_t a[20];
  uint32_t h1, h2, w;
  addr_of(1, a);
  teex_sched_worker_add(s, a, 4, 0, &h1);
  addr_of(2, a);
  teex_sched_worker_add(s, a, 4, 0, &h2);
  assert_int_equal(teex_sched_worker_heartbeat(s, h2, 2500, NULL, 0), 0);
  struct teex_sched_task t = task_for(3, 1);
  /* At 4000 ms worker 1 has been silent 4 s (> 3 s): never picked. */
  for (int i = 0; i < 4; i++) {
    assert_int_equal(teex_sched_pick(s, &t, 4000, &w), 0);
    assert_int_equal(w, h2);
  }
  uint32_t dropped[4];
  assert_int_equal(teex_sched_expire_workers(s, 4000, dropped, 4), 1);
  assert_int_equal(dropped[0], h1);
  assert_int_equal(teex_sched_worker_heartbeat(s, h1, 4000, NULL, 0),
                   TEEX_ENOTFOUND);
  struct teex_sched_stats st;
  teex_sched_stats(s, &st);
  assert_int_equal(st.workers, 1);
  teex_sched_free(s);
}

static void test_fairness_round_robin(void **state) {
  (void)state;
  struct teex_sched *s = mk(4, 64);
  uint8_t a[20];
  uint32_t h, w;
  addr_of(1, a);
  teex_sched_worker_add(s, a, 1, 0, &h);
  struct teex_sched_task busy = task_for(9, 9);
  assert_int_equal(teex_sched_pick(s, &busy, 0, &w), 0);
  /* User A queues 6 tasks before user B queues 2: B must not wait for all
   * of A's. */
  for (int i = 0; i < 6; i++) {
    struct teex_sched_task t = task_for(1, 0xA);
    t.task_ref = 100 + (uint64_t)i;
    assert_int_equal(teex_sched_enqueue(s, &t), 0);
  }
  for (int i = 0; i < 2; i++) {
    struct teex_sched_task t = task_for(1, 0xB);
    t.task_ref = 200 + (uint64_t)i;
    assert_int_equal(teex_sched_enqueue(s, &t), 0);
  }
  uint64_t order[8];
  for (int i = 0; i < 8; i++) {
    struct teex_sched_task got;
    assert_int_equal(teex_sched_release(s, h, NULL, 1), 0);
    assert_int_equal(teex_sched_next(s, 0, &got, &w), 1);
    assert_int_equal(w, h);
    order[i] = got.task_ref;
    /* Nothing else fits until the slot is released again. */
    assert_int_equal(teex_sched_next(s, 0, &got, &w), 0);
  }
  uint64_t want[8] = {100, 200, 101, 201, 102, 103, 104, 105};
  assert_memory_equal(order, want, sizeof want);
  teex_sched_free(s);
}

static void test_deadline_and_limits(void **state) {
  (void)state;
  struct teex_sched_config cfg = {.max_workers = 4,
                                  .max_queued = 3,
                                  .max_queued_per_user = 2,
                                  .heartbeat_timeout_ms = 3000,
                                  .seed = 1};
  struct teex_sched *s = teex_sched_new(&cfg);
  assert_non_null(s);
  uint8_t a[20];
  uint32_t h, w;
  addr_of(1, a);
  teex_sched_worker_add(s, a, 1, 0, &h);
  struct teex_sched_task t = task_for(1, 1);
  assert_int_equal(teex_sched_pick(s, &t, 0, &w), 0);
  t.deadline_ms = 100;
  t.task_ref = 1;
  assert_int_equal(teex_sched_enqueue(s, &t), 0);
  t.task_ref = 2;
  t.deadline_ms = 0;
  assert_int_equal(teex_sched_enqueue(s, &t), 0);
  assert_int_equal(teex_sched_enqueue(s, &t), TEEX_ETOOBIG); /* per user */
  struct teex_sched_task u = task_for(1, 2);
  assert_int_equal(teex_sched_enqueue(s, &u), 0);
  assert_int_equal(teex_sched_enqueue(s, &u), TEEX_ETOOBIG); /* total */
  teex_sched_release(s, h, NULL, 0);
  struct teex_sched_task got;
  assert_int_equal(teex_sched_next(s, 200, &got, &w), 2); /* expired */
  assert_int_equal(got.task_ref, 1);
  assert_int_equal(teex_sched_next(s, 200, &got, &w), 1);
  teex_sched_free(s);
}

/* Registering, removing and re-adding many workers keeps the address table
 * consistent (deletions in open addressing are easy to get wrong). */
static void test_address_table_churn(void **state) {
  (void)state;
  struct teex_sched *s = mk(2000, 16);
  uint8_t a[20];
  uint32_t handles[2000];
  for (uint32_t i = 0; i < 2000; i++) {
    addr_of(i * 7919u, a);
    assert_int_equal(teex_sched_worker_add(s, a, 1, 0, &handles[i]), 0);
  }
  addr_of(12345678, a);
  uint32_t extra;
  assert_int_equal(teex_sched_worker_add(s, a, 1, 0, &extra), TEEX_ETOOBIG);
  for (uint32_t i = 0; i < 2000; i += 3)
    assert_int_equal(teex_sched_worker_remove(s, handles[i]), 0);
  for (uint32_t i = 0; i < 2000; i++) {
    if (i % 3 == 0)
      continue;
    uint32_t again;
    addr_of(i * 7919u, a);
    assert_int_equal(teex_sched_worker_add(s, a, 1, 0, &again), 0);
    assert_int_equal(again, handles[i]);
  }
  struct teex_sched_stats st;
  teex_sched_stats(s, &st);
  assert_int_equal(st.workers, 2000 - 667);
  teex_sched_free(s);
}

/* Random operations; invariants checked after each: no worker above its
 * capacity, free slots counted match capacity minus load. */
static void test_randomized_invariants(void **state) {
  (void)state;
  struct teex_sched *s = mk(64, 256);
  uint32_t handles[64];
  int live[64] = {0};
  uint32_t caps[64];
  uint64_t x = 12345;
  uint8_t a[20];
  for (int step = 0; step < 20000; step++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t r = (uint32_t)(x >> 33);
    uint32_t i = r % 64;
    switch (r % 5) {
    case 0:
      if (!live[i]) {
        addr_of(i, a);
        caps[i] = 1 + r % 4;
        assert_int_equal(teex_sched_worker_add(s, a, caps[i], 0, &handles[i]),
                         0);
        live[i] = 1;
      }
      break;
    case 1:
      if (live[i] && teex_sched_worker_load(s, handles[i]) == 0) {
        assert_int_equal(teex_sched_worker_remove(s, handles[i]), 0);
        live[i] = 0;
      }
      break;
    case 2:
    case 3: {
      struct teex_sched_task t = task_for((uint8_t)(r >> 8), 1);
      uint32_t w;
      int rc = teex_sched_pick(s, &t, 0, &w);
      assert_true(rc == 0 || rc == TEEX_EBUSY || rc == TEEX_ENOTFOUND);
      break;
    }
    default:
      if (live[i] && teex_sched_worker_load(s, handles[i]) > 0) {
        uint8_t img[32];
        memset(img, (int)(r >> 8), 32);
        assert_int_equal(teex_sched_release(s, handles[i], img, 1), 0);
      }
    }
    uint32_t free_slots = 0, nlive = 0;
    for (int k = 0; k < 64; k++) {
      if (!live[k])
        continue;
      nlive++;
      int load = teex_sched_worker_load(s, handles[k]);
      assert_true(load >= 0 && (uint32_t)load <= caps[k]);
      free_slots += caps[k] - (uint32_t)load;
    }
    struct teex_sched_stats st;
    teex_sched_stats(s, &st);
    assert_int_equal(st.workers, nlive);
    assert_int_equal(st.free_slots, free_slots);
  }
  teex_sched_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_capacity_and_busy),
      cmocka_unit_test(test_least_loaded_balance),
      cmocka_unit_test(test_warm_preferred),
      cmocka_unit_test(test_exclude_failed_worker),
      cmocka_unit_test(test_heartbeat_timeout),
      cmocka_unit_test(test_fairness_round_robin),
      cmocka_unit_test(test_deadline_and_limits),
      cmocka_unit_test(test_address_table_churn),
      cmocka_unit_test(test_randomized_invariants),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
