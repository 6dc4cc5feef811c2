/* libFuzzer harness: the executor's task channel codec. The first byte
 * picks what the rest is fed to: a frame header, or the body decoder of a
 * TASK, RESULT, LOAD (image), KV or KV_REPLY message. Decoded KV calls are
 * re-encoded and decoded again and must give the same call. Decoded images are
 * re-encoded and decoded again, which must give the same files. */
#include "executor/msg.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned which = data[0] % 6;
  data++;
  size--;
  struct teex_err err;
  switch (which) {
  case 0: {
    unsigned type;
    uint32_t len;
    if (size >= TEEX_XMSG_HDR &&
        teex_xmsg_header_parse(data, &type, &len) == 0 &&
        len > teex_xmsg_body_max(type))
      __builtin_trap();
    break;
  }
  case 1: {
    struct teex_xtask t;
    if (teex_xmsg_decode_task(data, size, &t, &err) == 0) {
      size_t total = t.input_len;
      if (t.input_len > size || strlen(t.caller) > TEEX_EXEC_ID_MAX ||
          t.n_data > TEEX_EXEC_DATASETS_MAX)
        __builtin_trap();
      for (size_t i = 0; i < t.n_data; i++) {
        total += t.data[i].len;
        if (t.data[i].name[0] == 0 ||
            strlen(t.data[i].name) > TEEX_EXEC_DATA_NAME_MAX)
          __builtin_trap();
      }
      if (total > size)
        __builtin_trap();
    }
    break;
  }
  case 2: {
    struct teex_xresult r;
    if (teex_xmsg_decode_result(data, size, &r, &err) == 0 &&
        r.output_len + r.logs_len + r.error_len > size)
      __builtin_trap();
    break;
  }
  case 4: {
    struct teex_ds_cmd c, again;
    if (teex_xmsg_decode_kv(data, size, &c, &err) == 0) {
      if (c.key_len > TEEX_EXEC_KV_KEY_MAX ||
          c.val_len > TEEX_EXEC_KV_VALUE_MAX ||
          c.expect_len > TEEX_EXEC_KV_VALUE_MAX)
        __builtin_trap();
      struct teex_buf b;
      teex_buf_init(&b, 1u << 20, 0);
      if (teex_xmsg_encode_kv(&b, &c) != 0 ||
          teex_xmsg_decode_kv(b.data + TEEX_XMSG_HDR, b.len - TEEX_XMSG_HDR,
                              &again, &err) != 0 ||
          again.op != c.op || again.key_len != c.key_len ||
          (c.key_len > 0 && memcmp(again.key, c.key, c.key_len) != 0))
        __builtin_trap();
      teex_buf_free(&b);
    }
    break;
  }
  case 5: {
    struct teex_xkv_reply r;
    if (teex_xmsg_decode_kv_reply(data, size, &r, &err) == 0) {
      if (r.n_items > TEEX_EXEC_KV_SCAN_MAX || r.val_len > size ||
          strlen(r.text) >= sizeof r.text)
        __builtin_trap();
    }
    break;
  }
  case 3: {
    struct teex_image *img = NULL;
    if (teex_xmsg_decode_image(data, size, &img, &err) == 0) {
      struct teex_buf b;
      teex_buf_init(&b, 1u << 24, 0);
      struct teex_image *again = NULL;
      if (teex_xmsg_encode_image(&b, img) != 0 ||
          teex_xmsg_decode_image(b.data + TEEX_XMSG_HDR, b.len - TEEX_XMSG_HDR,
                                 &again, &err) != 0 ||
          again->nfiles != img->nfiles)
        __builtin_trap();
      for (size_t i = 0; i < img->nfiles; i++)
        if (strcmp(img->files[i].path, again->files[i].path) != 0 ||
            img->files[i].len != again->files[i].len)
          __builtin_trap();
      teex_image_free(again);
      teex_buf_free(&b);
      teex_image_free(img);
    }
    break;
  }
  }
  return 0;
}
