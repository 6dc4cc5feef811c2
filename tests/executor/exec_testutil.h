/* Helpers for the executor tests: images built in memory, one-call task
 * runs, and the skip rule for sanitizer builds (the sandboxed executor runs
 * the real teex binary under seccomp, which ASan's runtime does not fit). */
#ifndef TEEX_EXEC_TESTUTIL_H
#define TEEX_EXEC_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "teex/executor.h"
#include "testutil.h"

/* Builds an image from NULL-terminated {path, source} pairs. */
static inline struct teex_image *xt_image(const char *entry, int style,
                                          const char *const *files) {
  struct teex_image *img = calloc(1, sizeof *img);
  assert_non_null(img);
  snprintf(img->manifest.name, sizeof img->manifest.name, "test");
  snprintf(img->manifest.version, sizeof img->manifest.version, "1.0");
  snprintf(img->manifest.entry, sizeof img->manifest.entry, "%s", entry);
  snprintf(img->manifest.python, sizeof img->manifest.python, "3.11");
  img->manifest.style = (enum teex_service_style)style;
  size_t n = 0;
  while (files[2 * n] != NULL)
    n++;
  img->files = calloc(n, sizeof *img->files);
  assert_non_null(img->files);
  for (size_t i = 0; i < n; i++) {
    img->files[i].path = strdup(files[2 * i]);
    img->files[i].len = strlen(files[2 * i + 1]);
    img->files[i].data = malloc(img->files[i].len + 1);
    memcpy(img->files[i].data, files[2 * i + 1], img->files[i].len + 1);
  }
  img->nfiles = n;
  return img;
}

static inline struct teex_executor *xt_start(struct teex_image *img,
                                             struct teex_executor_opts *opts) {
  struct teex_executor_opts def = {0};
  if (opts == NULL)
    opts = &def;
  opts->exe_path = tu_teex_bin();
  struct teex_executor *ex = NULL;
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_executor_start(img, opts, &ex, &err);
  if (rc != 0)
    fail_msg("executor start: %s", teex_err_msg(&err));
  return ex;
}

/* Runs one task; returns its result (caller frees). Fails the test when the
 * executor itself fails. */
static inline void xt_run(struct teex_executor *ex, const char *input,
                          struct teex_task_result *res) {
  struct teex_task_ctx ctx = {.task_id = "task-1",
                              .service_id = "svc-42",
                              .caller =
                                  "0x00000000000000000000000000000000000000c0"};
  struct teex_err err;
  teex_err_clear(&err);
  int rc = teex_executor_run(ex, &ctx, (const uint8_t *)input, strlen(input),
                             res, &err);
  if (rc != 0)
    fail_msg("executor run: %s", teex_err_msg(&err));
}

/* The output of a task that must have succeeded, as a C string. */
#define XT_OK(res)                                                             \
  do {                                                                         \
    if ((res).status != TEEX_TASK_OK)                                          \
      fail_msg("task status %s: %s", teex_task_status_name((res).status),      \
               (res).error ? (res).error : "");                                \
  } while (0)

static inline int xt_skip_sanitized(void) {
  const char *s = getenv("TEEX_SANITIZE");
  return s != NULL && strcmp(s, "1") == 0;
}

#endif
