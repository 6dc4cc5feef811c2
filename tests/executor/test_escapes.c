/* ctest-label: nosan (the sandboxed executor does not run under ASan) */
/* Every escape attempt of the executor's threat list, through the real
 * sandbox, each asserting that the attempt failed AND left no trace: the
 * files are unchanged, no program ran, no connection arrived, no signal
 * landed, the executor still serves. Run three times: the whole sandbox,
 * the kernel walls alone (audit hooks off), and Landlock capped at ABI 1.
 *
 * The target directory is world-writable and the canary world-readable, so
 * that Unix permissions (the executor runs as nobody when started by root)
 * cannot be what stops an attempt: only the walls can. */
#include "exec_testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char service[] =
    "import json, os, io, pathlib, shutil, tempfile, sqlite3, mmap, signal\n"
    "import subprocess, socket\n"
    "def w_open(a): open(a['dir'] + '/w_open', 'w').write('x')\n"
    "def w_os_open(a):\n"
    "    os.write(os.open(a['dir'] + '/w_os_open', os.O_WRONLY | os.O_CREAT),"
    " b'x')\n"
    "def w_fileio(a): io.FileIO(a['dir'] + '/w_fileio', 'w').write(b'x')\n"
    "def w_pathlib(a): pathlib.Path(a['dir'], 'w_pathlib').write_text('x')\n"
    "def w_shutil(a):\n"
    "    shutil.copyfile('/usr/lib/python3.11/os.py', a['dir'] + '/w_shutil')\n"
    "def w_tempfile(a): return tempfile.mkstemp(dir=a['dir'])\n"
    "def w_sqlite(a):\n"
    "    c = sqlite3.connect(a['dir'] + '/w_sqlite')\n"
    "    c.execute('create table t(x)'); c.commit()\n"
    "def w_mmap(a):\n"
    "    fd = os.open(a['dir'] + '/w_mmap', os.O_RDWR | os.O_CREAT)\n"
    "    os.ftruncate(fd, 4096); m = mmap.mmap(fd, 4096); m[:1] = b'x'\n"
    "def w_victim(a): open(a['victim'], 'a').write('x')\n"
    "def w_victim_mmap(a):\n"
    "    f = open(a['victim'], 'rb')\n"
    "    m = mmap.mmap(f.fileno(), 0); m[:1] = b'X'\n"
    "def d_remove(a): os.remove(a['victim'])\n"
    "def d_rename(a): os.rename(a['victim'], a['dir'] + '/renamed')\n"
    "def d_rmtree(a): shutil.rmtree(a['dir'])\n"
    "def s_subprocess(a):\n"
    "    subprocess.run(['/bin/sh', '-c', 'touch ' + a['dir'] + '/s_sub'])\n"
    "def s_system(a): return os.system('touch ' + a['dir'] + '/s_system')\n"
    "def s_exec(a):\n"
    "    os.execv('/bin/sh', ['sh', '-c', 'touch ' + a['dir'] + '/s_exec'])\n"
    "def s_posix_spawn(a):\n"
    "    return os.posix_spawn('/bin/sh', ['sh', '-c', 'touch ' + a['dir'] +\n"
    "                          '/s_spawn'], {})\n"
    "def s_fork(a):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os.execv('/bin/sh', ['sh', '-c', 'touch ' + a['dir'] + "
    "'/s_fork'])\n"
    "    return pid\n"
    "def s_posixsubprocess(a):\n"
    "    import _posixsubprocess\n"
    "    cmd = ('touch ' + a['dir'] + '/s_psp').encode()\n"
    "    return _posixsubprocess.fork_exec([b'/bin/sh', b'-c', cmd],\n"
    "        [b'/bin/sh'], True, (), None, None, -1, -1, -1, -1, -1, -1,\n"
    "        -1, 3, False, False, -1, None, None, None, -1, None, False)\n"
    "def n_tcp(a):\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "    s.connect(('127.0.0.1', a['port']))\n"
    "def n_udp(a):\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "    s.sendto(b'x', ('127.0.0.1', a['uport']))\n"
    "def n_unix(a):\n"
    "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "    s.connect('\\0teex-escape-test')\n"
    "def c_ctypes(a):\n"
    "    import ctypes\n"
    "    return ctypes.CDLL(None).system(('touch ' + a['dir'] + "
    "'/c_ctypes').encode())\n"
    "def c_ctypes_open(a):\n"
    "    import ctypes\n"
    "    libc = ctypes.CDLL(None)\n"
    "    fd = libc.open((a['dir'] + '/c_open').encode(), 0o101, 0o666)\n"
    "    return fd, libc.write(fd, b'x', 1), "
    "libc.unlink(a['victim'].encode())\n"
    "def k_executor(a): os.kill(a['zpid'], signal.SIGKILL)\n"
    "def k_host(a): os.kill(a['pid'], signal.SIGUSR1)\n"
    "def k_host_pg(a): os.killpg(a['pgid'], signal.SIGUSR1)\n"
    "def t_mem(a):\n"
    "    return open('/proc/%d/mem' % a['zpid'], 'rb').read(16)\n"
    "def t_environ(a): return open('/proc/%d/environ' % a['pid'], "
    "'rb').read()\n"
    "def t_host_maps(a): return open('/proc/%d/maps' % a['pid']).read()\n"
    "def r_canary(a): return open(a['canary']).read()\n"
    "def r_canary_os(a):\n"
    "    return os.read(os.open(a['canary'], os.O_RDONLY), 100)\n"
    "def r_traversal(a):\n"
    "    return open('/usr/lib/python3.11/../../..' + a['canary']).read()\n"
    "def r_listdir(a): return os.listdir(a['dir'])\n"
    "def r_passwd(a): return open('/etc/passwd').read()\n"
    "def main(data):\n"
    "    a = json.loads(data)\n"
    "    try:\n"
    "        v = globals()[a['attempt']](a)\n"
    "        return 'DONE: %r' % (v,)\n"
    "    except BaseException as e:\n"
    "        return 'BLOCKED: %s: %s' % (type(e).__name__, e)\n";

/* Attempts; `may_complete` marks calls that report failure by a return
 * value instead of raising when only the kernel walls stand: os.system and
 * libc's system() return 127 when their fork is refused, libc's open()
 * returns -1. (ctypes imports when the teex binary has already mapped
 * libffi; its calls still meet seccomp and Landlock.) The world check
 * decides. */
static const struct {
  const char *name;
  int may_complete;
} attempts[] = {
    {"w_open", 0},
    {"w_os_open", 0},
    {"w_fileio", 0},
    {"w_pathlib", 0},
    {"w_shutil", 0},
    {"w_tempfile", 0},
    {"w_sqlite", 0},
    {"w_mmap", 0},
    {"w_victim", 0},
    {"w_victim_mmap", 0},
    {"d_remove", 0},
    {"d_rename", 0},
    {"d_rmtree", 0},
    {"s_subprocess", 0},
    {"s_system", 1},
    {"s_exec", 0},
    {"s_posix_spawn", 0},
    {"s_fork", 0},
    {"s_posixsubprocess", 0},
    {"n_tcp", 0},
    {"n_udp", 0},
    {"n_unix", 0},
    {"c_ctypes", 1},
    {"c_ctypes_open", 1},
    {"k_executor", 0},
    {"k_host", 0},
    {"k_host_pg", 0},
    {"t_mem", 0},
    {"t_environ", 0},
    {"t_host_maps", 0},
    {"r_canary", 0},
    {"r_canary_os", 0},
    {"r_traversal", 0},
    {"r_listdir", 0},
    {"r_passwd", 0},
};

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) {
  (void)sig;
  got_usr1 = 1;
}

static const char canary_text[] = "TEEX-CANARY-7f3a9c2e51d8";
static const char victim_text[] = "victim contents\n";

/* The world: the directory holds exactly victim and canary, unchanged. */
static void check_world(const char *dir, const char *attempt) {
  DIR *d = opendir(dir);
  if (d == NULL)
    fail_msg("%s: the directory is gone", attempt);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (strcmp(e->d_name, "victim") != 0 && strcmp(e->d_name, "canary") != 0)
      fail_msg("%s: left a file behind: %s", attempt, e->d_name);
    n++;
  }
  closedir(d);
  if (n != 2)
    fail_msg("%s: a file is missing", attempt);
  char path[512];
  snprintf(path, sizeof path, "%s/victim", dir);
  size_t len;
  uint8_t *v = tu_read_file(path, &len);
  assert_non_null(v);
  if (len != strlen(victim_text) || memcmp(v, victim_text, len) != 0)
    fail_msg("%s: the victim file changed", attempt);
  free(v);
}

static int listen_tcp(int *port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s, 4), 0);
  socklen_t l = sizeof a;
  getsockname(s, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return s;
}

static int bind_udp(int *port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t l = sizeof a;
  getsockname(s, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return s;
}

static int listen_abstract(void) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_un {
    sa_family_t sun_family;
    char sun_path[108];
  } a = {.sun_family = AF_UNIX};
  static const char name[] = "\0teex-escape-test";
  memcpy(a.sun_path, name, sizeof name - 1);
  socklen_t len = (socklen_t)(sizeof(sa_family_t) + sizeof name - 1);
  if (bind(s, (struct sockaddr *)&a, len) != 0 || listen(s, 4) != 0) {
    close(s);
    return -1; /* another run holds the name: that check is skipped */
  }
  return s;
}

static void run_escapes(struct teex_executor_opts *opts, int audit_on) {
  if (xt_skip_sanitized())
    skip();
  static const char *files[] = {"main.py", service, NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  struct teex_executor *ex = xt_start(img, opts);
  if (opts->landlock_abi_max > 0)
    assert_int_equal(teex_executor_sandbox_abi(ex), opts->landlock_abi_max);

  char *dir = tu_mkdtemp("escape");
  assert_non_null(dir);
  chmod(dir, 0777);
  char victim[512], canary[512];
  snprintf(victim, sizeof victim, "%s/victim", dir);
  snprintf(canary, sizeof canary, "%s/canary", dir);
  assert_int_equal(tu_write_file(victim, victim_text, strlen(victim_text)), 0);
  assert_int_equal(tu_write_file(canary, canary_text, strlen(canary_text)), 0);
  chmod(victim, 0666);
  chmod(canary, 0644);

  int port, uport;
  int tcp = listen_tcp(&port);
  int udp = bind_udp(&uport);
  int unix_fd = listen_abstract();
  struct sigaction sa = {.sa_handler = on_usr1};
  sigaction(SIGUSR1, &sa, NULL);
  got_usr1 = 0;
  int zpid = teex_executor_pid(ex);

  for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
    char input[2048];
    snprintf(input, sizeof input,
             "{\"attempt\": \"%s\", \"dir\": \"%s\", \"victim\": \"%s\", "
             "\"canary\": \"%s\", \"pid\": %d, \"zpid\": %d, \"port\": %d, "
             "\"uport\": %d, \"pgid\": %d}",
             attempts[i].name, dir, victim, canary, (int)getpid(), zpid, port,
             uport, (int)getpgrp());
    struct teex_task_result r;
    xt_run(ex, input, &r);
    XT_OK(r);
    const char *out = (const char *)r.output;
    print_message("%-18s %s\n", attempts[i].name, out);
    if (strncmp(out, "BLOCKED: ", 9) != 0 && !attempts[i].may_complete)
      fail_msg("%s was not stopped: %s", attempts[i].name, out);
    if (audit_on && strstr(out, "teex sandbox: ") == NULL)
      fail_msg("%s: no clear sandbox error: %s", attempts[i].name, out);
    if (tu_buf_contains_any_encoding(r.output, r.output_len, canary_text,
                                     strlen(canary_text)))
      fail_msg("%s leaked the canary", attempts[i].name);
    teex_task_result_free(&r);
    check_world(dir, attempts[i].name);
    /* No connection, datagram or signal arrived; the executor lives. */
    assert_int_equal(accept(tcp, NULL, NULL), -1);
    char b;
    assert_int_equal(recv(udp, &b, 1, 0), -1);
    if (unix_fd >= 0)
      assert_int_equal(accept(unix_fd, NULL, NULL), -1);
    assert_int_equal(got_usr1, 0);
    assert_int_equal(kill(zpid, 0), 0);
    assert_int_equal(teex_executor_pid(ex), zpid);
  }
  /* And it still computes. */
  struct teex_task_result r;
  xt_run(ex, "{\"attempt\": \"r_passwd\"}", &r);
  XT_OK(r);
  teex_task_result_free(&r);

  close(tcp);
  close(udp);
  if (unix_fd >= 0)
    close(unix_fd);
  signal(SIGUSR1, SIG_DFL);
  teex_executor_stop(ex);
  teex_image_free(img);
  tu_rmtree(dir);
  free(dir);
}

static void test_escapes_whole_sandbox(void **state) {
  (void)state;
  struct teex_executor_opts opts = {0};
  run_escapes(&opts, 1);
}

static void test_escapes_kernel_walls_only(void **state) {
  (void)state;
  struct teex_executor_opts opts = {.test_audit_hooks_off = 1};
  run_escapes(&opts, 0);
}

static void test_escapes_landlock_abi1(void **state) {
  (void)state;
  if (teex_executor_landlock_abi() < 1)
    skip();
  struct teex_executor_opts opts = {.landlock_abi_max = 1,
                                    .test_audit_hooks_off = 1};
  run_escapes(&opts, 0);
}

/* Without Landlock the executor refuses to start unless the weaker sandbox
 * is accepted; accepted, seccomp still stops every write and spawn, and the
 * audit hooks refuse reads (the one thing Landlock alone enforces). */
static void test_no_landlock(void **state) {
  (void)state;
  if (xt_skip_sanitized())
    skip();
  static const char *files[] = {"main.py", service, NULL};
  struct teex_image *img = xt_image("main.py", TEEX_STYLE_FUNCTION, files);
  struct teex_executor_opts opts = {.exe_path = tu_teex_bin(),
                                    .landlock_abi_max = -1};
  struct teex_executor *ex = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  assert_int_equal(teex_executor_start(img, &opts, &ex, &err),
                   TEEX_EUNSUPPORTED);
  assert_null(ex);
  assert_non_null(strstr(err.msg, "no Landlock"));
  assert_non_null(strstr(err.msg, "--accept-weaker-sandbox"));

  opts.accept_weaker_sandbox = 1;
  ex = xt_start(img, &opts);
  assert_int_equal(teex_executor_sandbox_abi(ex), 0);
  char *dir = tu_mkdtemp("weaker");
  chmod(dir, 0777);
  char input[1024];
  const char *tries[] = {"w_open", "s_fork", "n_tcp", "r_listdir"};
  for (int i = 0; i < 4; i++) {
    snprintf(input, sizeof input,
             "{\"attempt\": \"%s\", \"dir\": \"%s\", \"port\": 9}", tries[i],
             dir);
    struct teex_task_result r;
    xt_run(ex, input, &r);
    XT_OK(r);
    if (strncmp((char *)r.output, "BLOCKED: ", 9) != 0)
      fail_msg("%s not stopped without Landlock: %s", tries[i],
               (char *)r.output);
    teex_task_result_free(&r);
  }
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL)
    n++;
  closedir(d);
  assert_int_equal(n, 2); /* "." and ".." only */
  tu_rmtree(dir);
  free(dir);
  teex_executor_stop(ex);
  teex_image_free(img);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escapes_whole_sandbox),
      cmocka_unit_test(test_escapes_kernel_walls_only),
      cmocka_unit_test(test_escapes_landlock_abi1),
      cmocka_unit_test(test_no_landlock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
