/* The executor's task channel protocol (internal): framing, fields, and the
 * codecs of each message. No I/O here except the small blocking send/recv
 * helpers at the end, so the parsers can be fuzzed (fuzz_executor_msg.c).
 *
 * A frame is an 8-byte header then a body:
 *   u8 magic 'X' | u8 version 1 | u8 type | u8 0 | u32 body length (BE)
 * The body is a sequence of fields:  u8 tag | u32 length (BE) | bytes.
 * Every length is checked against a per-type maximum before anything is
 * allocated. Unknown tags are refused; a repeated singular field is refused.
 * See docs/internals/executor.md for the message table. */
#ifndef TEEX_EXECUTOR_MSG_H
#define TEEX_EXECUTOR_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/executor.h"
#include "teex/image.h"

#define TEEX_XMSG_MAGIC 0x58u
#define TEEX_XMSG_VERSION 1u
#define TEEX_XMSG_HDR 8u
#define TEEX_XMSG_FIELD_HDR 5u

enum teex_xmsg_type {
  TEEX_XMSG_LOAD = 1,   /* host -> executor: the image */
  TEEX_XMSG_READY = 2,  /* executor -> host: service imported */
  TEEX_XMSG_FAIL = 3,   /* executor -> host: could not start */
  TEEX_XMSG_TASK = 4,   /* host -> executor -> child: run one task */
  TEEX_XMSG_RESULT = 5, /* child -> executor -> host: its outcome */
  TEEX_XMSG_STOP = 6,   /* host -> executor: exit */
  /* child -> executor -> host: one teex.kv call, answered before the child
   * goes on (the task's deadline keeps running) */
  TEEX_XMSG_KV = 7,
  TEEX_XMSG_KV_REPLY = 8, /* host -> executor -> child: its answer */
};

enum teex_xmsg_tag {
  TEEX_XT_NAME = 1,
  TEEX_XT_VERSION = 2,
  TEEX_XT_ENTRY = 3,
  TEEX_XT_STYLE = 4,     /* u32 */
  TEEX_XT_STATELESS = 5, /* u32 0/1 */
  TEEX_XT_FULLTB = 6,    /* u32 0/1 */
  TEEX_XT_LIMITS = 7,    /* 5 x u32: cpu_ms wall_ms memory_mb output threads */
  TEEX_XT_FILE_PATH = 8, /* repeated, each followed by FILE_DATA */
  TEEX_XT_FILE_DATA = 9,
  TEEX_XT_DESCRIPTION = 10,
  TEEX_XT_PYTHON = 11,
  TEEX_XT_TASK_ID = 20,
  TEEX_XT_SERVICE_ID = 21,
  TEEX_XT_CALLER = 22,
  TEEX_XT_INPUT = 23,
  TEEX_XT_WALL_MS = 24,   /* u32 */
  TEEX_XT_DATA_NAME = 25, /* repeated, each followed by DATA */
  TEEX_XT_DATA = 26,
  TEEX_XT_OUTPUT_MAX = 27, /* u32: the task's output cap, 0 = none */
  TEEX_XT_STATUS = 30,     /* u32 */
  TEEX_XT_OUTPUT = 31,
  TEEX_XT_LOGS = 32,
  TEEX_XT_ERROR = 33,
  TEEX_XT_DURATION = 34, /* u64 microseconds */
  TEEX_XT_ABI = 35,      /* u32 Landlock ABI in force */
  TEEX_XT_TEXT = 36,     /* error text of FAIL, KV_REPLY */
  TEEX_XT_KV_OP = 40,    /* u32 enum teex_ds_op (GET SET DEL CAS INCR SCAN) */
  TEEX_XT_KV_FLAGS = 41, /* u32 TEEX_DS_IF_* / KEEP_TTL / EXPECT_ABSENT */
  TEEX_XT_KV_KEY = 42,   /* the key (SCAN: the prefix), without namespace */
  TEEX_XT_KV_VALUE = 43, /* SET/CAS new value; reply: GET value */
  TEEX_XT_KV_EXPECT = 44,
  TEEX_XT_KV_DELTA = 45,    /* u64 (two's complement) */
  TEEX_XT_KV_TTL = 46,      /* u64 ms */
  TEEX_XT_KV_AFTER = 47,    /* SCAN cursor */
  TEEX_XT_KV_LIMIT = 48,    /* u32 SCAN page size */
  TEEX_XT_KV_STATUS = 49,   /* u32: 0 or a TEEX_E* code (two's complement) */
  TEEX_XT_KV_FOUND = 50,    /* u32 0/1 */
  TEEX_XT_KV_NUM = 51,      /* u64 (two's complement) */
  TEEX_XT_KV_MORE = 52,     /* u32 0/1 */
  TEEX_XT_KV_ITEM_KEY = 53, /* repeated, each followed by KV_ITEM_VALUE */
  TEEX_XT_KV_ITEM_VALUE = 54,
  TEEX_XT_KV_RESULT = 55, /* u32: the command's outcome (teex_ds_result) */
};

/* Largest body a message of this type may have; 0 for an unknown type. */
size_t teex_xmsg_body_max(unsigned type);

/* Checks a header: magic, version, known type, reserved zero, length within
 * the type's maximum. TEEX_EPROTO / TEEX_ETOOBIG. */
int teex_xmsg_header_parse(const uint8_t hdr[TEEX_XMSG_HDR], unsigned *type,
                           uint32_t *body_len);

/* Field iteration over a body. Returns 1 with the next field, 0 at the end,
 * TEEX_ETRUNC when a field runs past the body. Pointers borrow the body. */
struct teex_xmsg_it {
  const uint8_t *p;
  size_t left;
};
void teex_xmsg_it_init(struct teex_xmsg_it *it, const uint8_t *body,
                       size_t len);
int teex_xmsg_next(struct teex_xmsg_it *it, unsigned *tag, const uint8_t **v,
                   uint32_t *vlen);

/* Encoding into a bounded buffer: begin (header placeholder), fields, end
 * (fills in the length). Errors from teex_buf (TEEX_ETOOBIG/ENOMEM). */
int teex_xmsg_begin(struct teex_buf *b, unsigned type);
int teex_xmsg_put(struct teex_buf *b, unsigned tag, const void *v, size_t n);
int teex_xmsg_put_u32(struct teex_buf *b, unsigned tag, uint32_t v);
int teex_xmsg_put_u64(struct teex_buf *b, unsigned tag, uint64_t v);
int teex_xmsg_put_str(struct teex_buf *b, unsigned tag, const char *s);
int teex_xmsg_end(struct teex_buf *b);

/* TASK. Strings are copied (NUL-terminated); input and datasets borrow the
 * body. Datasets: (DATA_NAME, DATA) pairs in order, names 1..64 bytes,
 * unique, at most TEEX_EXEC_DATASETS_MAX pairs and TEEX_EXEC_DATA_MAX bytes
 * of data in all. */
struct teex_xtask {
  char task_id[TEEX_EXEC_ID_MAX + 1];
  char service_id[TEEX_EXEC_ID_MAX + 1];
  char caller[TEEX_EXEC_ID_MAX + 1];
  const uint8_t *input;
  size_t input_len;
  uint32_t wall_ms;
  uint32_t output_max; /* 0: the executor's bound */
  struct {
    char name[TEEX_EXEC_DATA_NAME_MAX + 1];
    const uint8_t *data; /* borrows the body */
    size_t len;
  } data[TEEX_EXEC_DATASETS_MAX];
  size_t n_data;
};
int teex_xmsg_encode_task(struct teex_buf *b, const struct teex_task_ctx *ctx,
                          const uint8_t *input, size_t input_len);
int teex_xmsg_decode_task(const uint8_t *body, size_t len, struct teex_xtask *t,
                          struct teex_err *err);
/* The caller's side of the dataset bounds above (count, names 1..64 bytes
 * and unique, total size): 0, TEEX_ETOOBIG or TEEX_EINVAL. */
int teex_xmsg_check_datasets(const struct teex_task_ctx *ctx);

/* RESULT. Pointers borrow the body; text fields are not NUL-terminated. */
struct teex_xresult {
  uint32_t status;
  const uint8_t *output;
  size_t output_len;
  const uint8_t *logs;
  size_t logs_len;
  const uint8_t *error;
  size_t error_len;
  uint64_t duration_us;
};
int teex_xmsg_encode_result(struct teex_buf *b, const struct teex_xresult *r);
int teex_xmsg_decode_result(const uint8_t *body, size_t len,
                            struct teex_xresult *r, struct teex_err *err);

/* LOAD: a whole image. decode validates every path (relative, no "..", no
 * empty or "." segment, no NUL, no backslash, at most TEEX_IMAGE_PATH_MAX),
 * the counts and sizes of image.h, duplicate paths, and that the entry file
 * exists. *out is owned by the caller (teex_image_free). */
int teex_xmsg_encode_image(struct teex_buf *b, const struct teex_image *img);
int teex_xmsg_decode_image(const uint8_t *body, size_t len,
                           struct teex_image **out, struct teex_err *err);

/* KV: one teex.kv call. decode checks the operation (GET SET DEL CAS INCR
 * SCAN only), the flags, the key (1..TEEX_EXEC_KV_KEY_MAX bytes; a SCAN
 * prefix may be empty), value sizes (TEEX_EXEC_KV_VALUE_MAX), the TTL
 * (TEEX_DS_TTL_MAX_MS) and the SCAN page size (1..TEEX_EXEC_KV_SCAN_MAX).
 * The command's pointers borrow the body; its grant is NULL. */
int teex_xmsg_encode_kv(struct teex_buf *b, const struct teex_ds_cmd *cmd);
int teex_xmsg_decode_kv(const uint8_t *body, size_t len,
                        struct teex_ds_cmd *cmd, struct teex_err *err);
/* True when the operation writes (SET DEL CAS INCR). */
int teex_xmsg_kv_writes(unsigned op);

/* KV_REPLY: rc is 0 (then res holds the command's outcome) or the error
 * that stopped the call (text says why; res may be NULL). A reply too
 * large for the frame (a SCAN page of big values) is cut to the items that
 * fit, with more = 1. decode borrows the body. */
struct teex_xkv_reply {
  int32_t rc;     /* the call: 0 or a TEEX_E* code */
  int32_t status; /* the command's outcome (teex_ds_result.status) */
  int found;
  const uint8_t *val;
  size_t val_len;
  int64_t num;
  int more;
  struct teex_ds_pair items[TEEX_EXEC_KV_SCAN_MAX];
  size_t n_items;
  char text[256];
};
int teex_xmsg_encode_kv_reply(struct teex_buf *b, int rc,
                              const struct teex_ds_result *res,
                              const char *text);
int teex_xmsg_decode_kv_reply(const uint8_t *body, size_t len,
                              struct teex_xkv_reply *r, struct teex_err *err);

/* READY / FAIL bodies. */
int teex_xmsg_decode_u32(const uint8_t *body, size_t len, unsigned tag,
                         uint32_t *v);
/* Copies field `tag` as text (cut to cap-1 bytes, NUL-terminated). Returns 0
 * or TEEX_ENOTFOUND / TEEX_ETRUNC. */
int teex_xmsg_decode_text(const uint8_t *body, size_t len, unsigned tag,
                          char *out, size_t cap);

/* Blocking I/O with a deadline (milliseconds from now; <0 = none). recv
 * fills body (reset first, max = the type's maximum) and *type. TEEX_ECLOSED
 * on EOF before a header, TEEX_ETIMEDOUT, TEEX_EIO, header errors. */
int teex_xmsg_send(int fd, const uint8_t *frame, size_t len, int timeout_ms);
int teex_xmsg_recv(int fd, unsigned *type, struct teex_buf *body,
                   int timeout_ms, struct teex_err *err);

#endif
