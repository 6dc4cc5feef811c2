/* The sandboxed Python executor: runs a service image's tasks in CPython.
 *
 * One executor process per service image (the teex binary itself, run as the
 * hidden subcommand `teex executor --fd N`). It embeds CPython 3.11, loads
 * the image from memory, walls itself in (Landlock, seccomp, no privileges)
 * before any service code runs, pre-imports the service, and then forks one
 * fresh, further restricted child per task (a zygote). This header is the
 * host side: what a worker or `teex service run` calls. The design is in
 * docs/internals/executor.md; the service API in docs/writing-a-service.md. */
#ifndef TEEX_EXECUTOR_H
#define TEEX_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "teex/ds.h"
#include "teex/error.h"
#include "teex/image.h"

/* Bounds of the task channel (see docs/internals/executor.md). */
#define TEEX_EXEC_INPUT_MAX (16u * 1024 * 1024)  /* task input bytes */
#define TEEX_EXEC_OUTPUT_MAX (16u * 1024 * 1024) /* output+logs+error cap */
#define TEEX_EXEC_ID_MAX 128                     /* task/service id, caller */
#define TEEX_EXEC_DATASETS_MAX 16                /* datasets of one task */
#define TEEX_EXEC_DATA_NAME_MAX 64               /* bytes of a dataset name */
#define TEEX_EXEC_DATA_MAX (32u * 1024 * 1024)   /* dataset bytes of a task */

/* Bounds of one teex.kv call: the key leaves room for the namespace the
 * host puts in front ("ns/"), values are TEE-DS's, and a scan page holds at
 * most TEEX_EXEC_KV_SCAN_MAX items. */
#define TEEX_EXEC_KV_KEY_MAX (TEEX_DS_KEY_MAX - TEEX_DS_NS_MAX - 1)
#define TEEX_EXEC_KV_VALUE_MAX TEEX_DS_VALUE_MAX
#define TEEX_EXEC_KV_SCAN_MAX 16u

/* Defaults applied where the manifest and options say 0. */
#define TEEX_EXEC_DEFAULT_CPU_MS 10000u
#define TEEX_EXEC_DEFAULT_WALL_MS 30000u
#define TEEX_EXEC_DEFAULT_MEMORY_MB 512u
#define TEEX_EXEC_DEFAULT_OUTPUT_BYTES (1024u * 1024)
#define TEEX_EXEC_DEFAULT_THREADS 16u

struct teex_executor; /* opaque */

struct teex_executor_opts {
  /* The teex binary to run as the executor; NULL = /proc/self/exe (right
   * for the teex binary itself; tests and tools pass $TEEX_BIN). */
  const char *exe_path;
  /* Use at most this Landlock ABI (0 = what the kernel offers; -1 = act
   * as on a kernel without Landlock, for tests). Also read from env
   * TEEX_LANDLOCK_ABI_MAX (a number or "off") when 0. */
  int landlock_abi_max;
  /* Run even when the kernel has no Landlock (the operator's explicit
   * choice; the executor refuses otherwise). */
  int accept_weaker_sandbox;
  /* TEST ONLY: never enforce the audit hooks, so tests can show that the
   * kernel's walls alone stop every escape. */
  int test_audit_hooks_off;
  /* Fork a sandboxed spare child ahead of demand (default on: 0 = on,
   * -1 = off). */
  int prefork;
  /* Limits that override the manifest's when nonzero (never raised above
   * TEEX_EXEC_OUTPUT_MAX for output). */
  struct teex_limits limits;
};

/* One dataset a task may read (teex.data(i) / teex.data(name) /
 * TEEX_getdata(i)): plaintext the caller decrypted in its own memory; it
 * reaches the task child over the executor's channel, never a file. */
struct teex_task_data {
  const char *name; /* 1..TEEX_EXEC_DATA_NAME_MAX bytes */
  const uint8_t *data;
  size_t len;
};

/* Answers one teex.kv call of a task, synchronously, on the thread that
 * called teex_executor_run. cmd is one of GET SET DEL CAS INCR SCAN with the
 * task's own key (the handler puts its namespace in front); its pointers
 * live for the call. Returns 0 with *res filled (the executor frees it with
 * teex_ds_result_free; res->status is the command's outcome) or a TEEX_E*
 * code with a message in err (the service sees an exception). Writes of a
 * task with datasets or of a stateless service never reach it. */
typedef int (*teex_task_kv_fn)(void *arg, const struct teex_ds_cmd *cmd,
                               struct teex_ds_result *res,
                               struct teex_err *err);

/* Task context handed to the service (teex.task_id, ...). Strings are
 * NUL-terminated, at most TEEX_EXEC_ID_MAX bytes; NULL = "". */
struct teex_task_ctx {
  const char *task_id;
  const char *service_id;
  const char *caller; /* the caller's Ethereum address, "0x..." */
  uint32_t wall_ms;   /* 0 = the executor's deadline; never raises it */
  /* The task's datasets in order (service data first, then task data); at
   * most TEEX_EXEC_DATASETS_MAX and TEEX_EXEC_DATA_MAX bytes in all. A
   * task with datasets cannot write to teex.kv. */
  const struct teex_task_data *datasets;
  size_t n_datasets;
  /* Cap on everything the task sends out — output, logs and error text
   * together (a dataset's --max-output); 0 = the executor's output bound;
   * never raises it. */
  uint32_t output_max;
  /* teex.kv for this task; NULL: the service's teex.kv calls raise
   * teex.NotAvailable. */
  teex_task_kv_fn kv;
  void *kv_arg;
};

enum teex_task_status {
  TEEX_TASK_OK = 0,           /* output holds the result */
  TEEX_TASK_ERROR = 1,        /* the service raised: error holds it */
  TEEX_TASK_TIMEOUT = 2,      /* wall-clock deadline: child killed */
  TEEX_TASK_CPU_LIMIT = 3,    /* CPU time limit reached */
  TEEX_TASK_MEMORY_LIMIT = 4, /* out of memory in the service */
  TEEX_TASK_OUTPUT_LIMIT = 5, /* result + logs + error above the bound */
  TEEX_TASK_CRASHED = 6,      /* the child died (signal, C crash, exit) */
};

/* What one task returns. Owned by the caller: teex_task_result_free. */
struct teex_task_result {
  int status;      /* enum teex_task_status */
  uint8_t *output; /* the result bytes (TEEX_TASK_OK), else NULL */
  size_t output_len;
  char *logs; /* teex.log lines, NUL-terminated; may be NULL */
  size_t logs_len;
  char *error; /* NUL-terminated error text when status != OK */
  uint64_t duration_us;
};

/* The name of a status ("ok", "timeout", ...). */
const char *teex_task_status_name(int status);

/* The Landlock ABI version the running kernel offers (0 if none). */
int teex_executor_landlock_abi(void);

/* Starts an executor process for img (the image is copied to it over the
 * channel; the caller keeps img) and waits until it has imported the
 * service. Errors: TEEX_EUNSUPPORTED when the sandbox cannot be built and
 * the weaker sandbox was not accepted, TEEX_EFORMAT when the service fails
 * to import (err says where), TEEX_EIO / TEEX_EPROTO when the process
 * fails. *out is owned by the caller: teex_executor_stop. */
int teex_executor_start(const struct teex_image *img,
                        const struct teex_executor_opts *opts,
                        struct teex_executor **out, struct teex_err *err);

/* Runs one task to its end. Returns 0 when the task ran (its own outcome,
 * success or failure, is in res->status) or a TEEX_E* code when the
 * executor itself failed (it is then unusable: stop it). One task at a
 * time per executor (not thread-safe); start several executors for
 * parallelism. res is overwritten; free it with teex_task_result_free. */
int teex_executor_run(struct teex_executor *ex, const struct teex_task_ctx *ctx,
                      const uint8_t *input, size_t input_len,
                      struct teex_task_result *res, struct teex_err *err);

/* The Landlock ABI the executor applies (after any cap), 0 if none. */
int teex_executor_sandbox_abi(const struct teex_executor *ex);

/* The executor process's pid (for monitoring; 0 if not running). */
int teex_executor_pid(const struct teex_executor *ex);

/* Stops the executor process and frees ex. NULL-safe. */
void teex_executor_stop(struct teex_executor *ex);

/* Frees the buffers of res (not res itself). NULL-safe. */
void teex_task_result_free(struct teex_task_result *res);

/* The body of the hidden subcommand `teex executor --fd N [...]`: the
 * executor process. argv[0] is "executor". Returns an exit status. */
int teex_executor_main(int argc, char **argv);

/* `teex service run` for an image already loaded: reads the input from
 * input_path ("-" = stdin) and the n_data dataset files (local plaintext,
 * for service authors: named by their base names, in order), runs it once
 * (or bench_n times, printing latency percentiles to stderr) with output_max
 * as the task's output cap (0: none), prints the output to stdout, logs and
 * errors to stderr. Returns an exit status (0 ok, 1 task failed). */
int teex_service_run_image(const struct teex_image *img, const char *input_path,
                           const char *const *data_paths, size_t n_data,
                           uint32_t output_max, unsigned bench_n,
                           const struct teex_executor_opts *opts);

#endif
