/* The service API through the real sandbox: function and script styles,
 * the teex module, the mutex shim, errors, the standard library. */
#include "exec_testutil.h"

static void test_function_style(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {
      "main.py",
      "import json, teex\n"
      "from helper import twice\n"
      "def main(data):\n"
      "    teex.log('got', len(data), 'bytes')\n"
      "    print('printed line')\n"
      "    if data == b'ctx':\n"
      "        return [teex.task_id, teex.service_id, teex.caller]\n"
      "    if data == b'str':\n"
      "        return 'h\\u00e9llo'\n"
      "    if data == b'none':\n"
      "        return None\n"
      "    return twice(data)\n",
      "helper.py", "def twice(b):\n    return b + b\n", NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  struct teex_executor *ex = xt_start(img, NULL);
  assert_true(teex_executor_sandbox_abi(ex) >= 1);
  struct teex_task_result r;
  xt_run(ex, "abc", &r);
  XT_OK(r);
  assert_int_equal(r.output_len, 6);
  assert_memory_equal(r.output, "abcabc", 6);
  assert_non_null(r.logs);
  assert_non_null(strstr(r.logs, "got 3 bytes\n"));
  assert_non_null(strstr(r.logs, "printed line\n"));
  teex_task_result_free(&r);
  xt_run(ex, "ctx", &r);
  XT_OK(r);
  assert_string_equal((char *)r.output,
                      "[\"task-1\",\"svc-42\","
                      "\"0x00000000000000000000000000000000000000c0\"]");
  teex_task_result_free(&r);
  xt_run(ex, "str", &r);
  XT_OK(r);
  assert_string_equal((char *)r.output, "h\xc3\xa9llo");
  teex_task_result_free(&r);
  xt_run(ex, "none", &r);
  XT_OK(r);
  assert_int_equal(r.output_len, 0);
  teex_task_result_free(&r);
  teex_executor_stop(ex);
  teex_image_free(img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_function_style),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
