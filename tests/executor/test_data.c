/* ctest-label: nosan (the sandboxed executor does not run under ASan)
 * Datasets in the real sandboxed executor: teex.data(i) and
 * teex.data(name) give a function-style service its task's datasets in
 * order, TEEX_getdata(i) a script written as for the TEEX TestNet; clear
 * errors for an index or name the task does not have; a task holding a
 * dataset cannot write to teex.kv; the task's output cap (a dataset's
 * --max-output) bounds output, logs and error text together, and never
 * raises the executor's own; bad dataset lists are refused before anything
 * is sent; nothing of one task's data is seen by the next. */
#include "exec_testutil.h"

static const char CANARY[] = "CANARY-IN-DATASET-4d1c";

static int run_with(struct teex_executor *ex, const char *input,
                    const struct teex_task_data *ds, size_t n, uint32_t cap,
                    struct teex_task_result *res, struct teex_err *err) {
  struct teex_task_ctx ctx = {.task_id = "task-d",
                              .service_id = "svc-d",
                              .caller =
                                  "0x00000000000000000000000000000000000c0",
                              .datasets = ds,
                              .n_datasets = n,
                              .output_max = cap};
  return teex_executor_run(ex, &ctx, (const uint8_t *)input, strlen(input), res,
                           err);
}

static void test_function_style(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {
      "main.py",
      "import teex\n"
      "def main(inp):\n"
      "    if inp == b'names':\n"
      "        return list(teex.datasets())\n"
      "    if inp == b'missing-index':\n"
      "        return teex.data(7)\n"
      "    if inp == b'missing-name':\n"
      "        return teex.data('nope')\n"
      "    if inp == b'kv':\n"
      "        teex.kv.set('k', b'v')\n"
      "    if inp == b'kv-read':\n"
      "        return teex.kv.get('k')\n"
      "    return [teex.data(0).decode(), teex.data('b.csv').decode(),\n"
      "            teex.data(-1).decode(), len(teex.data(1)),\n"
      "            teex.TEEX_getdata(0)]\n",
      NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  struct teex_executor *ex = xt_start(img, NULL);
  struct teex_task_data ds[2] = {
      {.name = "a.csv", .data = (const uint8_t *)"alpha", .len = 5},
      {.name = "b.csv", .data = (const uint8_t *)"bravo!", .len = 6}};
  struct teex_task_result r;
  struct teex_err err = {0};
  assert_int_equal(run_with(ex, "", ds, 2, 0, &r, &err), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output,
                      "[\"alpha\",\"bravo!\",\"bravo!\",6,\"alpha\"]");
  teex_task_result_free(&r);
  assert_int_equal(run_with(ex, "names", ds, 2, 0, &r, &err), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output, "[\"a.csv\",\"b.csv\"]");
  teex_task_result_free(&r);
  /* Clear errors for what the task does not have. */
  assert_int_equal(run_with(ex, "missing-index", ds, 2, 0, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_ERROR);
  assert_non_null(strstr(r.error, "IndexError: teex.data(7): this task has 2"));
  teex_task_result_free(&r);
  assert_int_equal(run_with(ex, "missing-name", ds, 2, 0, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_ERROR);
  assert_non_null(strstr(r.error, "no dataset of that name"));
  assert_non_null(strstr(r.error, "a.csv, b.csv"));
  teex_task_result_free(&r);
  /* A task holding datasets cannot write to teex.kv... */
  assert_int_equal(run_with(ex, "kv", ds, 2, 0, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_ERROR);
  assert_non_null(strstr(r.error,
                         "PermissionError: teex.kv: a task that reads datasets "
                         "cannot write"));
  teex_task_result_free(&r);
  /* ...while one without datasets meets the usual "not available". */
  assert_int_equal(run_with(ex, "kv", NULL, 0, 0, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_ERROR);
  assert_non_null(strstr(r.error, "NotAvailable"));
  teex_task_result_free(&r);
  /* The next task has no datasets: nothing of the last one is left. */
  assert_int_equal(run_with(ex, "names", NULL, 0, 0, &r, &err), 0);
  XT_OK(r);
  assert_string_equal((char *)r.output, "[]");
  teex_task_result_free(&r);

  /* Bad lists are refused by the host before anything is sent. */
  struct teex_task_data dup[2] = {ds[0], ds[0]};
  assert_int_equal(run_with(ex, "", dup, 2, 0, &r, &err), TEEX_EINVAL);
  struct teex_task_data noname = {.name = "", .data = ds[0].data, .len = 5};
  assert_int_equal(run_with(ex, "", &noname, 1, 0, &r, &err), TEEX_EINVAL);
  struct teex_task_data many[TEEX_EXEC_DATASETS_MAX + 1];
  assert_int_equal(
      run_with(ex, "", many, TEEX_EXEC_DATASETS_MAX + 1, 0, &r, &err),
      TEEX_ETOOBIG);
  /* The executor still works. */
  assert_int_equal(run_with(ex, "", ds, 2, 0, &r, &err), 0);
  XT_OK(r);
  teex_task_result_free(&r);
  teex_executor_stop(ex);
  teex_image_free(img);
}

/* A service written as for the TEEX TestNet: the script's top level reads
 * its data with TEEX_getdata (service data first, then task data). */
static void test_testnet_script(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {
      "job.py",
      "from teex import *\n"
      "rates = dict(l.split('=') for l in TEEX_getdata(0).split())\n"
      "total = sum(int(x) for x in TEEX_getdata(1).split(','))\n"
      "TEEX_return('%s %d' % (rates[TEEX_getinput().strip()], total))\n",
      NULL};
  struct teex_image *img = xt_image("job.py", TEEX_STYLE_SCRIPT, files);
  struct teex_executor *ex = xt_start(img, NULL);
  struct teex_task_data ds[2] = {
      {.name = "service-rates",
       .data = (const uint8_t *)"eu=7\nus=9\n",
       .len = 10},
      {.name = "task-amounts", .data = (const uint8_t *)"1,2,39", .len = 6}};
  struct teex_task_result r;
  struct teex_err err = {0};
  assert_int_equal(run_with(ex, "us\n", ds, 2, 0, &r, &err), 0);
  XT_OK(r);
  assert_int_equal(r.output_len, 4);
  assert_memory_equal(r.output, "9 42", 4);
  teex_task_result_free(&r);
  teex_executor_stop(ex);
  teex_image_free(img);
}

/* --max-output: output, logs and error text together stay under the cap,
 * whatever the service tries; a cap above the executor's does not raise
 * it. */
static void test_output_cap(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {"main.py",
                                      "import teex\n"
                                      "def main(inp):\n"
                                      "    d = teex.data(0).decode()\n"
                                      "    if inp == b'small':\n"
                                      "        return 'ok'\n"
                                      "    if inp == b'log':\n"
                                      "        for _ in range(100):\n"
                                      "            print(d)\n"
                                      "        return 'x' * 50\n"
                                      "    if inp == b'raise':\n"
                                      "        print(d * 10)\n"
                                      "        raise ValueError(d * 100)\n"
                                      "    return d * 100\n",
                                      NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  struct teex_executor_opts o = {0};
  o.limits.output_bytes = 4096;
  struct teex_executor *ex = xt_start(img, &o);
  struct teex_task_data ds = {
      .name = "d", .data = (const uint8_t *)CANARY, .len = strlen(CANARY)};
  struct teex_task_result r;
  struct teex_err err = {0};
  const uint32_t cap = 200;
  /* Under the cap: fine. */
  assert_int_equal(run_with(ex, "small", &ds, 1, cap, &r, &err), 0);
  XT_OK(r);
  teex_task_result_free(&r);
  /* The data in the output, over the cap: refused, none of it returned. */
  assert_int_equal(run_with(ex, "", &ds, 1, cap, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_OUTPUT_LIMIT);
  assert_int_equal(r.output_len, 0);
  assert_true(r.logs_len + (r.error ? strlen(r.error) : 0) <= cap);
  teex_task_result_free(&r);
  /* The data in the logs: cut so output + logs fit. */
  assert_int_equal(run_with(ex, "log", &ds, 1, cap, &r, &err), 0);
  XT_OK(r);
  assert_int_equal(r.output_len, 50);
  assert_true(r.output_len + r.logs_len <= cap);
  teex_task_result_free(&r);
  /* The data in an exception's text and the logs: both cut. */
  assert_int_equal(run_with(ex, "raise", &ds, 1, cap, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_ERROR);
  assert_non_null(r.error);
  assert_true(r.logs_len + strlen(r.error) <= cap);
  teex_task_result_free(&r);
  /* Without a task cap the executor's bound (4096) applies: the 2200-byte
   * output passes, and a task cap above 4096 does not raise it. */
  assert_int_equal(run_with(ex, "", &ds, 1, 0, &r, &err), 0);
  XT_OK(r);
  assert_int_equal(r.output_len, 100 * strlen(CANARY));
  teex_task_result_free(&r);
  static const char *const big_files[] = {
      "main.py", "def main(inp):\n    return 'y' * 5000\n", NULL};
  struct teex_image *big = xt_image("main.py", TEEX_STYLE_FUNCTION, big_files);
  struct teex_executor *ex2 = xt_start(big, &o);
  assert_int_equal(run_with(ex2, "", &ds, 1, 1 << 20, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_OUTPUT_LIMIT);
  teex_task_result_free(&r);
  teex_executor_stop(ex2);
  teex_image_free(big);
  teex_executor_stop(ex);
  teex_image_free(img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_function_style),
      cmocka_unit_test(test_testnet_script),
      cmocka_unit_test(test_output_cap),
  };
  return cmocka_run_group_tests_name("executor data", tests, NULL, NULL);
}
