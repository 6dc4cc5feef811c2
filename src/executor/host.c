/* The host side of the executor (see include/teex/executor.h): starts the
 * executor process, sends it the image and tasks, reads bounded results.
 * Everything the executor sends is treated as untrusted input: it runs the
 * service's code. */
#include "teex/executor.h"

#include "executor/msg.h"
#include "executor/sandbox.h"
#include "teex/config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long the executor may take to start and import the service. */
#define START_TIMEOUT_MS 60000
/* Beyond a task's deadline, before the executor itself is deemed stuck. */
#define RESULT_SLACK_MS 5000

struct teex_executor {
  pid_t pid;
  int fd;
  int abi;
  uint32_t wall_ms;
  int stateless; /* the manifest's: teex.kv writes refused */
  struct teex_buf tx, rx, kv_tx;
};

const char *teex_task_status_name(int status) {
  switch (status) {
  case TEEX_TASK_OK:
    return "ok";
  case TEEX_TASK_ERROR:
    return "error";
  case TEEX_TASK_TIMEOUT:
    return "timeout";
  case TEEX_TASK_CPU_LIMIT:
    return "cpu-limit";
  case TEEX_TASK_MEMORY_LIMIT:
    return "memory-limit";
  case TEEX_TASK_OUTPUT_LIMIT:
    return "output-limit";
  case TEEX_TASK_CRASHED:
    return "crashed";
  default:
    return "unknown";
  }
}

int teex_executor_landlock_abi(void) {
  return teex_sb_landlock_abi();
}

int teex_executor_sandbox_abi(const struct teex_executor *ex) {
  return ex ? ex->abi : 0;
}

int teex_executor_pid(const struct teex_executor *ex) {
  return ex ? (int)ex->pid : 0;
}

static void reap(struct teex_executor *ex, int graceful_ms) {
  if (ex->pid <= 0)
    return;
  for (int waited = 0; waited < graceful_ms; waited += 5) {
    if (waitpid(ex->pid, NULL, WNOHANG) == ex->pid) {
      ex->pid = 0;
      return;
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  kill(ex->pid, SIGKILL);
  while (waitpid(ex->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  ex->pid = 0;
}

void teex_executor_stop(struct teex_executor *ex) {
  if (ex == NULL)
    return;
  if (ex->fd >= 0) {
    uint8_t stop[TEEX_XMSG_HDR] = {
        TEEX_XMSG_MAGIC, TEEX_XMSG_VERSION, TEEX_XMSG_STOP, 0, 0, 0, 0, 0};
    (void)teex_xmsg_send(ex->fd, stop, sizeof stop, 1000);
    close(ex->fd);
    ex->fd = -1;
  }
  reap(ex, 1000);
  teex_buf_free(&ex->tx);
  teex_buf_free(&ex->rx);
  teex_buf_free(&ex->kv_tx);
  free(ex);
}

void teex_task_result_free(struct teex_task_result *res) {
  if (res == NULL)
    return;
  free(res->output);
  free(res->logs);
  free(res->error);
  memset(res, 0, sizeof *res);
}

static uint32_t over(uint32_t opt, uint32_t manifest) {
  return opt ? opt : manifest;
}

static int env_abi_max(void) {
  const char *s = getenv("TEEX_LANDLOCK_ABI_MAX");
  uint64_t v;
  if (s != NULL && strcmp(s, "off") == 0)
    return -1;
  if (s == NULL || teex_parse_u64(s, &v) != 0 || v > 1000)
    return 0;
  return (int)v;
}

int teex_executor_start(const struct teex_image *img,
                        const struct teex_executor_opts *opts,
                        struct teex_executor **out, struct teex_err *err) {
  static const struct teex_executor_opts none = {0};
  if (opts == NULL)
    opts = &none;
  *out = NULL;
  if (img == NULL)
    return teex_err_set(err, TEEX_EINVAL, "executor: no image");

  struct teex_executor *ex = calloc(1, sizeof *ex);
  if (ex == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "executor: out of memory");
  ex->fd = -1;
  teex_buf_init(&ex->tx, TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_LOAD), 0);
  teex_buf_init(&ex->rx, 0, 0);
  teex_buf_init(&ex->kv_tx,
                TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_KV_REPLY),
                TEEX_BUF_SECRET);

  /* The limits in force: the caller's where given, else the manifest's. */
  struct teex_image eff = *img;
  struct teex_limits *l = &eff.manifest.limits;
  l->cpu_ms = over(opts->limits.cpu_ms, l->cpu_ms);
  l->wall_ms = over(opts->limits.wall_ms, l->wall_ms);
  l->memory_mb = over(opts->limits.memory_mb, l->memory_mb);
  l->output_bytes = over(opts->limits.output_bytes, l->output_bytes);
  l->threads = over(opts->limits.threads, l->threads);
  ex->wall_ms = l->wall_ms ? l->wall_ms : TEEX_EXEC_DEFAULT_WALL_MS;
  ex->stateless = img->manifest.stateless;
  int rc = teex_xmsg_encode_image(&ex->tx, &eff);
  if (rc != 0) {
    teex_executor_stop(ex);
    return teex_err_set(err, rc, "executor: image too large to send");
  }

  /* argv, built before fork: only async-signal-safe calls after it. */
  const char *exe = opts->exe_path ? opts->exe_path : "/proc/self/exe";
  char abi_arg[32];
  int abi_max = opts->landlock_abi_max ? opts->landlock_abi_max : env_abi_max();
  if (abi_max < 0)
    snprintf(abi_arg, sizeof abi_arg, "off");
  else
    snprintf(abi_arg, sizeof abi_arg, "%d", abi_max);
  char *argv[12];
  int a = 0;
  argv[a++] = (char *)"teex";
  argv[a++] = (char *)"executor";
  argv[a++] = (char *)"--fd=3";
  argv[a++] = (char *)"--landlock-abi-max";
  argv[a++] = abi_arg;
  if (opts->accept_weaker_sandbox)
    argv[a++] = (char *)"--accept-weaker-sandbox";
  if (opts->test_audit_hooks_off)
    argv[a++] = (char *)"--test-audit-off";
  if (opts->prefork < 0)
    argv[a++] = (char *)"--no-prefork";
  argv[a] = NULL;
  char *envp[] = {NULL}; /* nothing of the host's environment */

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    teex_executor_stop(ex);
    return teex_err_set(err, TEEX_EIO, "executor: socketpair: %s",
                        strerror(errno));
  }
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    /* The executor dies with us; its stdio never reaches ours. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    if (dup2(sv[1], 3) != 3)
      _exit(127);
    close_range(4, ~0u, 0);
    execve(exe, argv, envp);
    _exit(127);
  }
  close(sv[1]);
  if (devnull >= 0)
    close(devnull);
  if (pid < 0) {
    close(sv[0]);
    teex_executor_stop(ex);
    return teex_err_set(err, TEEX_EIO, "executor: fork: %s", strerror(errno));
  }
  ex->pid = pid;
  ex->fd = sv[0];

  rc = teex_xmsg_send(ex->fd, ex->tx.data, ex->tx.len, START_TIMEOUT_MS);
  teex_buf_reset(&ex->tx);
  unsigned type = 0;
  if (rc == 0)
    rc = teex_xmsg_recv(ex->fd, &type, &ex->rx, START_TIMEOUT_MS, err);
  else
    rc = teex_xmsg_recv(ex->fd, &type, &ex->rx, 2000, err);
  if (rc != 0) {
    teex_executor_stop(ex);
    return teex_err_wrap(err, TEEX_EIO, "executor %s did not start", exe);
  }
  if (type == TEEX_XMSG_FAIL) {
    char text[TEEX_ERRMSG_SIZE - 32];
    if (teex_xmsg_decode_text(ex->rx.data, ex->rx.len, TEEX_XT_TEXT, text,
                              sizeof text) != 0)
      snprintf(text, sizeof text, "no reason given");
    rc = strstr(text, "Landlock") != NULL         ? TEEX_EUNSUPPORTED
         : strstr(text, "service import") != NULL ? TEEX_EFORMAT
                                                  : TEEX_EIO;
    teex_executor_stop(ex);
    return teex_err_set(err, rc, "executor: %s", text);
  }
  uint32_t abi = 0;
  if (type != TEEX_XMSG_READY ||
      teex_xmsg_decode_u32(ex->rx.data, ex->rx.len, TEEX_XT_ABI, &abi) != 0) {
    teex_executor_stop(ex);
    return teex_err_set(err, TEEX_EPROTO, "executor: unexpected first reply");
  }
  ex->abi = (int)abi;
  *out = ex;
  return 0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Answers one teex.kv call of the task (a KV body in ex->rx). The executor
 * process has run the service's import code, so nothing it sends is
 * trusted: the call is decoded and checked again here, and writes of a
 * stateless service or a task with datasets are refused here too. */
static int answer_kv(struct teex_executor *ex, const struct teex_task_ctx *ctx,
                     int timeout_ms) {
  struct teex_err kerr;
  struct teex_ds_cmd cmd;
  struct teex_ds_result res;
  memset(&res, 0, sizeof res);
  teex_err_clear(&kerr);
  int rc = teex_xmsg_decode_kv(ex->rx.data, ex->rx.len, &cmd, &kerr);
  int have_res = 0;
  if (rc != 0) {
    /* kerr says what was wrong */
  } else if (teex_xmsg_kv_writes(cmd.op) &&
             (ex->stateless || (ctx != NULL && ctx->n_datasets > 0))) {
    rc = teex_err_set(&kerr, TEEX_EPERM, "%s cannot write to teex.kv",
                      ex->stateless ? "a stateless service"
                                    : "a task that reads datasets");
  } else if (ctx == NULL || ctx->kv == NULL) {
    rc = teex_err_set(&kerr, TEEX_EUNSUPPORTED,
                      "TEE-DS storage is not configured on this worker");
  } else {
    rc = ctx->kv(ctx->kv_arg, &cmd, &res, &kerr);
    have_res = rc == 0;
  }
  int enc = teex_xmsg_encode_kv_reply(&ex->kv_tx, rc, have_res ? &res : NULL,
                                      teex_err_msg(&kerr));
  if (enc != 0 && have_res) /* a result the frame cannot carry */
    enc = teex_xmsg_encode_kv_reply(&ex->kv_tx, TEEX_ETOOBIG, NULL,
                                    "the answer is too large");
  if (have_res)
    teex_ds_result_free(&res);
  rc = enc;
  if (rc != 0)
    return rc;
  return teex_xmsg_send(ex->fd, ex->kv_tx.data, ex->kv_tx.len,
                        timeout_ms > 0 ? timeout_ms : 1);
}

static char *dup_text(const uint8_t *p, size_t n, size_t *len_out) {
  char *s = malloc(n + 1);
  if (s == NULL)
    return NULL;
  if (n > 0)
    memcpy(s, p, n);
  s[n] = 0;
  if (len_out != NULL)
    *len_out = n;
  return s;
}

int teex_executor_run(struct teex_executor *ex, const struct teex_task_ctx *ctx,
                      const uint8_t *input, size_t input_len,
                      struct teex_task_result *res, struct teex_err *err) {
  memset(res, 0, sizeof *res);
  if (ex == NULL || ex->fd < 0)
    return teex_err_set(err, TEEX_ESTATE, "executor: not running");
  if (input_len > TEEX_EXEC_INPUT_MAX)
    return teex_err_set(err, TEEX_ETOOBIG,
                        "executor: input of %zu bytes exceeds %u", input_len,
                        TEEX_EXEC_INPUT_MAX);
  int rc = teex_xmsg_check_datasets(ctx);
  if (rc != 0)
    return teex_err_set(err, rc,
                        "executor: datasets: at most %u, named with 1 to %u "
                        "bytes, unique, %u bytes in all",
                        TEEX_EXEC_DATASETS_MAX, TEEX_EXEC_DATA_NAME_MAX,
                        TEEX_EXEC_DATA_MAX);
  ex->tx.max = TEEX_XMSG_HDR + teex_xmsg_body_max(TEEX_XMSG_TASK);
  rc = teex_xmsg_encode_task(&ex->tx, ctx, input, input_len);
  if (rc != 0)
    return teex_err_set(err, rc, "executor: task: %s", teex_strerror(rc));
  uint32_t wall = ex->wall_ms;
  if (ctx != NULL && ctx->wall_ms > 0 && ctx->wall_ms < wall)
    wall = ctx->wall_ms;
  int timeout = (int)(wall + RESULT_SLACK_MS);
  rc = teex_xmsg_send(ex->fd, ex->tx.data, ex->tx.len, timeout);
  if (rc != 0)
    return teex_err_set(err, rc, "executor: send task: %s", teex_strerror(rc));
  unsigned type;
  int64_t deadline = mono_ms() + timeout;
  for (;;) {
    int left = (int)(deadline - mono_ms());
    rc = teex_xmsg_recv(ex->fd, &type, &ex->rx, left > 0 ? left : 1, err);
    if (rc != 0)
      return teex_err_wrap(err, rc, "executor: no result");
    if (type != TEEX_XMSG_KV)
      break;
    rc = answer_kv(ex, ctx, (int)(deadline - mono_ms()));
    if (rc != 0)
      return teex_err_set(err, rc, "executor: answer teex.kv: %s",
                          teex_strerror(rc));
  }
  struct teex_xresult r;
  if (type != TEEX_XMSG_RESULT)
    return teex_err_set(err, TEEX_EPROTO, "executor: unexpected message %u",
                        type);
  rc = teex_xmsg_decode_result(ex->rx.data, ex->rx.len, &r, err);
  if (rc != 0)
    return teex_err_wrap(err, rc, "executor");
  res->status = (int)r.status;
  res->duration_us = r.duration_us;
  if (r.output_len > 0 &&
      (res->output = (uint8_t *)dup_text(r.output, r.output_len, NULL)) == NULL)
    goto oom;
  res->output_len = r.output_len;
  if (r.logs_len > 0 &&
      (res->logs = dup_text(r.logs, r.logs_len, &res->logs_len)) == NULL)
    goto oom;
  if (r.error_len > 0 &&
      (res->error = dup_text(r.error, r.error_len, NULL)) == NULL)
    goto oom;
  if (res->status != TEEX_TASK_OK && res->error == NULL &&
      (res->error = dup_text((const uint8_t *)"unknown error", 13, NULL)) ==
          NULL)
    goto oom;
  return 0;
oom:
  teex_task_result_free(res);
  return teex_err_set(err, TEEX_ENOMEM, "executor: out of memory");
}
