/* Process hardening: a hardened process has RLIMIT_CORE 0, is not dumpable,
 * and another process of the same user without CAP_SYS_PTRACE can neither
 * PTRACE_SEIZE it nor open its /proc/PID/mem — while the same attacker can
 * do both to an unhardened sibling (the positive control that proves the
 * test can fail). When run as root the attacker drops CAP_SYS_PTRACE from
 * its effective set, since root with that capability bypasses every check
 * (sim does not protect against the host's root). */
#include "testutil.h"

#include "teex/harden.h"
#include "teex/tee.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Drops CAP_SYS_PTRACE from the effective set (and the permitted set when
 * permitted_too). The kernel lets a tracer whose capabilities are not a
 * superset of the target's fall back only on CAP_SYS_PTRACE, so targets drop
 * it from their permitted set and the attacker keeps everything else. */
static int drop_ptrace_cap(int permitted_too) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0)
    return -1;
  uint32_t bit = 1u << (CAP_SYS_PTRACE % 32);
  d[CAP_SYS_PTRACE / 32].effective &= ~bit;
  if (permitted_too)
    d[CAP_SYS_PTRACE / 32].permitted &= ~bit;
  return (int)syscall(SYS_capset, &h, d);
}

/* Forks a target that optionally hardens itself, allows any ptracer as far
 * as Yama is concerned (so that only dumpability decides), reports readiness
 * on a pipe and waits to be killed. */
static pid_t spawn_target(int harden) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    char ok = 'y';
    if (drop_ptrace_cap(1) != 0)
      ok = 'n';
    if (harden && teex_harden_process(0, NULL) != 0)
      ok = 'n';
    if (harden && !teex_harden_is_active())
      ok = 'n';
    (void)prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    if (write(p[1], &ok, 1) != 1)
      _exit(1);
    for (;;)
      pause();
  }
  close(p[1]);
  char c = 0;
  assert_int_equal(read(p[0], &c, 1), 1);
  close(p[0]);
  assert_int_equal(c, 'y');
  return pid;
}

/* Bits of the attacker's exit status. */
#define SOFT_SEIZE_OK 1
#define SOFT_MEM_OK 2
#define HARD_SEIZE_OK 4
#define HARD_MEM_OK 8
#define SETUP_FAILED 64

static int attack(pid_t pid, int seize_bit, int mem_bit) {
  int r = 0;
  if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0)
    r |= seize_bit;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    r |= mem_bit;
    close(fd);
  }
  return r;
}

static void test_ptrace_refused(void **state) {
  (void)state;
  pid_t soft = spawn_target(0);
  pid_t hard = spawn_target(1);
  pid_t atk = fork();
  assert_true(atk >= 0);
  if (atk == 0) {
    if (drop_ptrace_cap(0) != 0)
      _exit(SETUP_FAILED);
    int r = attack(soft, SOFT_SEIZE_OK, SOFT_MEM_OK);
    r |= attack(hard, HARD_SEIZE_OK, HARD_MEM_OK);
    _exit(r); /* exiting detaches any tracee */
  }
  int st = 0;
  assert_int_equal(waitpid(atk, &st, 0), atk);
  kill(soft, SIGKILL);
  kill(hard, SIGKILL);
  waitpid(soft, NULL, 0);
  waitpid(hard, NULL, 0);
  assert_true(WIFEXITED(st));
  int r = WEXITSTATUS(st);
  fprintf(stderr, "attacker result bits: %d\n", r);
  assert_false(r & SETUP_FAILED);
  /* Positive control: the attacker can trace and read an unhardened
   * process of the same user. */
  assert_true(r & SOFT_SEIZE_OK);
  assert_true(r & SOFT_MEM_OK);
  /* The hardened one refuses both. */
  assert_false(r & HARD_SEIZE_OK);
  assert_false(r & HARD_MEM_OK);
}

static void test_no_core(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct teex_err err;
    if (teex_harden_process(0, &err) != 0)
      _exit(2);
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 ||
        rl.rlim_max != 0)
      _exit(3);
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
      _exit(4);
    /* Raising the core limit again is refused (hard limit 0). */
    rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
    if (getuid() != 0 && setrlimit(RLIMIT_CORE, &rl) == 0)
      _exit(5);
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  /* This (unhardened) process is dumpable: the check can fail. */
  assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
  assert_false(teex_harden_is_active());
}

/* A TEE context opened with cfg.harden hardens its process. */
static void test_tee_open_hardens(void **state) {
  (void)state;
  char *dir = tu_mkdtemp("harden");
  struct teex_err err;
  assert_int_equal(teex_tee_sim_init(dir, NULL, &err), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct teex_tee_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.data_dir = dir;
    cfg.role = "sm";
    cfg.harden = 1;
    struct teex_tee *tee;
    if (teex_harden_is_active() || teex_tee_open(&cfg, &tee, &err) != 0)
      _exit(2);
    int ok = teex_harden_is_active();
    teex_tee_close(tee);
    _exit(ok ? 0 : 1);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  tu_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ptrace_refused),
      cmocka_unit_test(test_no_core),
      cmocka_unit_test(test_tee_open_hardens),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
