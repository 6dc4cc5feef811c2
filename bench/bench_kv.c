/* Benchmark: the cost of one teex.kv call through the executor's channel
 * (child -> executor -> host handler -> back), against the same task
 * making no call, in the same run. The handler applies the calls to the
 * TEE-DS state machine in this process, so the figure is the sandbox
 * crossing, not the network or consensus (bench_ds_net measures those).
 *
 *   bench_kv [TEEX_BIN] [TASKS]   (TEEX_BIN defaults to $TEEX_BIN or ./teex)
 * Prints p50/p99 task latency with 0 and with 100 kv.incr calls, and the
 * per-call cost (p50 difference / 100). */
#include "teex/config.h"
#include "teex/ds.h"
#include "teex/executor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CALLS 100

static const char service[] = "import teex\n"
                              "def main(data):\n"
                              "    n = 0\n"
                              "    for _ in range(int(data)):\n"
                              "        n = teex.kv.incr('bench')\n"
                              "    return str(n)\n";

struct host {
  struct teex_ds_kv *kv;
  uint64_t index;
};

static int handler(void *arg, const struct teex_ds_cmd *cmd,
                   struct teex_ds_result *res, struct teex_err *err) {
  struct host *h = arg;
  uint8_t key[TEEX_DS_KEY_MAX], after[TEEX_DS_KEY_MAX];
  struct teex_ds_cmd c;
  int rc = teex_ds_ns_cmd("bench", cmd, &c, key, after);
  if (rc != 0)
    return teex_err_set(err, rc, "namespace");
  c.grant = "bench";
  if (c.op == TEEX_DS_GET || c.op == TEEX_DS_SCAN)
    return teex_ds_kv_read(h->kv, &c, res);
  h->index++;
  return teex_ds_kv_apply(h->kv, h->index, h->index, &c, res);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("%-28s n=%-5d p50 %8.3f ms  p99 %8.3f ms\n", what, n, v[n / 2],
         v[(n * 99) / 100]);
  return v[n / 2];
}

int main(int argc, char **argv) {
  const char *bin = argc > 1 ? argv[1] : getenv("TEEX_BIN");
  if (bin == NULL)
    bin = "./teex";
  uint64_t n = 200;
  if (argc > 2 && (teex_parse_u64(argv[2], &n) != 0 || n > 100000)) {
    fprintf(stderr, "usage: bench_kv [TEEX_BIN] [TASKS <= 100000]\n");
    return 2;
  }
  int tasks = n < 10 ? 10 : (int)n;
  struct teex_image img;
  struct teex_image_file file = {.path = (char *)"main.py",
                                 .data = (uint8_t *)service,
                                 .len = sizeof service - 1};
  memset(&img, 0, sizeof img);
  snprintf(img.manifest.entry, sizeof img.manifest.entry, "main.py");
  snprintf(img.manifest.name, sizeof img.manifest.name, "kvbench");
  img.files = &file;
  img.nfiles = 1;
  struct teex_executor_opts o = {.exe_path = bin};
  struct teex_executor *ex = NULL;
  struct teex_err err;
  if (teex_executor_start(&img, &o, &ex, &err) != 0) {
    fprintf(stderr, "executor: %s\n", teex_err_msg(&err));
    return 1;
  }
  struct host h = {0};
  if (teex_ds_kv_new(&h.kv) != 0)
    return 1;
  struct teex_task_ctx ctx = {.task_id = "b", .kv = handler, .kv_arg = &h};
  double *none = calloc((size_t)tasks, sizeof(double));
  double *some = calloc((size_t)tasks, sizeof(double));
  char in[16];
  snprintf(in, sizeof in, "%d", CALLS);
  for (int i = 0; i < tasks; i++) {
    struct teex_task_result r;
    /* Alternate, so both see the same machine. */
    double t0 = now_ms();
    if (teex_executor_run(ex, &ctx, (const uint8_t *)"0", 1, &r, &err) != 0 ||
        r.status != TEEX_TASK_OK) {
      fprintf(stderr, "task: %s\n", r.error ? r.error : teex_err_msg(&err));
      return 1;
    }
    none[i] = now_ms() - t0;
    teex_task_result_free(&r);
    t0 = now_ms();
    if (teex_executor_run(ex, &ctx, (const uint8_t *)in, strlen(in), &r,
                          &err) != 0 ||
        r.status != TEEX_TASK_OK) {
      fprintf(stderr, "task: %s\n", r.error ? r.error : teex_err_msg(&err));
      return 1;
    }
    some[i] = now_ms() - t0;
    teex_task_result_free(&r);
  }
  double a = report("task, no teex.kv call", none, tasks);
  double b = report("task, 100 x teex.kv.incr", some, tasks);
  printf("per teex.kv call (p50 difference / %d): %.1f us\n", CALLS,
         (b - a) * 1000.0 / CALLS);
  free(none);
  free(some);
  teex_executor_stop(ex);
  teex_ds_kv_free(h.kv);
  return 0;
}
