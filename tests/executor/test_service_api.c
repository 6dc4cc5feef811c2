/* ctest-label: nosan (the sandboxed executor does not run under ASan) */
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
  /* The same service with its entry in a folder without __init__.py. */
  static const char *const nested[] = {
      "app/entry.py",
      "from app.lib import helper\n"
      "def main(data):\n"
      "    return helper.twice(data)\n",
      "app/lib/helper.py", "def twice(b):\n    return b + b\n", NULL};
  struct teex_image *nimg =
      xt_image("app/entry.py", TEEX_STYLE_FUNCTION, nested);
  struct teex_executor *nex = xt_start(nimg, NULL);
  struct teex_task_result nr;
  xt_run(nex, "ab", &nr);
  XT_OK(nr);
  assert_string_equal((char *)nr.output, "abab");
  teex_task_result_free(&nr);
  teex_executor_stop(nex);
  teex_image_free(nimg);

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

/* Every module the service API promises imports and works in the sandbox;
 * the expected values are fixed facts (digests, exact decimals). */
static void test_stdlib(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {
      "main.py",
      "import json, re, math, random, hmac, hashlib, decimal, statistics\n"
      "import collections, threading\n"
      "def main(data):\n"
      "    out = {}\n"
      "    out['json'] = json.loads('{\"a\": [1, 2]}')['a'][1]\n"
      "    out['re'] = re.findall(r'\\d+', 'a12b345')\n"
      "    out['math'] = math.isqrt(10**6)\n"
      "    r = random.Random(7); out['random'] = len([r.random() for _ in "
      "range(5)])\n"
      "    out['hmac'] = hmac.new(b'key', b'msg', 'sha256').hexdigest()[:16]\n"
      "    out['sha256'] = hashlib.sha256(b'abc').hexdigest()[:16]\n"
      "    out['decimal'] = str(decimal.Decimal('1.1') + "
      "decimal.Decimal('2.2'))\n"
      "    out['statistics'] = statistics.mean([1, 2, 3, 4])\n"
      "    out['collections'] = collections.Counter('abracadabra')"
      ".most_common(1)[0][0]\n"
      "    res = []\n"
      "    lock = threading.Lock()\n"
      "    def work(i):\n"
      "        with lock:\n"
      "            res.append(i * i)\n"
      "    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
      "    [t.start() for t in ts]\n"
      "    [t.join() for t in ts]\n"
      "    out['threading'] = sorted(res)\n"
      "    return out\n",
      NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  struct teex_executor *ex = xt_start(img, NULL);
  struct teex_task_result r;
  xt_run(ex, "", &r);
  XT_OK(r);
  assert_string_equal(
      (char *)r.output,
      "{\"collections\":\"a\",\"decimal\":\"3.3\",\"hmac\":"
      "\"2d93cbc1be167bcb\","
      "\"json\":2,\"math\":1000,\"random\":5,\"re\":[\"12\",\"345\"],"
      "\"sha256\":\"ba7816bf8f01cfea\",\"statistics\":2.5,"
      "\"threading\":[0,1,4,9]}");
  teex_task_result_free(&r);
  teex_executor_stop(ex);
  teex_image_free(img);
}

/* A service in the style of the TEEX TestNet: top-level code, the TEEX_*
 * functions, only the first TEEX_return counts, dicts come back as JSON,
 * and Python 2's mutex module is there. */
static void test_script_style(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {
      "service.py",
      "from teex import *\n"
      "import mutex\n"
      "from util import greet\n"
      "m = mutex.mutex()\n"
      "seen = []\n"
      "m.lock(seen.append, 'first')\n"
      "m.lock(seen.append, 'queued')\n"
      "m.unlock()\n"
      "name = TEEX_getinput()\n"
      "TEEX_return({'greeting': greet(name), 'mutex': seen,\n"
      "             'main': __name__})\n"
      "TEEX_return('ignored: only the first call counts')\n",
      "util.py", "def greet(n):\n    return 'hello ' + n\n", NULL};
  struct teex_image *img = xt_image("service.py", TEEX_STYLE_SCRIPT, files);
  struct teex_executor *ex = xt_start(img, NULL);
  struct teex_task_result r;
  for (int i = 0; i < 2; i++) { /* each run starts from the same state */
    xt_run(ex, "teex", &r);
    XT_OK(r);
    assert_string_equal((char *)r.output,
                        "{\"greeting\":\"hello teex\",\"main\":\"__main__\","
                        "\"mutex\":[\"first\",\"queued\"]}");
    teex_task_result_free(&r);
  }
  teex_executor_stop(ex);
  teex_image_free(img);
}

/* teex.kv raises a clear error until a later release; a task without
 * datasets gets a clear IndexError from teex.data / TEEX_getdata; the
 * manifest's stateless flag reaches the service. */
static void test_teex_module(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {
      "main.py",
      "import teex\n"
      "def main(data):\n"
      "    out = [teex.stateless]\n"
      "    for f in (lambda: teex.data(0), lambda: teex.kv.get('k'),\n"
      "              lambda: teex.TEEX_getdata(1)):\n"
      "        try:\n"
      "            f()\n"
      "            out.append('no error')\n"
      "        except (teex.NotAvailable, IndexError) as e:\n"
      "            out.append(str(e))\n"
      "    return out\n",
      NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  img->manifest.stateless = 1;
  struct teex_executor *ex = xt_start(img, NULL);
  struct teex_task_result r;
  xt_run(ex, "", &r);
  XT_OK(r);
  assert_non_null(
      strstr((char *)r.output, "[true,\"teex.data(0): this task has 0"));
  assert_non_null(strstr((char *)r.output, "teex.kv: TEE-DS storage is not"));
  assert_non_null(strstr((char *)r.output, "teex.data(1): this task has 0"));
  assert_null(strstr((char *)r.output, "no error"));
  teex_task_result_free(&r);
  teex_executor_stop(ex);
  teex_image_free(img);
}

/* The caller gets type, message and the service's line numbers, not its
 * source; with full_tracebacks, the source lines too. */
static void test_errors(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const files[] = {"main.py",
                                      "from calc import ratio\n"
                                      "def main(data):\n"
                                      "    secret_source_marker = 1\n"
                                      "    return ratio(len(data), 0)\n",
                                      "calc.py",
                                      "def ratio(a, b):\n"
                                      "    return a / b  # SECRET_COMMENT\n",
                                      NULL};
  for (int full = 0; full <= 1; full++) {
    struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
    img->manifest.full_tracebacks = full;
    struct teex_executor *ex = xt_start(img, NULL);
    struct teex_task_result r;
    xt_run(ex, "x", &r);
    assert_int_equal(r.status, TEEX_TASK_ERROR);
    assert_non_null(r.error);
    assert_non_null(strstr(r.error, "ZeroDivisionError: division by zero"));
    assert_non_null(strstr(r.error, "\"main.py\", line 4, in main"));
    assert_non_null(strstr(r.error, "calc.py\", line 2, in ratio"));
    if (full)
      assert_non_null(strstr(r.error, "SECRET_COMMENT"));
    else
      assert_null(strstr(r.error, "SECRET_COMMENT"));
    teex_task_result_free(&r);
    /* The executor keeps serving after a service error. */
    xt_run(ex, "", &r);
    assert_int_equal(r.status, TEEX_TASK_ERROR);
    teex_task_result_free(&r);
    teex_executor_stop(ex);
    teex_image_free(img);
  }
}

/* A service that cannot be imported is refused at start with its file and
 * line; so is a function-style entry without main. */
static void test_bad_services(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *const syntax[] = {"main.py",
                                       "def main(data):\n    return (\n", NULL};
  static const char *const nomain[] = {"main.py", "x = 1\n", NULL};
  static const char *const raises[] = {
      "main.py", "import json\nraise ValueError('bad config')\n", NULL};
  const char *const *cases[] = {syntax, nomain, raises};
  const char *expect[] = {"main.py, line", "defines no main(input)",
                          "ValueError: bad config"};
  for (int i = 0; i < 3; i++) {
    struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, cases[i]);
    struct teex_executor_opts opts = {.exe_path = tu_teex_bin()};
    struct teex_executor *ex = NULL;
    struct teex_err err;
    teex_err_clear(&err);
    int rc = teex_executor_start(img, &opts, &ex, &err);
    assert_int_equal(rc, TEEX_EFORMAT);
    assert_null(ex);
    if (strstr(err.msg, expect[i]) == NULL)
      fail_msg("case %d: %s", i, err.msg);
    teex_image_free(img);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_function_style),
      cmocka_unit_test(test_stdlib),
      cmocka_unit_test(test_script_style),
      cmocka_unit_test(test_teex_module),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_bad_services),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
