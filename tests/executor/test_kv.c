/* ctest-label: nosan (the sandboxed executor does not run under ASan)
 * teex.kv in the real sandboxed executor, answered by a test host whose
 * handler maps each call into a namespace of the real TEE-DS state machine:
 * get/set/delete/incr/cas/scan with str and bytes, counters that persist
 * across tasks, scans over several pages, clear exceptions for bad keys,
 * values and TTLs; writes of a stateless service and of a task holding
 * datasets refused before they leave the sandbox (the handler never sees
 * them, even when the service calls the channel directly); a handler's
 * failure as teex.KVError; a slow handler counted against the task's
 * deadline, and the executor still sound after it. */
#include "exec_testutil.h"

#include <time.h>

#define NS "svcns"

struct host {
  struct teex_ds_kv *kv;
  uint64_t index;
  int calls, writes;
  int fail;     /* answer TEEX_ETIMEDOUT */
  int sleep_ms; /* before answering */
};

static int handler(void *arg, const struct teex_ds_cmd *cmd,
                   struct teex_ds_result *res, struct teex_err *err) {
  struct host *h = arg;
  uint8_t key[TEEX_DS_KEY_MAX], after[TEEX_DS_KEY_MAX];
  struct teex_ds_cmd c;
  h->calls++;
  if (cmd->op != TEEX_DS_GET && cmd->op != TEEX_DS_SCAN)
    h->writes++;
  if (h->sleep_ms > 0) {
    struct timespec ts = {h->sleep_ms / 1000, (h->sleep_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (h->fail)
    return teex_err_set(err, TEEX_ETIMEDOUT, "no leader answered in 5000 ms");
  int rc = teex_ds_ns_cmd(NS, cmd, &c, key, after);
  if (rc != 0)
    return teex_err_set(err, rc, "namespace");
  c.grant = NS;
  if (c.op == TEEX_DS_GET || c.op == TEEX_DS_SCAN)
    rc = teex_ds_kv_read(h->kv, &c, res);
  else {
    h->index++;
    rc = teex_ds_kv_apply(h->kv, h->index, 1000 + h->index, &c, res);
  }
  if (rc == 0)
    rc = teex_ds_ns_result(NS, res);
  return rc == 0 ? 0 : teex_err_set(err, rc, "state machine");
}

static const char *const SERVICE[] = {
    "main.py",
    "import json, teex\n"
    "kv = teex.kv\n"
    "def catch(f):\n"
    "    try:\n"
    "        return repr(f())\n"
    "    except Exception as e:\n"
    "        return type(e).__name__ + ': ' + str(e)\n"
    "def main(inp):\n"
    "    if inp == b'incr':\n"
    "        return kv.incr('count')\n"
    "    if inp == b'basic':\n"
    "        kv.set('a', 'x')\n"
    "        kv.set(b'b', b'\\x00\\xff')\n"
    "        out = [kv.get('a'), kv.get('b'), kv.get('missing', b'dflt'),\n"
    "               'a' in kv, kv.delete('a'), kv.delete('a'), kv.get('a'),\n"
    "               kv.incr('n', 5), kv.incr('n', -7)]\n"
    "        kv['c'] = 'y'\n"
    "        out.append(kv['c'])\n"
    "        return repr(out)\n"
    "    if inp == b'cas':\n"
    "        return repr([kv.cas('c2', None, 'v1'), kv.cas('c2', None, 'v2'),\n"
    "                     kv.cas('c2', 'v0', 'v3'), kv.cas('c2', 'v1', 'v3'),\n"
    "                     kv.get('c2')])\n"
    "    if inp == b'scan':\n"
    "        for i in range(20):\n"
    "            kv.set('p/%02d' % i, str(i))\n"
    "        kv.set('q', 'other')\n"
    "        items = list(kv.scan('p/'))\n"
    "        return repr([len(items), items[0], items[-1],\n"
    "                     [k for k, _ in items] == sorted(k for k, _ in "
    "items),\n"
    "                     len(list(kv.scan()))])\n"
    "    if inp == b'bad':\n"
    "        return '\\n'.join([\n"
    "            catch(lambda: kv.set('k' * 448, 'v')),\n"
    "            catch(lambda: kv.set('k', b'x' * 65537)),\n"
    "            catch(lambda: kv.set(1, 'v')),\n"
    "            catch(lambda: kv.set('k', 'v', ttl=0)),\n"
    "            catch(lambda: kv.incr('k', 'one')),\n"
    "            catch(lambda: (kv.set('t', 'text'), kv.incr('t'))),\n"
    "            catch(lambda: kv.get('k' * 447))])\n"
    "    if inp == b'write':\n"
    "        return catch(lambda: kv.set('w', 'v'))\n"
    "    if inp == b'read':\n"
    "        return catch(lambda: kv.get('count'))\n"
    "    if inp == b'raw-write':\n"
    "        import _teex\n"
    "        return repr(_teex.kv_call(2, 0, b'w', b'v', None, 0, 0, b'', "
    "0)[:2])\n"
    "    if inp == b'fail':\n"
    "        return catch(lambda: kv.get('x'))\n"
    "    if inp == b'slow':\n"
    "        kv.get('x')\n"
    "        return 'late'\n"
    "    return 'unknown'\n",
    NULL};

static int run(struct teex_executor *ex, struct host *h, const char *input,
               const struct teex_task_data *ds, size_t n, uint32_t wall_ms,
               struct teex_task_result *res) {
  struct teex_task_ctx ctx = {.task_id = "task-kv",
                              .service_id = "svc-kv",
                              .caller = "0x00000000000000000000000000000000c0",
                              .datasets = ds,
                              .n_datasets = n,
                              .wall_ms = wall_ms,
                              .kv = h != NULL ? handler : NULL,
                              .kv_arg = h};
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_executor_run(ex, &ctx, (const uint8_t *)input, strlen(input),
                             res, &err);
  if (rc != 0)
    print_error("executor: %s\n", teex_err_msg(&err));
  return rc;
}

/* Runs input and checks the task's output equals want. */
static void expect(struct teex_executor *ex, struct host *h, const char *input,
                   const char *want) {
  struct teex_task_result r;
  assert_int_equal(run(ex, h, input, NULL, 0, 0, &r), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output, want);
  teex_task_result_free(&r);
}

static void host_init(struct host *h) {
  memset(h, 0, sizeof *h);
  assert_int_equal(teex_ds_kv_new(&h->kv), 0);
}

static void test_api(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  struct host h;
  host_init(&h);
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, SERVICE);
  struct teex_executor *ex = xt_start(img, NULL);
  /* A counter kept across tasks (each task is a fresh child). */
  expect(ex, &h, "incr", "1");
  expect(ex, &h, "incr", "2");
  expect(ex, &h, "incr", "3");
  expect(ex, &h, "basic",
         "[b'x', b'\\x00\\xff', b'dflt', True, True, False, None, 5, -2, "
         "b'y']");
  expect(ex, &h, "cas", "[True, False, False, True, b'v3']");
  expect(ex, &h, "scan", "[20, (b'p/00', b'0'), (b'p/19', b'19'), True, 26]");
  /* The keys landed under the namespace, nowhere else. */
  struct teex_ds_cmd get = {.op = TEEX_DS_GET,
                            .grant = NS,
                            .key = (const uint8_t *)NS "/count",
                            .key_len = strlen(NS "/count")};
  struct teex_ds_result res;
  assert_int_equal(teex_ds_kv_read(h.kv, &get, &res), 0);
  assert_int_equal(res.status, 0);
  assert_int_equal(res.val_len, 1);
  assert_memory_equal(res.val, "3", 1);
  teex_ds_result_free(&res);

  struct teex_task_result r;
  assert_int_equal(run(ex, &h, "bad", NULL, 0, 0, &r), 0);
  XT_OK(r);
  const char *want[] = {
      "ValueError: teex.kv: key of 448 bytes is over the limit of 447",
      "ValueError: teex.kv: value of 65537 bytes is over the limit of 65536",
      "TypeError: teex.kv: key must be bytes or str, not int",
      "ValueError: teex.kv: ttl must be between",
      "TypeError: teex.kv.incr: delta must be an int",
      "ValueError: teex.kv.incr('t'): the value is not a decimal integer",
      "None"};
  const char *line = (const char *)r.output;
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    if (strncmp(line, want[i], strlen(want[i])) != 0)
      fail_msg("line %zu: got '%.80s', want '%s'", i, line, want[i]);
    const char *nl = strchr(line, '\n');
    line = nl != NULL ? nl + 1 : line + strlen(line);
  }
  teex_task_result_free(&r);
  teex_executor_stop(ex);
  teex_image_free(img);
  teex_ds_kv_free(h.kv);
}

static void test_refusals(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  struct host h;
  host_init(&h);
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, SERVICE);
  struct teex_executor *ex = xt_start(img, NULL);
  expect(ex, &h, "incr", "1");
  int writes = h.writes;
  /* A task holding a data lease reads, never writes. */
  struct teex_task_data ds = {
      .name = "d.csv", .data = (const uint8_t *)"secret", .len = 6};
  struct teex_task_result r;
  assert_int_equal(run(ex, &h, "write", &ds, 1, 0, &r), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output,
                      "PermissionError: teex.kv: a task that reads datasets "
                      "cannot write to teex.kv");
  teex_task_result_free(&r);
  assert_int_equal(run(ex, &h, "read", &ds, 1, 0, &r), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output, "b'1'");
  teex_task_result_free(&r);
  /* Even past the runtime, straight on the channel: refused outside the
   * child (-20 = TEEX_EPERM), and the host's handler never sees it. */
  assert_int_equal(run(ex, &h, "raw-write", &ds, 1, 0, &r), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output,
                      "(-20, 'a task that reads datasets cannot write to "
                      "teex.kv')");
  teex_task_result_free(&r);
  assert_int_equal(h.writes, writes);
  /* Without a handler: NotAvailable, with the reason. */
  assert_int_equal(run(ex, NULL, "read", NULL, 0, 0, &r), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output,
                      "NotAvailable: teex.kv: TEE-DS storage is not "
                      "configured on this worker");
  teex_task_result_free(&r);
  teex_executor_stop(ex);

  /* A stateless service: reads work, writes raise PermissionError. */
  img->manifest.stateless = 1;
  ex = xt_start(img, NULL);
  expect(ex, &h, "read", "b'1'");
  expect(ex, &h, "write",
         "PermissionError: teex.kv: a stateless service cannot write to "
         "teex.kv");
  expect(ex, &h, "raw-write",
         "(-20, 'a stateless service cannot write to teex.kv')");
  assert_int_equal(h.writes, writes);
  teex_executor_stop(ex);
  teex_image_free(img);
  teex_ds_kv_free(h.kv);
}

static void test_failures_and_time(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  struct host h;
  host_init(&h);
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, SERVICE);
  struct teex_executor *ex = xt_start(img, NULL);
  h.fail = 1;
  expect(ex, &h, "fail", "KVError: teex.kv: no leader answered in 5000 ms");
  h.fail = 0;
  /* The call's time is the task's: a handler slower than the deadline
   * ends the task with a timeout... */
  h.sleep_ms = 700;
  struct teex_task_result r;
  assert_int_equal(run(ex, &h, "slow", NULL, 0, 300, &r), 0);
  assert_int_equal(r.status, TEEX_TASK_TIMEOUT);
  teex_task_result_free(&r);
  /* ...and its late answer does not confuse the next task. */
  h.sleep_ms = 0;
  expect(ex, &h, "incr", "1");
  expect(ex, &h, "incr", "2");
  teex_executor_stop(ex);
  teex_image_free(img);
  teex_ds_kv_free(h.kv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_api),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_failures_and_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
