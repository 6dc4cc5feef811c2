/* The executor process: `teex executor --fd N`. Starts CPython, walls
 * itself in, imports the service from the image it is sent, then forks one
 * sandboxed child per task (see docs/internals/executor.md). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "executor/msg.h"
#include "executor/pyrt.h"
#include "executor/sandbox.h"
#include "teex/config.h"
#include "teex/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Finished children whose exit (the teardown of a large address space
 * takes up to milliseconds) is reaped later, off the tasks' path. */
#define ZOMBIES_MAX 32

/* Slack for the field headers of a RESULT beside its payload. */
#define RESULT_OVERHEAD 256u

struct zygote {
  int fd; /* channel to the host */
  struct teex_sandbox sb;
  int prefork;
  int audit_off;
  int statm_fd;
  struct teex_limits lim; /* effective limits */
  uint64_t as_bytes;
  pid_t spare_pid; /* a sandboxed child waiting for a task; 0 if none */
  pid_t zombies[ZOMBIES_MAX]; /* finished children not yet reaped */
  int nzombies;
  int spare_fd;
  int stateless; /* the manifest's: teex.kv writes refused */
  struct teex_buf rx, tx, child_rx, kv_rx;
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void send_fail(int fd, const char *msg) {
  struct teex_buf b;
  teex_buf_init(&b, 8192, 0);
  if (teex_xmsg_begin(&b, TEEX_XMSG_FAIL) == 0 &&
      teex_xmsg_put(&b, TEEX_XT_TEXT, msg, strnlen(msg, 2000)) == 0 &&
      teex_xmsg_end(&b) == 0)
    (void)teex_xmsg_send(fd, b.data, b.len, 5000);
  teex_buf_free(&b);
}

/* ---- the task child ---- */

/* What a task may send out in all: the executor's bound, or the task's own
 * cap when lower (a dataset's --max-output); never raised. */
static uint32_t task_cap(const struct zygote *z, const struct teex_xtask *t) {
  return t->output_max > 0 && t->output_max < z->lim.output_bytes
             ? t->output_max
             : (uint32_t)z->lim.output_bytes;
}

static __attribute__((noreturn)) void child_main(struct zygote *z) {
  struct teex_buf rx, frame;
  struct teex_err err;
  unsigned type;
  teex_buf_init(&rx, 0, 0);
  teex_buf_init(&frame, TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_RESULT),
                0);
  if (z->prefork)
    teex_pyrt_prepare();
  if (teex_xmsg_recv(TEEX_SB_FD_CHANNEL, &type, &rx, -1, &err) != 0 ||
      type != TEEX_XMSG_TASK)
    _exit(2);
  struct teex_xtask t;
  if (teex_xmsg_decode_task(rx.data, rx.len, &t, &err) != 0)
    _exit(2);
  teex_pyrt_set_thread_cap(z->lim.threads);
  if (teex_pyrt_run(&t, task_cap(z, &t), &frame) == 0)
    (void)teex_xmsg_send(TEEX_SB_FD_CHANNEL, frame.data, frame.len, -1);
  /* No interpreter teardown: the process is thrown away. */
  _exit(0);
}

/* Forks a child that walls itself in and then waits for its task. */
static int spawn_child(struct zygote *z, pid_t *pid_out, int *fd_out) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return TEEX_EIO;
  PyOS_BeforeFork();
  pid_t pid = fork();
  if (pid == 0) {
    PyOS_AfterFork_Child();
    struct teex_sb_limits lim = {.cpu_ms = z->lim.cpu_ms,
                                 .as_bytes = z->as_bytes,
                                 .threads = z->lim.threads};
    const char *why = teex_sb_enter_child(&z->sb, sv[1], &lim);
    if (why != NULL) {
      /* Say why on the channel, if it is still there. */
      struct teex_buf b;
      teex_buf_init(&b, 1024, 0);
      struct teex_xresult r = {.status = TEEX_TASK_CRASHED,
                               .error = (const uint8_t *)why,
                               .error_len = strlen(why)};
      if (teex_xmsg_encode_result(&b, &r) == 0)
        (void)teex_xmsg_send(TEEX_SB_FD_CHANNEL, b.data, b.len, 1000);
      _exit(3);
    }
    child_main(z);
  }
  PyOS_AfterFork_Parent();
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return TEEX_EIO;
  }
  *pid_out = pid;
  *fd_out = sv[0];
  return 0;
}

static const char *signal_name(int sig) {
  switch (sig) {
  case SIGSEGV:
    return "SIGSEGV (segmentation fault)";
  case SIGBUS:
    return "SIGBUS";
  case SIGABRT:
    return "SIGABRT (abort)";
  case SIGILL:
    return "SIGILL";
  case SIGFPE:
    return "SIGFPE";
  case SIGKILL:
    return "SIGKILL";
  case SIGSYS:
    return "SIGSYS (forbidden system call)";
  default:
    return "a signal";
  }
}

/* Reaps the finished children that have exited; blocks only when the
 * table is full. */
static void reap_zombies(struct zygote *z) {
  for (int i = 0; i < z->nzombies;) {
    int full = z->nzombies == ZOMBIES_MAX && i == 0;
    pid_t r = waitpid(z->zombies[i], NULL, full ? 0 : WNOHANG);
    if (r == z->zombies[i] || (r < 0 && errno == ECHILD)) {
      z->zombies[i] = z->zombies[--z->nzombies];
      continue;
    }
    i++;
  }
}

/* True when b holds exactly one whole frame. */
static int frame_complete(const struct teex_buf *b) {
  unsigned type;
  uint32_t len;
  return b->len >= TEEX_XMSG_HDR &&
         teex_xmsg_header_parse(b->data, &type, &len) == 0 &&
         b->len == TEEX_XMSG_HDR + (size_t)len;
}

/* Sends the child a KV_REPLY that refuses its call with rc and text. */
static void kv_refuse(struct zygote *z, int cfd, int rc, const char *text,
                      int wall) {
  if (teex_xmsg_encode_kv_reply(&z->tx, rc, NULL, text) == 0)
    (void)teex_xmsg_send(cfd, z->tx.data, z->tx.len, wall);
}

/* One teex.kv call of the child (a whole KV frame in child_rx): checked
 * here, outside the child's walls, then forwarded to the host and its
 * answer back to the child. Writes of a stateless service or of a task with
 * datasets never leave. Returns 0, 1 when the deadline passed, or an error
 * that ends the executor. */
static int kv_call(struct zygote *z, const struct teex_xtask *t, int cfd,
                   int64_t deadline) {
  struct teex_err err;
  struct teex_ds_cmd cmd;
  const uint8_t *body = z->child_rx.data + TEEX_XMSG_HDR;
  size_t len = z->child_rx.len - TEEX_XMSG_HDR;
  int left = (int)((deadline - now_us()) / 1000);
  if (left <= 0)
    return 1;
  if (teex_xmsg_decode_kv(body, len, &cmd, &err) != 0) {
    kv_refuse(z, cfd, TEEX_EINVAL, teex_err_msg(&err), left);
    return 0;
  }
  if (teex_xmsg_kv_writes(cmd.op) && (z->stateless || t->n_data > 0)) {
    kv_refuse(z, cfd, TEEX_EPERM,
              z->stateless ? "a stateless service cannot write to teex.kv"
                           : "a task that reads datasets cannot write to "
                             "teex.kv",
              left);
    return 0;
  }
  int rc = teex_xmsg_send(z->fd, z->child_rx.data, z->child_rx.len, left);
  if (rc != 0)
    return rc;
  unsigned type = 0;
  left = (int)((deadline - now_us()) / 1000);
  rc = teex_xmsg_recv(z->fd, &type, &z->kv_rx, left > 0 ? left : 1, &err);
  if (rc == TEEX_ETIMEDOUT)
    return 1; /* the host answers late; the main loop drops that reply */
  if (rc != 0)
    return rc;
  if (type != TEEX_XMSG_KV_REPLY)
    return TEEX_EPROTO;
  rc = teex_xmsg_begin(&z->tx, TEEX_XMSG_KV_REPLY);
  if (rc == 0)
    rc = teex_buf_append(&z->tx, z->kv_rx.data, z->kv_rx.len);
  if (rc == 0)
    rc = teex_xmsg_end(&z->tx);
  left = (int)((deadline - now_us()) / 1000);
  if (rc == 0)
    (void)teex_xmsg_send(cfd, z->tx.data, z->tx.len, left > 0 ? left : 1);
  return rc;
}

/* Runs the task in body on the spare child and sends the RESULT to the
 * host. Returns 0, or an error that ends the executor. */
static int run_task(struct zygote *z, const uint8_t *body, size_t len) {
  struct teex_err err;
  struct teex_xtask t;
  int64_t start = now_us();
  int rc = teex_xmsg_decode_task(body, len, &t, &err);
  if (rc != 0)
    return rc;
  if (z->nzombies == ZOMBIES_MAX)
    reap_zombies(z);
  pid_t pid = z->spare_pid;
  int cfd = z->spare_fd;
  z->spare_pid = 0;
  z->spare_fd = -1;
  if (pid == 0 && (rc = spawn_child(z, &pid, &cfd)) != 0)
    return rc;

  uint32_t wall = z->lim.wall_ms;
  if (t.wall_ms > 0 && t.wall_ms < wall)
    wall = t.wall_ms;
  int64_t deadline = start + (int64_t)wall * 1000;

  /* Hand the task over: the same frame the host sent. */
  rc = teex_xmsg_begin(&z->tx, TEEX_XMSG_TASK);
  if (rc == 0)
    rc = teex_buf_append(&z->tx, body, len);
  if (rc == 0)
    rc = teex_xmsg_end(&z->tx);
  if (rc == 0)
    (void)teex_xmsg_send(cfd, z->tx.data, z->tx.len, (int)wall);

  /* Collect what the child says until it closes its end (it exits). */
  int timed_out = 0, too_big = 0;
  uint32_t out_cap = task_cap(z, &t);
  size_t cap = TEEX_XMSG_HDR + out_cap + RESULT_OVERHEAD;
  size_t kv_max = TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_KV);
  teex_buf_reset(&z->child_rx);
  z->child_rx.max = cap > kv_max ? cap : kv_max;
  for (;;) {
    int64_t left = (deadline - now_us()) / 1000;
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd p = {.fd = cfd, .events = POLLIN};
    int r = poll(&p, 1, left > 60000 ? 60000 : (int)left + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    uint8_t chunk[65536];
    ssize_t n = read(cfd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break;
    if (teex_buf_append(&z->child_rx, chunk, (size_t)n) != 0) {
      too_big = 1;
      break;
    }
    if (!frame_complete(&z->child_rx))
      continue;
    /* A teex.kv call: answer it and keep collecting. */
    if (z->child_rx.data[2] == TEEX_XMSG_KV) {
      int k = kv_call(z, &t, cfd, deadline);
      if (k < 0) {
        close(cfd);
        kill(pid, SIGKILL);
        z->zombies[z->nzombies++] = pid;
        return k;
      }
      teex_buf_reset(&z->child_rx);
      if (k == 1) {
        timed_out = 1;
        break;
      }
      continue;
    }
    /* A whole frame: answer now, without waiting for the child to exit. */
    break;
  }
  close(cfd);
  kill(pid, SIGKILL);
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  int complete = !timed_out && !too_big && frame_complete(&z->child_rx);
  /* The exit status only matters when the child gave no result; then reap
   * now. Otherwise the (already dying) child is reaped after the answer. */
  if (!complete)
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
      ;
  else
    z->zombies[z->nzombies++] = pid;

  struct teex_xresult res = {0};
  char msg[256];
  uint32_t got = 0, body_len = 0;
  unsigned type = 0;
  if (!timed_out && !too_big && z->child_rx.len >= TEEX_XMSG_HDR &&
      teex_xmsg_header_parse(z->child_rx.data, &type, &body_len) == 0 &&
      type == TEEX_XMSG_RESULT && body_len == z->child_rx.len - TEEX_XMSG_HDR &&
      teex_xmsg_decode_result(z->child_rx.data + TEEX_XMSG_HDR, body_len, &res,
                              &err) == 0) {
    got = 1;
    if (res.output_len + res.logs_len + res.error_len > out_cap) {
      memset(&res, 0, sizeof res);
      too_big = 1;
      got = 0;
    }
  }
  if (!got) {
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    memset(&res, 0, sizeof res);
    if (too_big) {
      res.status = TEEX_TASK_OUTPUT_LIMIT;
      snprintf(msg, sizeof msg,
               "OutputLimit: the task wrote more than %u bytes of output",
               (unsigned)out_cap);
    } else if (timed_out) {
      res.status = TEEX_TASK_TIMEOUT;
      snprintf(msg, sizeof msg,
               "Timeout: the task ran longer than its deadline of %u ms",
               (unsigned)wall);
    } else if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU ||
                                       cpu * 1000.0 >= (double)z->lim.cpu_ms)) {
      res.status = TEEX_TASK_CPU_LIMIT;
      snprintf(msg, sizeof msg,
               "CpuLimit: the task used more than its %u ms of CPU time",
               (unsigned)z->lim.cpu_ms);
    } else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
      res.status = TEEX_TASK_CRASHED;
      snprintf(msg, sizeof msg, "Crashed: the task was killed by %s",
               signal_name(WTERMSIG(status)));
    } else if (WIFEXITED(status)) {
      res.status = TEEX_TASK_CRASHED;
      snprintf(msg, sizeof msg,
               "Crashed: the task ended without a result (exit status %d)",
               WEXITSTATUS(status));
    } else {
      res.status = TEEX_TASK_CRASHED;
      snprintf(msg, sizeof msg,
               "Crashed: the task closed its channel without a result");
    }
    res.error = (const uint8_t *)msg;
    res.error_len = strlen(msg);
  }
  res.duration_us = (uint64_t)(now_us() - start);
  rc = teex_xmsg_encode_result(&z->tx, &res);
  if (rc == 0)
    rc = teex_xmsg_send(z->fd, z->tx.data, z->tx.len, 30000);
  return rc;
}

/* Address space of the executor now (the child starts from it). */
static uint64_t current_vsz(int statm_fd) {
  char buf[128];
  ssize_t n = statm_fd >= 0 ? pread(statm_fd, buf, sizeof buf - 1, 0) : -1;
  if (n <= 0)
    return 256ull << 20;
  buf[n] = 0;
  uint64_t pages = 0;
  for (char *p = buf; *p >= '0' && *p <= '9'; p++)
    pages = pages * 10 + (uint64_t)(*p - '0');
  return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint32_t pick(uint32_t v, uint32_t def) {
  return v ? v : def;
}

int teex_executor_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"fd", required_argument, NULL, 'f'},
      {"landlock-abi-max", required_argument, NULL, 'l'},
      {"accept-weaker-sandbox", no_argument, NULL, 'w'},
      {"test-audit-off", no_argument, NULL, 'A'},
      {"no-prefork", no_argument, NULL, 'P'},
      {NULL, 0, NULL, 0}};
  struct zygote z;
  memset(&z, 0, sizeof z);
  z.fd = -1;
  z.prefork = 1;
  z.spare_fd = -1;
  uint64_t v;
  int abi_max = 0, weaker = 0, c;
  optind = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (teex_parse_u64(optarg, &v) != 0 || v < 3 || v > 1024)
        return 2;
      z.fd = (int)v;
      break;
    case 'l':
      if (strcmp(optarg, "off") == 0) {
        abi_max = -1; /* behave as on a kernel without Landlock */
        break;
      }
      if (teex_parse_u64(optarg, &v) != 0 || v > 1000)
        return 2;
      abi_max = (int)v;
      break;
    case 'w':
      weaker = 1;
      break;
    case 'A':
      z.audit_off = 1;
      break;
    case 'P':
      z.prefork = 0;
      break;
    default:
      return 2;
    }
  }
  if (z.fd < 0)
    return 2;

  /* One malloc arena: threads then cost stack, not 64 MiB of address
   * space each, under the task's RLIMIT_AS. */
  mallopt(M_ARENA_MAX, 1);
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_pyrt_init(&err) != 0) {
    send_fail(z.fd, teex_err_msg(&err));
    return 1;
  }
  if (teex_sb_prepare(&z.sb, teex_pyrt_stdlib_dir(), abi_max, weaker, &err) !=
      0) {
    send_fail(z.fd, teex_err_msg(&err));
    return 1;
  }
  z.statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  /* Nothing the service does may reach the host's stdio or logs. */
  for (int fd = 0; fd < 3; fd++)
    (void)dup2(z.sb.devnull_fd, fd);
  if (teex_sb_enter_zygote(&z.sb, &err) != 0) {
    send_fail(z.fd, teex_err_msg(&err));
    return 1;
  }
  teex_pyrt_set_thread_cap(0);
  if (!z.audit_off)
    teex_pyrt_enforce();

  /* From here on, everything runs inside the walls. */
  teex_buf_init(&z.rx, 0, 0);
  teex_buf_init(&z.tx, TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_LOAD), 0);
  teex_buf_init(&z.child_rx, 0, 0);
  teex_buf_init(&z.kv_rx, 0, TEEX_BUF_SECRET);
  unsigned type;
  struct teex_image *img = NULL;
  int rc = teex_xmsg_recv(z.fd, &type, &z.rx, 120000, &err);
  if (rc == 0 && type != TEEX_XMSG_LOAD)
    rc = teex_err_set(&err, TEEX_EPROTO, "expected the image first");
  if (rc == 0)
    rc = teex_xmsg_decode_image(z.rx.data, z.rx.len, &img, &err);
  if (rc == 0)
    rc = teex_pyrt_setup(img, &err);
  if (rc != 0) {
    send_fail(z.fd, teex_err_msg(&err));
    teex_image_free(img);
    return 1;
  }
  const struct teex_limits *ml = &img->manifest.limits;
  z.lim.cpu_ms = pick(ml->cpu_ms, TEEX_EXEC_DEFAULT_CPU_MS);
  z.lim.wall_ms = pick(ml->wall_ms, TEEX_EXEC_DEFAULT_WALL_MS);
  z.lim.memory_mb = pick(ml->memory_mb, TEEX_EXEC_DEFAULT_MEMORY_MB);
  z.lim.output_bytes = pick(ml->output_bytes, TEEX_EXEC_DEFAULT_OUTPUT_BYTES);
  if (z.lim.output_bytes > TEEX_EXEC_OUTPUT_MAX)
    z.lim.output_bytes = TEEX_EXEC_OUTPUT_MAX;
  z.lim.threads = pick(ml->threads, TEEX_EXEC_DEFAULT_THREADS);
  z.stateless = img->manifest.stateless;
  teex_image_free(img);
  z.as_bytes = current_vsz(z.statm_fd) + (uint64_t)z.lim.memory_mb * (1u << 20);

  rc = teex_xmsg_begin(&z.tx, TEEX_XMSG_READY);
  if (rc == 0)
    rc = teex_xmsg_put_u32(&z.tx, TEEX_XT_ABI, (uint32_t)z.sb.abi);
  if (rc == 0)
    rc = teex_xmsg_end(&z.tx);
  if (rc == 0)
    rc = teex_xmsg_send(z.fd, z.tx.data, z.tx.len, 30000);
  while (rc == 0) {
    /* The next task's child is forked after the last answer went out, while
     * the host is busy with it: the fork is off the task's path. */
    reap_zombies(&z);
    if (z.prefork && z.spare_pid == 0 &&
        spawn_child(&z, &z.spare_pid, &z.spare_fd) != 0)
      z.spare_pid = 0;
    rc = teex_xmsg_recv(z.fd, &type, &z.rx, -1, &err);
    if (rc != 0 || type == TEEX_XMSG_STOP)
      break;
    if (type == TEEX_XMSG_KV_REPLY)
      continue; /* a host's late answer to a task already timed out */
    if (type != TEEX_XMSG_TASK) {
      rc = TEEX_EPROTO;
      break;
    }
    rc = run_task(&z, z.rx.data, z.rx.len);
  }
  if (z.spare_pid > 0) {
    kill(z.spare_pid, SIGKILL);
    waitpid(z.spare_pid, NULL, 0);
  }
  while (z.nzombies > 0)
    waitpid(z.zombies[--z.nzombies], NULL, 0);
  return rc == 0 || rc == TEEX_ECLOSED ? 0 : 1;
}
