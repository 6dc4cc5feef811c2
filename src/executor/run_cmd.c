/* `teex service run` for a loaded image: one task, or a latency benchmark,
 * through exactly the sandbox a worker uses (see include/teex/executor.h). */
#include "teex/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "teex/buf.h"

static int read_input(const char *path, struct teex_buf *in) {
  unsigned max = (unsigned)in->max;
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "teex: %s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t chunk[65536];
  int rc = 0;
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      fprintf(stderr, "teex: %s: %s\n", path, strerror(errno));
      rc = -1;
      break;
    }
    if (r == 0)
      break;
    if (teex_buf_append(in, chunk, (size_t)r) != 0) {
      fprintf(stderr, "teex: %s: larger than %u bytes\n", path, max);
      rc = -1;
      break;
    }
  }
  if (fd != 0)
    close(fd);
  return rc;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void free_bufs(struct teex_buf *in, struct teex_buf *data, size_t n) {
  teex_buf_free(in);
  for (size_t i = 0; i < n; i++)
    teex_buf_free(&data[i]); /* secret: wiped */
}

int teex_service_run_image(const struct teex_image *img, const char *input_path,
                           const char *const *data_paths, size_t n_data,
                           uint32_t output_max, unsigned bench_n,
                           const struct teex_executor_opts *opts) {
  struct teex_buf in, data[TEEX_EXEC_DATASETS_MAX];
  struct teex_task_data ds[TEEX_EXEC_DATASETS_MAX];
  if (n_data > TEEX_EXEC_DATASETS_MAX) {
    fprintf(stderr, "teex: at most %u datasets\n", TEEX_EXEC_DATASETS_MAX);
    return 1;
  }
  teex_buf_init(&in, TEEX_EXEC_INPUT_MAX, 0);
  int bad = read_input(input_path, &in) != 0;
  for (size_t i = 0; i < n_data; i++) {
    teex_buf_init(&data[i], TEEX_EXEC_DATA_MAX, TEEX_BUF_SECRET);
    if (!bad)
      bad = read_input(data_paths[i], &data[i]) != 0;
    const char *slash = strrchr(data_paths[i], '/');
    ds[i].name = slash ? slash + 1 : data_paths[i];
    ds[i].data = data[i].data ? data[i].data : (const uint8_t *)"";
    ds[i].len = data[i].len;
  }
  if (bad) {
    free_bufs(&in, data, n_data);
    return 1;
  }
  struct teex_executor *ex = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  if (teex_executor_start(img, opts, &ex, &err) != 0) {
    fprintf(stderr, "teex: %s\n", teex_err_msg(&err));
    free_bufs(&in, data, n_data);
    return 1;
  }
  struct teex_task_ctx ctx = {.task_id = "local",
                              .service_id = img->manifest.name,
                              .caller =
                                  "0x0000000000000000000000000000000000000000",
                              .datasets = ds,
                              .n_datasets = n_data,
                              .output_max = output_max};
  uint64_t *lat = NULL;
  if (bench_n > 0 && (lat = calloc(bench_n, sizeof *lat)) == NULL) {
    teex_executor_stop(ex);
    free_bufs(&in, data, n_data);
    return 1;
  }
  struct teex_task_result res = {0};
  int status = 0;
  uint64_t t_all = now_us();
  unsigned runs = bench_n > 0 ? bench_n : 1;
  for (unsigned i = 0; i < runs; i++) {
    teex_task_result_free(&res);
    uint64_t t0 = now_us();
    if (teex_executor_run(ex, &ctx, in.data ? in.data : (const uint8_t *)"",
                          in.len, &res, &err) != 0) {
      fprintf(stderr, "teex: %s\n", teex_err_msg(&err));
      status = 1;
      break;
    }
    if (lat != NULL)
      lat[i] = now_us() - t0;
  }
  t_all = now_us() - t_all;
  if (status == 0) {
    if (res.logs_len > 0)
      fwrite(res.logs, 1, res.logs_len, stderr);
    if (res.status == TEEX_TASK_OK) {
      if (res.output_len > 0)
        fwrite(res.output, 1, res.output_len, stdout);
      fflush(stdout);
    } else {
      fprintf(stderr, "teex: task %s: %s\n", teex_task_status_name(res.status),
              res.error ? res.error : "");
      status = 1;
    }
  }
  if (status == 0 && lat != NULL) {
    qsort(lat, runs, sizeof *lat, cmp_u64);
    fprintf(stderr,
            "bench: %u tasks, latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, "
            "max %.3f ms; %.0f tasks/s (one executor, one task at a time; "
            "landlock ABI %d)\n",
            runs, lat[runs / 2] / 1000.0, lat[(runs * 9) / 10] / 1000.0,
            lat[(runs * 99) / 100] / 1000.0, lat[runs - 1] / 1000.0,
            runs * 1e6 / (double)(t_all ? t_all : 1),
            teex_executor_sandbox_abi(ex));
  }
  free(lat);
  teex_task_result_free(&res);
  teex_executor_stop(ex);
  free_bufs(&in, data, n_data);
  return status;
}
