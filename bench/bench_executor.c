/* Benchmark: per-task latency of a trivial service through the executor's
 * zygote (fork, sandbox, run, return), against spawning python3.11 -c for
 * the same function in the same run; and tasks/s with both cores busy.
 *
 *   bench_executor [TEEX_BIN] [TASKS]     (TEEX_BIN defaults to $TEEX_BIN
 *                                          or ./teex)
 * Prints p50/p99 for: back-to-back tasks with a pre-forked spare, tasks
 * with an idle gap (the spare is ready when the task arrives), tasks with
 * no pre-forking, and the python3.11 spawn baseline; then the ratio. */
#include "teex/executor.h"

#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char service[] = "def main(data):\n    return data\n";
static const char plain[] = "import sys\n"
                            "def main(data):\n    return data\n"
                            "sys.stdout.buffer.write(main(b'ping'))\n";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("%-34s n=%-5d p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", what, n,
         v[n / 2], v[(n * 99) / 100], v[n - 1]);
}

static struct teex_image *make_image(void) {
  struct teex_image *img = calloc(1, sizeof *img);
  snprintf(img->manifest.entry, sizeof img->manifest.entry, "main.py");
  snprintf(img->manifest.name, sizeof img->manifest.name, "echo");
  img->files = calloc(1, sizeof *img->files);
  img->files[0].path = strdup("main.py");
  img->files[0].data = (uint8_t *)strdup(service);
  img->files[0].len = strlen(service);
  img->nfiles = 1;
  return img;
}

static struct teex_executor *start(struct teex_image *img, const char *bin,
                                   int prefork) {
  struct teex_executor_opts o = {.exe_path = bin, .prefork = prefork};
  struct teex_executor *ex = NULL;
  struct teex_err err;
  if (teex_executor_start(img, &o, &ex, &err) != 0) {
    fprintf(stderr, "bench: start: %s\n", teex_err_msg(&err));
    exit(1);
  }
  return ex;
}

static double last_inside_ms; /* the executor's own dispatch-to-result time */

static double one_task(struct teex_executor *ex) {
  struct teex_task_ctx ctx = {.task_id = "b"};
  struct teex_task_result r;
  struct teex_err err;
  double t0 = now_ms();
  if (teex_executor_run(ex, &ctx, (const uint8_t *)"ping", 4, &r, &err) != 0 ||
      r.status != TEEX_TASK_OK || r.output_len != 4) {
    fprintf(stderr, "bench: task failed\n");
    exit(1);
  }
  double dt = now_ms() - t0;
  last_inside_ms = r.duration_us / 1000.0;
  teex_task_result_free(&r);
  return dt;
}

/* CPU seconds of the executor itself and of its reaped children (from
 * /proc/PID/stat): unlike latency, not stretched by other load. */
static void cpu_of(int pid, double *self, double *children) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  *self = *children = 0;
  if (f == NULL)
    return;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return;
  unsigned long long v[20] = {0};
  /* After ")": state, then fields 4.. ; utime is field 14. */
  int field = 3;
  for (char *t = p + 2; *t && field <= 17; field++) {
    if (field >= 14)
      v[field - 14] = strtoull(t, NULL, 10);
    t = strchr(t, ' ');
    if (t == NULL)
      break;
    t++;
  }
  double hz = (double)sysconf(_SC_CLK_TCK);
  *self = (double)(v[0] + v[1]) / hz;
  *children = (double)(v[2] + v[3]) / hz;
}

static void measure(const char *what, struct teex_executor *ex, int n,
                    int gap_us, double *out) {
  double s0, c0, s1, c1;
  double *inside = calloc((size_t)n, sizeof *inside);
  for (int i = 0; i < 20; i++)
    one_task(ex);
  cpu_of(teex_executor_pid(ex), &s0, &c0);
  for (int i = 0; i < n; i++) {
    if (gap_us > 0)
      usleep((useconds_t)gap_us);
    out[i] = one_task(ex);
    inside[i] = last_inside_ms;
  }
  cpu_of(teex_executor_pid(ex), &s1, &c1);
  qsort(inside, (size_t)n, sizeof *inside, cmp_d);
  report(what, out, n);
  printf("%-34s        p50 %7.3f ms  (inside the executor: task handed "
         "over to result read)\n",
         "", inside[n / 2]);
  printf("%-34s        CPU per task: executor %.3f ms, task children %.3f "
         "ms\n",
         "", (s1 - s0) * 1000 / n, (c1 - c0) * 1000 / n);
  free(inside);
}

static double spawn_python(void) {
  int p[2];
  if (pipe(p) != 0)
    exit(1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  char *argv[] = {"python3.11", "-I", "-S", "-c", (char *)plain, NULL};
  double t0 = now_ms();
  pid_t pid;
  if (posix_spawn(&pid, "/usr/bin/python3.11", &fa, NULL, argv, environ) != 0)
    exit(1);
  close(p[1]);
  char buf[16];
  ssize_t got = read(p[0], buf, sizeof buf);
  int st;
  waitpid(pid, &st, 0);
  double dt = now_ms() - t0;
  close(p[0]);
  posix_spawn_file_actions_destroy(&fa);
  if (got != 4 || memcmp(buf, "ping", 4) != 0) {
    fprintf(stderr, "bench: python3.11 spawn failed\n");
    exit(1);
  }
  return dt;
}

struct worker {
  const char *bin;
  struct teex_image *img;
  double seconds;
  long done;
};

static void *load_worker(void *arg) {
  struct worker *w = arg;
  struct teex_executor *ex = start(w->img, w->bin, 0);
  double end = now_ms() + w->seconds * 1000;
  while (now_ms() < end) {
    one_task(ex);
    w->done++;
  }
  teex_executor_stop(ex);
  return NULL;
}

int main(int argc, char **argv) {
  const char *bin = argc > 1 ? argv[1] : getenv("TEEX_BIN");
  if (bin == NULL)
    bin = "./teex";
  int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2000;
  if (n < 100)
    n = 100;
  int nspawn = n / 10;
  double *v = calloc((size_t)n, sizeof *v);
  struct teex_image *img = make_image();

  printf("executor latency, trivial main (fork + Landlock ABI %d + seccomp + "
         "run + return), host to host:\n",
         teex_executor_landlock_abi());
  struct teex_executor *ex = start(img, bin, 0);
  measure("zygote, spare pre-forked", ex, n, 0, v);
  double p50_spare = v[n / 2];
  measure("zygote, spare, 2 ms idle between", ex, n / 2, 2000, v);
  double p50_idle = v[n / 4];
  teex_executor_stop(ex);
  ex = start(img, bin, -1);
  measure("zygote, fork per task (no spare)", ex, n / 2, 0, v);
  teex_executor_stop(ex);

  for (int i = 0; i < 3; i++)
    spawn_python();
  for (int i = 0; i < nspawn; i++)
    v[i] = spawn_python();
  report("spawn python3.11 -I -S -c (baseline)", v, nspawn);
  double p50_spawn = v[nspawn / 2];
  printf("ratio spawn/zygote p50: %.1fx back-to-back, %.1fx with idle gaps\n",
         p50_spawn / p50_spare, p50_spawn / p50_idle);

  /* Throughput: one executor per core, each a task at a time. */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 1)
    cores = 1;
  if (cores > 16)
    cores = 16;
  struct worker w[16];
  pthread_t t[16];
  for (long i = 0; i < cores; i++) {
    w[i] = (struct worker){.bin = bin, .img = img, .seconds = 3.0};
    pthread_create(&t[i], NULL, load_worker, &w[i]);
  }
  long total = 0;
  for (long i = 0; i < cores; i++) {
    pthread_join(t[i], NULL);
    total += w[i].done;
  }
  printf("throughput: %.0f tasks/s with %ld executors busy (%ld cores)\n",
         total / 3.0, cores, cores);
  teex_image_free(img);
  free(v);
  return 0;
}
