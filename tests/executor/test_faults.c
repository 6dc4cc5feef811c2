/* ctest-label: nosan (the sandboxed executor does not run under ASan) */
/* Faults end one task with a clear error and the executor serves the next:
 * an infinite loop (CPU limit and wall-clock deadline), a memory bomb, a
 * thread bomb, huge output (returned and printed), a crash in C code, a
 * task that closes its channel or exits. */
#include "exec_testutil.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/msg.h"

static const char service[] =
    "import os, sys, threading, time, faulthandler\n"
    "def main(data):\n"
    "    what = data.decode()\n"
    "    if what == 'spin':\n"
    "        while True:\n"
    "            pass\n"
    "    if what == 'sleep':\n"
    "        time.sleep(60)\n"
    "    if what == 'memory':\n"
    "        hog = []\n"
    "        while True:\n"
    "            hog.append(bytearray(16 << 20))\n"
    "    if what == 'threads':\n"
    "        ev = threading.Event()\n"
    "        ts = []\n"
    "        while True:\n"
    "            t = threading.Thread(target=ev.wait)\n"
    "            t.start()\n"
    "            ts.append(t)\n"
    "    if what == 'output':\n"
    "        return b'x' * (8 << 20)\n"
    "    if what == 'prints':\n"
    "        for i in range(100000):\n"
    "            print('line %d' % i)\n"
    "        return 'done'\n"
    "    if what == 'segv':\n"
    "        faulthandler._read_null()\n"
    "    if what == 'exit':\n"
    "        os._exit(3)\n"
    "    if what == 'close':\n"
    "        os.close(3)\n"
    "        time.sleep(60)\n"
    "    return 'fine'\n";

static void expect(struct teex_executor *ex, const char *what, int status,
                   const char *text) {
  struct teex_task_result r;
  xt_run(ex, what, &r);
  print_message("%-8s %-13s %s\n", what, teex_task_status_name(r.status),
                r.error ? r.error : "");
  if (r.status != status)
    fail_msg("%s: status %s, want %s (%s)", what,
             teex_task_status_name(r.status), teex_task_status_name(status),
             r.error ? r.error : "");
  if (text != NULL && (r.error == NULL || strstr(r.error, text) == NULL))
    fail_msg("%s: error lacks '%s': %s", what, text, r.error ? r.error : "");
  teex_task_result_free(&r);
  /* The executor serves the next task. */
  xt_run(ex, "ok", &r);
  XT_OK(r);
  assert_string_equal((char *)r.output, "fine");
  teex_task_result_free(&r);
}

static void test_faults(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *files[] = {"main.py", service, NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  img->manifest.limits.cpu_ms = 1000;
  img->manifest.limits.wall_ms = 3000;
  img->manifest.limits.memory_mb = 256;
  img->manifest.limits.threads = 8;
  img->manifest.limits.output_bytes = 1 << 20;
  struct teex_executor *ex = xt_start(img, NULL);
  img->manifest.limits.wall_ms = 60000;
  struct teex_executor *spin = xt_start(img, NULL);
  int zpid = teex_executor_pid(ex);

  /* The CPU limit, on an executor whose deadline is far enough that a
   * loaded machine still reaches the CPU limit first. */
  expect(spin, "spin", TEEX_TASK_CPU_LIMIT, "CPU time");
  teex_executor_stop(spin);
  expect(ex, "sleep", TEEX_TASK_TIMEOUT, "deadline of 3000 ms");
  expect(ex, "memory", TEEX_TASK_MEMORY_LIMIT, "out of memory");
  expect(ex, "threads", TEEX_TASK_ERROR, "at most 8 threads");
  expect(ex, "output", TEEX_TASK_OUTPUT_LIMIT, "the limit of 1048576 bytes");
  expect(ex, "segv", TEEX_TASK_CRASHED, "SIGSEGV");
  expect(ex, "exit", TEEX_TASK_CRASHED, "exit status 3");
  expect(ex, "close", TEEX_TASK_CRASHED, "closed its channel");

  /* Printing a lot is cut at the bound, not a failure. */
  struct teex_task_result r;
  xt_run(ex, "prints", &r);
  XT_OK(r);
  assert_true(r.logs_len <= (1u << 20) + 64);
  assert_non_null(strstr(r.logs, "[teex: logs cut at"));
  teex_task_result_free(&r);

  /* A per-task deadline below the executor's is honoured. */
  struct teex_task_ctx ctx = {.task_id = "t", .wall_ms = 300};
  struct teex_err err;
  assert_int_equal(
      teex_executor_run(ex, &ctx, (const uint8_t *)"sleep", 5, &r, &err), 0);
  assert_int_equal(r.status, TEEX_TASK_TIMEOUT);
  assert_true(r.duration_us < 2000000);
  teex_task_result_free(&r);

  assert_int_equal(teex_executor_pid(ex), zpid);
  assert_int_equal(kill(zpid, 0), 0);
  teex_executor_stop(ex);
  teex_image_free(img);
}

/* Each task starts from the executor's state, never a previous task's. */
static void test_isolation_between_tasks(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *files[] = {"main.py",
                                "seen = []\n"
                                "def main(data):\n"
                                "    seen.append(data)\n"
                                "    return len(seen)\n",
                                NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  for (int prefork = 0; prefork >= -1; prefork--) {
    struct teex_executor_opts opts = {.prefork = prefork};
    struct teex_executor *ex = xt_start(img, &opts);
    for (int i = 0; i < 3; i++) {
      struct teex_task_result r;
      xt_run(ex, "x", &r);
      XT_OK(r);
      assert_string_equal((char *)r.output, "1");
      teex_task_result_free(&r);
    }
    teex_executor_stop(ex);
  }
  teex_image_free(img);
}

/* Starts `teex executor --fd=3` by hand, sends it `len` raw bytes, and
 * checks that it answers FAIL (or just closes) and exits normally — a
 * malformed image never crashes the executor. */
static void feed_executor(const uint8_t *bytes, size_t len, int expect_fail) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(sv[1], 3);
    char *argv[] = {"teex", "executor", "--fd=3", NULL};
    char *envp[] = {NULL};
    execve(tu_teex_bin(), argv, envp);
    _exit(127);
  }
  close(sv[1]);
  (void)teex_xmsg_send(sv[0], bytes, len, 5000);
  shutdown(sv[0], SHUT_WR);
  struct teex_buf rx;
  teex_buf_init(&rx, 0, 0);
  unsigned type = 0;
  struct teex_err err;
  int rc = teex_xmsg_recv(sv[0], &type, &rx, 30000, &err);
  if (expect_fail) {
    assert_int_equal(rc, 0);
    assert_int_equal(type, TEEX_XMSG_FAIL);
    char text[512];
    assert_int_equal(
        teex_xmsg_decode_text(rx.data, rx.len, TEEX_XT_TEXT, text, sizeof text),
        0);
    print_message("executor said: %s\n", text);
  }
  teex_buf_free(&rx);
  close(sv[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 1);
}

static void test_malformed_images(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  /* Garbage instead of a frame. */
  static const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
  feed_executor(junk, sizeof junk - 1, 1);
  /* A LOAD header announcing more than the maximum. */
  uint8_t big[8] = {TEEX_XMSG_MAGIC,
                    TEEX_XMSG_VERSION,
                    TEEX_XMSG_LOAD,
                    0,
                    0x7f,
                    0xff,
                    0xff,
                    0xff};
  feed_executor(big, sizeof big, 1);
  /* A LOAD cut short. */
  uint8_t cut[12] = {TEEX_XMSG_MAGIC,
                     TEEX_XMSG_VERSION,
                     TEEX_XMSG_LOAD,
                     0,
                     0,
                     0,
                     1,
                     0,
                     1,
                     0,
                     0,
                     0};
  feed_executor(cut, sizeof cut, 1);
  /* A well-framed image with a path escaping the image, and one whose
   * entry is missing. */
  struct teex_buf b;
  teex_buf_init(&b, 1 << 20, 0);
  const char *bodies[2][2] = {{"../evil.py", "main.py"},
                              {"other.py", "main.py"}};
  for (int i = 0; i < 2; i++) {
    teex_xmsg_begin(&b, TEEX_XMSG_LOAD);
    teex_xmsg_put_str(&b, TEEX_XT_ENTRY, bodies[i][1]);
    teex_xmsg_put_str(&b, TEEX_XT_FILE_PATH, bodies[i][0]);
    teex_xmsg_put_str(&b, TEEX_XT_FILE_DATA, "x = 1\n");
    teex_xmsg_end(&b);
    feed_executor(b.data, b.len, 1);
  }
  /* A task before any image. */
  struct teex_task_ctx ctx = {.task_id = "t"};
  teex_xmsg_encode_task(&b, &ctx, (const uint8_t *)"x", 1);
  feed_executor(b.data, b.len, 1);
  teex_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_faults),
      cmocka_unit_test(test_isolation_between_tasks),
      cmocka_unit_test(test_malformed_images),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
