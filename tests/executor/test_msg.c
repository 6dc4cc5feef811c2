/* The task channel codec (pure C, runs under ASan): round trips, and every
 * kind of malformed frame and body refused with an error. */
#include "executor/msg.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_task_roundtrip(void **state) {
  (void)state;
  struct teex_buf b;
  teex_buf_init(&b, 1 << 20, 0);
  struct teex_task_ctx ctx = {
      .task_id = "t1", .service_id = "s1", .caller = "0xabc", .wall_ms = 1234};
  assert_int_equal(
      teex_xmsg_encode_task(&b, &ctx, (const uint8_t *)"in\0put", 6), 0);
  unsigned type;
  uint32_t len;
  assert_int_equal(teex_xmsg_header_parse(b.data, &type, &len), 0);
  assert_int_equal(type, TEEX_XMSG_TASK);
  assert_int_equal(len, b.len - TEEX_XMSG_HDR);
  struct teex_xtask t;
  struct teex_err err;
  assert_int_equal(teex_xmsg_decode_task(b.data + TEEX_XMSG_HDR, len, &t, &err),
                   0);
  assert_string_equal(t.task_id, "t1");
  assert_string_equal(t.service_id, "s1");
  assert_string_equal(t.caller, "0xabc");
  assert_int_equal(t.wall_ms, 1234);
  assert_int_equal(t.input_len, 6);
  assert_memory_equal(t.input, "in\0put", 6);
  /* Every truncation of the body is refused or decodes a prefix safely. */
  for (uint32_t cut = 0; cut < len; cut++) {
    int rc = teex_xmsg_decode_task(b.data + TEEX_XMSG_HDR, cut, &t, &err);
    assert_true(rc == 0 || rc == TEEX_ETRUNC || rc == TEEX_EFORMAT);
  }
  teex_buf_free(&b);
}

/* Datasets travel as (name, data) pairs in order, with the task's cap. */
static void test_task_datasets(void **state) {
  (void)state;
  struct teex_buf b;
  teex_buf_init(&b, 1 << 20, 0);
  struct teex_task_data ds[2] = {
      {.name = "a", .data = (const uint8_t *)"x\0y", .len = 3},
      {.name = "b.csv", .data = (const uint8_t *)"", .len = 0}};
  struct teex_task_ctx ctx = {
      .task_id = "t", .datasets = ds, .n_datasets = 2, .output_max = 77};
  assert_int_equal(teex_xmsg_check_datasets(&ctx), 0);
  assert_int_equal(teex_xmsg_encode_task(&b, &ctx, (const uint8_t *)"i", 1), 0);
  struct teex_xtask t;
  struct teex_err err;
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err), 0);
  assert_int_equal(t.n_data, 2);
  assert_string_equal(t.data[0].name, "a");
  assert_int_equal(t.data[0].len, 3);
  assert_memory_equal(t.data[0].data, "x\0y", 3);
  assert_string_equal(t.data[1].name, "b.csv");
  assert_int_equal(t.data[1].len, 0);
  assert_int_equal(t.output_max, 77);
  for (uint32_t cut = 0; cut < b.len - 8; cut++) {
    int rc = teex_xmsg_decode_task(b.data + 8, cut, &t, &err);
    assert_true(rc == 0 || rc == TEEX_ETRUNC || rc == TEEX_EFORMAT);
  }
  /* Out of order: data without a name, a name without data, two names. */
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put(&b, TEEX_XT_DATA, "x", 1);
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put_str(&b, TEEX_XT_DATA_NAME, "a");
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put_str(&b, TEEX_XT_DATA_NAME, "a");
  teex_xmsg_put_str(&b, TEEX_XT_DATA_NAME, "b");
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  /* The same name twice; an empty name; too many datasets. */
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  for (int i = 0; i < 2; i++) {
    teex_xmsg_put_str(&b, TEEX_XT_DATA_NAME, "a");
    teex_xmsg_put(&b, TEEX_XT_DATA, "x", 1);
  }
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put(&b, TEEX_XT_DATA_NAME, "", 0);
  teex_xmsg_put(&b, TEEX_XT_DATA, "x", 1);
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  for (int i = 0; i <= TEEX_EXEC_DATASETS_MAX; i++) {
    char nm[8];
    snprintf(nm, sizeof nm, "d%d", i);
    teex_xmsg_put_str(&b, TEEX_XT_DATA_NAME, nm);
    teex_xmsg_put(&b, TEEX_XT_DATA, "x", 1);
  }
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_ETOOBIG);
  /* The host-side check says the same before encoding. */
  struct teex_task_data dup[2] = {ds[0], ds[0]};
  ctx.datasets = dup;
  assert_int_equal(teex_xmsg_check_datasets(&ctx), TEEX_EINVAL);
  struct teex_task_data huge = {
      .name = "h", .data = ds[0].data, .len = (size_t)TEEX_EXEC_DATA_MAX + 1};
  ctx.datasets = &huge;
  ctx.n_datasets = 1;
  assert_int_equal(teex_xmsg_check_datasets(&ctx), TEEX_ETOOBIG);
  teex_buf_free(&b);
}

static void test_task_bad_fields(void **state) {
  (void)state;
  struct teex_buf b;
  teex_buf_init(&b, 1 << 16, 0);
  struct teex_xtask t;
  struct teex_err err;
  /* A repeated field. */
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put_str(&b, TEEX_XT_TASK_ID, "a");
  teex_xmsg_put_str(&b, TEEX_XT_TASK_ID, "b");
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  /* An unknown tag. */
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put_str(&b, 99, "a");
  teex_xmsg_end(&b);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  /* An id too long, an id with a NUL, a u32 of the wrong size. */
  char longid[TEEX_EXEC_ID_MAX + 2];
  memset(longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = 0;
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put_str(&b, TEEX_XT_CALLER, longid);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put(&b, TEEX_XT_TASK_ID, "a\0b", 3);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_TASK);
  teex_xmsg_put(&b, TEEX_XT_WALL_MS, "abc", 3);
  assert_int_equal(teex_xmsg_decode_task(b.data + 8, b.len - 8, &t, &err),
                   TEEX_EFORMAT);
  /* A field length running past the body. */
  uint8_t bad[] = {TEEX_XT_INPUT, 0, 0, 1, 0, 'x'};
  assert_int_equal(teex_xmsg_decode_task(bad, sizeof bad, &t, &err),
                   TEEX_ETRUNC);
  /* The encoder refuses inputs and ids over the bounds. */
  struct teex_task_ctx ctx = {.caller = longid};
  assert_int_equal(teex_xmsg_encode_task(&b, &ctx, NULL, 0), TEEX_ETOOBIG);
  assert_int_equal(
      teex_xmsg_encode_task(&b, NULL, NULL, (size_t)TEEX_EXEC_INPUT_MAX + 1),
      TEEX_ETOOBIG);
  teex_buf_free(&b);
}

static void test_headers(void **state) {
  (void)state;
  unsigned type;
  uint32_t len;
  uint8_t h[8] = {
      TEEX_XMSG_MAGIC, TEEX_XMSG_VERSION, TEEX_XMSG_TASK, 0, 0, 0, 0, 10};
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), 0);
  assert_int_equal(len, 10);
  h[0] = 'Y';
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), TEEX_EPROTO);
  h[0] = TEEX_XMSG_MAGIC;
  h[1] = 2;
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), TEEX_EVERSION);
  h[1] = TEEX_XMSG_VERSION;
  h[2] = 77;
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), TEEX_EPROTO);
  h[2] = TEEX_XMSG_READY;
  h[3] = 1;
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), TEEX_EPROTO);
  h[3] = 0;
  /* Each type has its own maximum, checked before any allocation. */
  h[4] = 0x7f;
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), TEEX_ETOOBIG);
  h[2] = TEEX_XMSG_TASK;
  h[4] = 0x03; /* 48 MiB + 64 KiB > input + datasets + framing */
  h[5] = 0x01;
  assert_int_equal(teex_xmsg_header_parse(h, &type, &len), TEEX_ETOOBIG);
}

static void test_result_roundtrip(void **state) {
  (void)state;
  struct teex_buf b;
  teex_buf_init(&b, 1 << 20, 0);
  struct teex_xresult r = {.status = TEEX_TASK_ERROR,
                           .output = (const uint8_t *)"out",
                           .output_len = 3,
                           .logs = (const uint8_t *)"log\n",
                           .logs_len = 4,
                           .error = (const uint8_t *)"E",
                           .error_len = 1,
                           .duration_us = 0x123456789ull};
  assert_int_equal(teex_xmsg_encode_result(&b, &r), 0);
  struct teex_xresult d;
  struct teex_err err;
  assert_int_equal(teex_xmsg_decode_result(b.data + 8, b.len - 8, &d, &err), 0);
  assert_int_equal(d.status, TEEX_TASK_ERROR);
  assert_memory_equal(d.output, "out", 3);
  assert_memory_equal(d.logs, "log\n", 4);
  assert_int_equal(d.error_len, 1);
  assert_true(d.duration_us == 0x123456789ull);
  /* No status, or an unknown one, is refused. */
  teex_xmsg_begin(&b, TEEX_XMSG_RESULT);
  teex_xmsg_put(&b, TEEX_XT_OUTPUT, "x", 1);
  assert_int_equal(teex_xmsg_decode_result(b.data + 8, b.len - 8, &d, &err),
                   TEEX_EFORMAT);
  teex_xmsg_begin(&b, TEEX_XMSG_RESULT);
  teex_xmsg_put_u32(&b, TEEX_XT_STATUS, 99);
  assert_int_equal(teex_xmsg_decode_result(b.data + 8, b.len - 8, &d, &err),
                   TEEX_EFORMAT);
  teex_buf_free(&b);
}

static struct teex_image *two_files(const char *p1, const char *p2) {
  struct teex_image *img = calloc(1, sizeof *img);
  snprintf(img->manifest.entry, sizeof img->manifest.entry, "%s", p1);
  snprintf(img->manifest.name, sizeof img->manifest.name, "n");
  img->manifest.style = TEEX_STYLE_SCRIPT;
  img->manifest.stateless = 1;
  img->manifest.limits.cpu_ms = 7;
  img->manifest.limits.threads = 3;
  img->files = calloc(2, sizeof *img->files);
  const char *paths[2] = {p1, p2};
  for (int i = 0; i < 2; i++) {
    img->files[i].path = strdup(paths[i]);
    img->files[i].data = (uint8_t *)strdup("print(1)\n");
    img->files[i].len = 9;
  }
  img->nfiles = 2;
  return img;
}

static int decode_image_of(struct teex_image *src, struct teex_image **out,
                           struct teex_err *err) {
  struct teex_buf b;
  teex_buf_init(&b, 1 << 20, 0);
  assert_int_equal(teex_xmsg_encode_image(&b, src), 0);
  int rc = teex_xmsg_decode_image(b.data + 8, b.len - 8, out, err);
  teex_buf_free(&b);
  teex_image_free(src);
  return rc;
}

static void test_image_roundtrip_and_paths(void **state) {
  (void)state;
  struct teex_image *img;
  struct teex_err err;
  assert_int_equal(decode_image_of(two_files("z.py", "pkg/a.py"), &img, &err),
                   0);
  assert_int_equal(img->nfiles, 2);
  assert_string_equal(img->files[0].path, "pkg/a.py"); /* sorted */
  assert_string_equal(img->manifest.entry, "z.py");
  assert_int_equal(img->manifest.style, TEEX_STYLE_SCRIPT);
  assert_int_equal(img->manifest.stateless, 1);
  assert_int_equal(img->manifest.limits.cpu_ms, 7);
  assert_int_equal(img->manifest.limits.threads, 3);
  assert_non_null(teex_image_find(img, "pkg/a.py"));
  teex_image_free(img);

  const char *bad[] = {"../x.py", "/abs.py", "a/../b.py", "a//b.py", "./a.py",
                       "a\\b.py", "a/",      "a\nb.py",   ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    img = NULL;
    int rc = decode_image_of(two_files("m.py", bad[i]), &img, &err);
    if (rc != TEEX_EFORMAT)
      fail_msg("path '%s' accepted", bad[i]);
    assert_null(img);
  }
  assert_int_equal(decode_image_of(two_files("m.py", "m.py"), &img, &err),
                   TEEX_EFORMAT); /* duplicate */
  struct teex_image *noentry = two_files("m.py", "n.py");
  snprintf(noentry->manifest.entry, sizeof noentry->manifest.entry, "x.py");
  assert_int_equal(decode_image_of(noentry, &img, &err), TEEX_EFORMAT);
}

static void test_send_recv(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct teex_buf b, rx;
  teex_buf_init(&b, 1 << 20, 0);
  teex_buf_init(&rx, 0, 0);
  struct teex_task_ctx ctx = {.task_id = "x"};
  assert_int_equal(teex_xmsg_encode_task(&b, &ctx, (const uint8_t *)"hi", 2),
                   0);
  assert_int_equal(teex_xmsg_send(sv[0], b.data, b.len, 1000), 0);
  unsigned type;
  struct teex_err err;
  assert_int_equal(teex_xmsg_recv(sv[1], &type, &rx, 1000, &err), 0);
  assert_int_equal(type, TEEX_XMSG_TASK);
  assert_int_equal(rx.len, b.len - 8);
  /* Nothing more: a timeout. A half frame then EOF: truncated. */
  assert_int_equal(teex_xmsg_recv(sv[1], &type, &rx, 50, &err), TEEX_ETIMEDOUT);
  assert_int_equal(write(sv[0], b.data, 10), 10);
  close(sv[0]);
  assert_int_equal(teex_xmsg_recv(sv[1], &type, &rx, 1000, &err), TEEX_ETRUNC);
  close(sv[1]);
  teex_buf_free(&b);
  teex_buf_free(&rx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_task_roundtrip),
      cmocka_unit_test(test_task_datasets),
      cmocka_unit_test(test_task_bad_fields),
      cmocka_unit_test(test_headers),
      cmocka_unit_test(test_result_roundtrip),
      cmocka_unit_test(test_image_roundtrip_and_paths),
      cmocka_unit_test(test_send_recv),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
