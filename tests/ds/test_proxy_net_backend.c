/* The RESP proxy's network backend (teex_ds_backend_net_new) against a real
 * 3-replica group of `teex ds run` processes: results never come back
 * inside exec (the seam's contract the proxy relies on), both read modes
 * reach the group, INFO reports the replicas' status (and notices one
 * down), and freeing the backend cancels what is pending. */
#include "net_fixture.c"

#include "teex/ds_proxy.h"

static int setup(void **state) {
  struct net *t = calloc(1, sizeof(*t));
  net_init(t);
  net_start_all(t);
  net_leader(t);
  net_warm_up(t);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  struct net *t = *state;
  net_close(t);
  free(t);
  return 0;
}

struct got {
  int calls, status, res_status;
  char val[64];
};

static void on_done(void *arg, int status, struct teex_ds_result *res) {
  struct got *g = arg;
  g->calls++;
  g->status = status;
  if (res != NULL) {
    g->res_status = res->status;
    size_t n = res->val_len < sizeof g->val - 1 ? res->val_len : 0;
    if (res->val)
      memcpy(g->val, res->val, n);
    g->val[n] = '\0';
    teex_ds_result_free(res);
    free(res);
  }
}

static struct teex_ds_backend *backend(struct net *t, uv_loop_t *loop) {
  struct teex_ds_client_config cc = {.replicas = t->addrs,
                                     .n_replicas = NET_N,
                                     .tls = t->tls,
                                     .ns = "app",
                                     .timeout_ms = 10000};
  struct teex_ds_backend *b = NULL;
  struct teex_err err;
  assert_int_equal(teex_ds_backend_net_new(loop, &cc, &b, &err), 0);
  return b;
}

/* Runs one command; asserts it did not call back inside exec. */
static void run(uv_loop_t *loop, struct teex_ds_backend *b,
                const struct teex_ds_cmd *c, int mode, struct got *g) {
  memset(g, 0, sizeof(*g));
  struct teex_err err;
  assert_int_equal(b->ops->exec(b, c, mode, on_done, g, &err), 0);
  assert_int_equal(g->calls, 0);
  while (g->calls == 0)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(g->calls, 1);
}

static void test_exec_and_info(void **state) {
  struct net *t = *state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct teex_ds_backend *b = backend(t, &loop);
  struct teex_ds_cmd set = {.op = TEEX_DS_SET, .grant = "app"};
  set.key = (const uint8_t *)"app/pk";
  set.key_len = 6;
  set.val = (const uint8_t *)"pv";
  set.val_len = 2;
  struct got g;
  run(&loop, b, &set, TEEX_DS_PROXY_READ_LINEARIZABLE, &g);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.res_status, 0);
  struct teex_ds_cmd get = {.op = TEEX_DS_GET, .grant = "app"};
  get.key = set.key;
  get.key_len = set.key_len;
  run(&loop, b, &get, TEEX_DS_PROXY_READ_LINEARIZABLE, &g);
  assert_int_equal(g.status, 0);
  assert_string_equal(g.val, "pv");
  /* follower reads: bounded staleness, so the write shows up at once or
   * after a heartbeat */
  for (int i = 0; i < 50; i++) {
    run(&loop, b, &get, TEEX_DS_PROXY_READ_FOLLOWER, &g);
    if (g.status == 0 && strcmp(g.val, "pv") == 0)
      break;
    net_sleep_ms(20);
  }
  assert_string_equal(g.val, "pv");

  struct teex_ds_backend_info in;
  b->ops->info(b, &in);
  assert_int_equal(in.known, 1);
  assert_int_equal(in.leader, 1);
  assert_int_equal(in.replicas, NET_N);
  assert_int_equal(in.replicas_up, NET_N);
  assert_true(in.term > 0);
  assert_true(in.last_applied > 0);
  assert_int_equal(in.self_id, in.leader_id);

  /* a follower down: INFO says so */
  int leader = net_leader(t);
  int follower = (leader + 1) % NET_N;
  net_stop(t, follower, SIGKILL);
  b->ops->info(b, &in);
  assert_int_equal(in.replicas_up, NET_N - 1);
  assert_int_equal(in.known, 1);

  /* freeing cancels a pending command, which then calls back once */
  memset(&g, 0, sizeof g);
  struct teex_err err;
  assert_int_equal(b->ops->exec(b, &set, 0, on_done, &g, &err), 0);
  b->ops->free(b);
  assert_int_equal(g.calls, 1);
  assert_int_equal(g.status, TEEX_ECANCELED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(g.calls, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_exec_and_info, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
