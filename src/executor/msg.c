/* The executor's task channel protocol (see msg.h). */
#include "executor/msg.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Room for the small fields of a message beside its payload. */
#define XMSG_SMALL_MAX 4096u
/* A LOAD carries every file plus a path and two field headers per file. */
#define XMSG_LOAD_MAX                                                          \
  ((size_t)TEEX_IMAGE_TOTAL_MAX +                                              \
   (size_t)TEEX_IMAGE_FILES_MAX *                                              \
       (2 * TEEX_XMSG_FIELD_HDR + TEEX_IMAGE_PATH_MAX) +                       \
   TEEX_IMAGE_DESC_MAX + XMSG_SMALL_MAX)

size_t teex_xmsg_body_max(unsigned type) {
  switch (type) {
  case TEEX_XMSG_LOAD:
    return XMSG_LOAD_MAX;
  case TEEX_XMSG_TASK:
    return (size_t)TEEX_EXEC_INPUT_MAX + TEEX_EXEC_DATA_MAX +
           (size_t)TEEX_EXEC_DATASETS_MAX *
               (2 * TEEX_XMSG_FIELD_HDR + TEEX_EXEC_DATA_NAME_MAX) +
           XMSG_SMALL_MAX;
  case TEEX_XMSG_RESULT:
    return (size_t)TEEX_EXEC_OUTPUT_MAX + XMSG_SMALL_MAX;
  case TEEX_XMSG_KV:
    return 2 * (size_t)TEEX_EXEC_KV_VALUE_MAX + 2 * TEEX_EXEC_KV_KEY_MAX +
           XMSG_SMALL_MAX;
  case TEEX_XMSG_KV_REPLY:
    return (size_t)TEEX_EXEC_KV_VALUE_MAX +
           (size_t)TEEX_EXEC_KV_SCAN_MAX *
               (2 * TEEX_XMSG_FIELD_HDR + TEEX_DS_KEY_MAX +
                TEEX_EXEC_KV_VALUE_MAX) +
           XMSG_SMALL_MAX;
  case TEEX_XMSG_READY:
  case TEEX_XMSG_FAIL:
  case TEEX_XMSG_STOP:
    return XMSG_SMALL_MAX;
  default:
    return 0;
  }
}

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

int teex_xmsg_header_parse(const uint8_t hdr[TEEX_XMSG_HDR], unsigned *type,
                           uint32_t *body_len) {
  if (hdr[0] != TEEX_XMSG_MAGIC || hdr[3] != 0)
    return TEEX_EPROTO;
  if (hdr[1] != TEEX_XMSG_VERSION)
    return TEEX_EVERSION;
  size_t max = teex_xmsg_body_max(hdr[2]);
  if (max == 0)
    return TEEX_EPROTO;
  uint32_t len = get_be32(hdr + 4);
  if (len > max)
    return TEEX_ETOOBIG;
  *type = hdr[2];
  *body_len = len;
  return 0;
}

void teex_xmsg_it_init(struct teex_xmsg_it *it, const uint8_t *body,
                       size_t len) {
  it->p = body;
  it->left = len;
}

int teex_xmsg_next(struct teex_xmsg_it *it, unsigned *tag, const uint8_t **v,
                   uint32_t *vlen) {
  if (it->left == 0)
    return 0;
  if (it->left < TEEX_XMSG_FIELD_HDR)
    return TEEX_ETRUNC;
  uint32_t n = get_be32(it->p + 1);
  if (n > it->left - TEEX_XMSG_FIELD_HDR)
    return TEEX_ETRUNC;
  *tag = it->p[0];
  *v = it->p + TEEX_XMSG_FIELD_HDR;
  *vlen = n;
  it->p += TEEX_XMSG_FIELD_HDR + n;
  it->left -= TEEX_XMSG_FIELD_HDR + n;
  return 1;
}

int teex_xmsg_begin(struct teex_buf *b, unsigned type) {
  uint8_t hdr[TEEX_XMSG_HDR] = {
      TEEX_XMSG_MAGIC, TEEX_XMSG_VERSION, (uint8_t)type, 0, 0, 0, 0, 0};
  teex_buf_reset(b);
  return teex_buf_append(b, hdr, sizeof hdr);
}

int teex_xmsg_put(struct teex_buf *b, unsigned tag, const void *v, size_t n) {
  if (n > UINT32_MAX)
    return TEEX_ETOOBIG;
  uint8_t fh[TEEX_XMSG_FIELD_HDR];
  fh[0] = (uint8_t)tag;
  put_be32(fh + 1, (uint32_t)n);
  size_t mark = b->len;
  int rc = teex_buf_append(b, fh, sizeof fh);
  if (rc == 0 && n > 0)
    rc = teex_buf_append(b, v, n);
  if (rc != 0)
    b->len = mark;
  return rc;
}

int teex_xmsg_put_u32(struct teex_buf *b, unsigned tag, uint32_t v) {
  uint8_t p[4];
  put_be32(p, v);
  return teex_xmsg_put(b, tag, p, 4);
}

int teex_xmsg_put_u64(struct teex_buf *b, unsigned tag, uint64_t v) {
  uint8_t p[8];
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
  return teex_xmsg_put(b, tag, p, 8);
}

int teex_xmsg_put_str(struct teex_buf *b, unsigned tag, const char *s) {
  return teex_xmsg_put(b, tag, s ? s : "", s ? strlen(s) : 0);
}

int teex_xmsg_end(struct teex_buf *b) {
  if (b->len < TEEX_XMSG_HDR)
    return TEEX_EINVAL;
  size_t body = b->len - TEEX_XMSG_HDR;
  if (body > teex_xmsg_body_max(b->data[2]))
    return TEEX_ETOOBIG;
  put_be32(b->data + 4, (uint32_t)body);
  return 0;
}

/* ---- field helpers for decoders ---- */

static int field_u32(const uint8_t *v, uint32_t n, uint32_t *out) {
  if (n != 4)
    return TEEX_EFORMAT;
  *out = get_be32(v);
  return 0;
}

/* Copies a text field that must fit in cap-1 bytes and hold no NUL. */
static int field_str(const uint8_t *v, uint32_t n, char *out, size_t cap) {
  if (n >= cap || memchr(v, 0, n) != NULL)
    return TEEX_EFORMAT;
  memcpy(out, v, n);
  out[n] = 0;
  return 0;
}

/* Records that singular field `tag` (< 64) was seen; refuses a repeat. */
static int seen_once(uint64_t *seen, unsigned tag) {
  uint64_t bit = (uint64_t)1 << (tag & 63);
  if (*seen & bit)
    return TEEX_EFORMAT;
  *seen |= bit;
  return 0;
}

/* ---- TASK ---- */

int teex_xmsg_encode_task(struct teex_buf *b, const struct teex_task_ctx *ctx,
                          const uint8_t *input, size_t input_len) {
  if (input_len > TEEX_EXEC_INPUT_MAX)
    return TEEX_ETOOBIG;
  const char *ids[3] = {ctx ? ctx->task_id : NULL, ctx ? ctx->service_id : NULL,
                        ctx ? ctx->caller : NULL};
  for (int i = 0; i < 3; i++)
    if (ids[i] != NULL && strlen(ids[i]) > TEEX_EXEC_ID_MAX)
      return TEEX_ETOOBIG;
  int rc = teex_xmsg_begin(b, TEEX_XMSG_TASK);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_TASK_ID, ids[0]);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_SERVICE_ID, ids[1]);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_CALLER, ids[2]);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_WALL_MS, ctx ? ctx->wall_ms : 0);
  if (rc == 0)
    rc = teex_xmsg_put(b, TEEX_XT_INPUT, input, input_len);
  if (rc == 0 && ctx != NULL && ctx->output_max > 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_OUTPUT_MAX, ctx->output_max);
  for (size_t i = 0; rc == 0 && ctx != NULL && i < ctx->n_datasets; i++) {
    rc = teex_xmsg_put_str(b, TEEX_XT_DATA_NAME, ctx->datasets[i].name);
    if (rc == 0)
      rc = teex_xmsg_put(b, TEEX_XT_DATA, ctx->datasets[i].data,
                         ctx->datasets[i].len);
  }
  if (rc == 0)
    rc = teex_xmsg_end(b);
  return rc;
}

/* Checks a task's datasets before anything is encoded. */
int teex_xmsg_check_datasets(const struct teex_task_ctx *ctx) {
  size_t total = 0;
  if (ctx == NULL || ctx->n_datasets == 0)
    return 0;
  if (ctx->n_datasets > TEEX_EXEC_DATASETS_MAX || ctx->datasets == NULL)
    return TEEX_ETOOBIG;
  for (size_t i = 0; i < ctx->n_datasets; i++) {
    const char *nm = ctx->datasets[i].name;
    size_t nl = nm ? strnlen(nm, TEEX_EXEC_DATA_NAME_MAX + 1) : 0;
    if (nl == 0 || nl > TEEX_EXEC_DATA_NAME_MAX)
      return TEEX_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(ctx->datasets[j].name, nm) == 0)
        return TEEX_EINVAL;
    if (ctx->datasets[i].len > TEEX_EXEC_DATA_MAX - total)
      return TEEX_ETOOBIG;
    total += ctx->datasets[i].len;
  }
  return 0;
}

int teex_xmsg_decode_task(const uint8_t *body, size_t len, struct teex_xtask *t,
                          struct teex_err *err) {
  memset(t, 0, sizeof *t);
  t->input = (const uint8_t *)"";
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  uint64_t seen = 0;
  unsigned tag;
  const uint8_t *v;
  uint32_t n;
  int rc, want_data = 0;
  size_t data_total = 0;
  while ((rc = teex_xmsg_next(&it, &tag, &v, &n)) == 1) {
    /* A dataset name must be followed by its data, and data by nothing
     * but a name. */
    if ((want_data && tag != TEEX_XT_DATA) ||
        (!want_data && tag == TEEX_XT_DATA))
      return teex_err_set(err, TEEX_EFORMAT,
                          "task: dataset fields out of "
                          "order");
    if (tag != TEEX_XT_DATA_NAME && tag != TEEX_XT_DATA &&
        seen_once(&seen, tag) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "task: repeated field %u", tag);
    rc = 0;
    switch (tag) {
    case TEEX_XT_DATA_NAME:
      if (t->n_data == TEEX_EXEC_DATASETS_MAX) {
        rc = TEEX_ETOOBIG;
        break;
      }
      rc = field_str(v, n, t->data[t->n_data].name,
                     sizeof t->data[t->n_data].name);
      if (rc == 0 && n == 0)
        rc = TEEX_EFORMAT;
      for (size_t j = 0; rc == 0 && j < t->n_data; j++)
        if (strcmp(t->data[j].name, t->data[t->n_data].name) == 0)
          rc = TEEX_EFORMAT; /* names are unique */
      want_data = 1;
      break;
    case TEEX_XT_DATA:
      if (n > TEEX_EXEC_DATA_MAX - data_total) {
        rc = TEEX_ETOOBIG;
        break;
      }
      data_total += n;
      t->data[t->n_data].data = v;
      t->data[t->n_data].len = n;
      t->n_data++;
      want_data = 0;
      break;
    case TEEX_XT_OUTPUT_MAX:
      rc = field_u32(v, n, &t->output_max);
      break;
    case TEEX_XT_TASK_ID:
      rc = field_str(v, n, t->task_id, sizeof t->task_id);
      break;
    case TEEX_XT_SERVICE_ID:
      rc = field_str(v, n, t->service_id, sizeof t->service_id);
      break;
    case TEEX_XT_CALLER:
      rc = field_str(v, n, t->caller, sizeof t->caller);
      break;
    case TEEX_XT_WALL_MS:
      rc = field_u32(v, n, &t->wall_ms);
      break;
    case TEEX_XT_INPUT:
      if (n > TEEX_EXEC_INPUT_MAX)
        rc = TEEX_ETOOBIG;
      t->input = v;
      t->input_len = n;
      break;
    default:
      rc = TEEX_EFORMAT;
    }
    if (rc != 0)
      return teex_err_set(err, rc, "task: bad field %u", tag);
  }
  if (rc < 0)
    return teex_err_set(err, rc, "task: truncated field");
  if (want_data)
    return teex_err_set(err, TEEX_EFORMAT, "task: dataset name without data");
  return 0;
}

/* ---- RESULT ---- */

int teex_xmsg_encode_result(struct teex_buf *b, const struct teex_xresult *r) {
  int rc = teex_xmsg_begin(b, TEEX_XMSG_RESULT);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_STATUS, r->status);
  if (rc == 0 && r->output_len > 0)
    rc = teex_xmsg_put(b, TEEX_XT_OUTPUT, r->output, r->output_len);
  if (rc == 0 && r->logs_len > 0)
    rc = teex_xmsg_put(b, TEEX_XT_LOGS, r->logs, r->logs_len);
  if (rc == 0 && r->error_len > 0)
    rc = teex_xmsg_put(b, TEEX_XT_ERROR, r->error, r->error_len);
  if (rc == 0 && r->duration_us > 0)
    rc = teex_xmsg_put_u64(b, TEEX_XT_DURATION, r->duration_us);
  if (rc == 0)
    rc = teex_xmsg_end(b);
  return rc;
}

int teex_xmsg_decode_result(const uint8_t *body, size_t len,
                            struct teex_xresult *r, struct teex_err *err) {
  memset(r, 0, sizeof *r);
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  uint64_t seen = 0;
  unsigned tag;
  const uint8_t *v;
  uint32_t n;
  int rc, have_status = 0;
  while ((rc = teex_xmsg_next(&it, &tag, &v, &n)) == 1) {
    if (seen_once(&seen, tag) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "result: repeated field %u", tag);
    rc = 0;
    switch (tag) {
    case TEEX_XT_STATUS:
      rc = field_u32(v, n, &r->status);
      if (rc == 0 && r->status > TEEX_TASK_CRASHED)
        rc = TEEX_EFORMAT;
      have_status = 1;
      break;
    case TEEX_XT_OUTPUT:
      r->output = v;
      r->output_len = n;
      break;
    case TEEX_XT_LOGS:
      r->logs = v;
      r->logs_len = n;
      break;
    case TEEX_XT_ERROR:
      r->error = v;
      r->error_len = n;
      break;
    case TEEX_XT_DURATION:
      if (n != 8)
        rc = TEEX_EFORMAT;
      else
        r->duration_us = (uint64_t)get_be32(v) << 32 | get_be32(v + 4);
      break;
    default:
      rc = TEEX_EFORMAT;
    }
    if (rc != 0)
      return teex_err_set(err, rc, "result: bad field %u", tag);
  }
  if (rc < 0)
    return teex_err_set(err, rc, "result: truncated field");
  if (!have_status)
    return teex_err_set(err, TEEX_EFORMAT, "result: no status");
  if (r->output_len + r->logs_len + r->error_len > TEEX_EXEC_OUTPUT_MAX)
    return teex_err_set(err, TEEX_ETOOBIG, "result: too large");
  return 0;
}

/* ---- LOAD ---- */

int teex_xmsg_encode_image(struct teex_buf *b, const struct teex_image *img) {
  const struct teex_manifest *m = &img->manifest;
  if (img->nfiles > TEEX_IMAGE_FILES_MAX)
    return TEEX_ETOOBIG;
  int rc = teex_xmsg_begin(b, TEEX_XMSG_LOAD);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_NAME, m->name);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_VERSION, m->version);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_ENTRY, m->entry);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_DESCRIPTION, m->description);
  if (rc == 0)
    rc = teex_xmsg_put_str(b, TEEX_XT_PYTHON, m->python);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_STYLE, (uint32_t)m->style);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_STATELESS, m->stateless ? 1 : 0);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_FULLTB, m->full_tracebacks ? 1 : 0);
  if (rc == 0) {
    uint8_t l[20];
    put_be32(l, m->limits.cpu_ms);
    put_be32(l + 4, m->limits.wall_ms);
    put_be32(l + 8, m->limits.memory_mb);
    put_be32(l + 12, m->limits.output_bytes);
    put_be32(l + 16, m->limits.threads);
    rc = teex_xmsg_put(b, TEEX_XT_LIMITS, l, sizeof l);
  }
  for (size_t i = 0; rc == 0 && i < img->nfiles; i++) {
    rc = teex_xmsg_put_str(b, TEEX_XT_FILE_PATH, img->files[i].path);
    if (rc == 0)
      rc = teex_xmsg_put(b, TEEX_XT_FILE_DATA, img->files[i].data,
                         img->files[i].len);
  }
  if (rc == 0)
    rc = teex_xmsg_end(b);
  return rc;
}

/* A safe relative path inside an image: 'a/b.py', never '/x', '..', '.',
 * '' segments, backslashes or control characters. */
static int path_ok(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > TEEX_IMAGE_PATH_MAX || p[0] == '/')
    return 0;
  const char *seg = p;
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '/' || c == 0) {
      size_t sl = (size_t)(p + i - seg);
      if (sl == 0 || (sl == 1 && seg[0] == '.') ||
          (sl == 2 && seg[0] == '.' && seg[1] == '.'))
        return 0;
      seg = p + i + 1;
    } else if (c < 0x20 || c == 0x7f || c == '\\') {
      return 0;
    }
  }
  return 1;
}

static int cmp_files(const void *a, const void *b) {
  return strcmp(((const struct teex_image_file *)a)->path,
                ((const struct teex_image_file *)b)->path);
}

int teex_xmsg_decode_image(const uint8_t *body, size_t len,
                           struct teex_image **out, struct teex_err *err) {
  *out = NULL;
  /* Count the files first so the array is allocated once, bounded. */
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  unsigned tag;
  const uint8_t *v;
  uint32_t n;
  int rc;
  size_t nfiles = 0;
  while ((rc = teex_xmsg_next(&it, &tag, &v, &n)) == 1)
    if (tag == TEEX_XT_FILE_PATH && ++nfiles > TEEX_IMAGE_FILES_MAX)
      return teex_err_set(err, TEEX_ETOOBIG, "image: more than %u files",
                          TEEX_IMAGE_FILES_MAX);
  if (rc < 0)
    return teex_err_set(err, rc, "image: truncated field");

  struct teex_image *img = calloc(1, sizeof *img);
  if (img == NULL)
    return teex_err_set(err, TEEX_ENOMEM, "image: out of memory");
  if (nfiles > 0) {
    img->files = calloc(nfiles, sizeof *img->files);
    if (img->files == NULL) {
      free(img);
      return teex_err_set(err, TEEX_ENOMEM, "image: out of memory");
    }
  }
  struct teex_manifest *m = &img->manifest;
  uint64_t seen = 0;
  size_t total = 0;
  int want_data = 0;
  teex_xmsg_it_init(&it, body, len);
  while ((rc = teex_xmsg_next(&it, &tag, &v, &n)) == 1) {
    uint32_t u = 0;
    if (tag != TEEX_XT_FILE_PATH && tag != TEEX_XT_FILE_DATA &&
        seen_once(&seen, tag) != 0) {
      rc = teex_err_set(err, TEEX_EFORMAT, "image: repeated field %u", tag);
      goto fail;
    }
    if (want_data != (tag == TEEX_XT_FILE_DATA)) {
      rc = teex_err_set(err, TEEX_EFORMAT, "image: file data out of order");
      goto fail;
    }
    rc = 0;
    switch (tag) {
    case TEEX_XT_NAME:
      rc = field_str(v, n, m->name, sizeof m->name);
      break;
    case TEEX_XT_VERSION:
      rc = field_str(v, n, m->version, sizeof m->version);
      break;
    case TEEX_XT_ENTRY:
      rc = field_str(v, n, m->entry, sizeof m->entry);
      break;
    case TEEX_XT_DESCRIPTION:
      rc = field_str(v, n, m->description, sizeof m->description);
      break;
    case TEEX_XT_PYTHON:
      rc = field_str(v, n, m->python, sizeof m->python);
      break;
    case TEEX_XT_STYLE:
      rc = field_u32(v, n, &u);
      if (rc == 0 && u > TEEX_STYLE_SCRIPT)
        rc = TEEX_EFORMAT;
      m->style = (enum teex_service_style)u;
      break;
    case TEEX_XT_STATELESS:
      rc = field_u32(v, n, &u);
      m->stateless = u != 0;
      break;
    case TEEX_XT_FULLTB:
      rc = field_u32(v, n, &u);
      m->full_tracebacks = u != 0;
      break;
    case TEEX_XT_LIMITS:
      if (n != 20) {
        rc = TEEX_EFORMAT;
        break;
      }
      m->limits.cpu_ms = get_be32(v);
      m->limits.wall_ms = get_be32(v + 4);
      m->limits.memory_mb = get_be32(v + 8);
      m->limits.output_bytes = get_be32(v + 12);
      m->limits.threads = get_be32(v + 16);
      break;
    case TEEX_XT_FILE_PATH: {
      struct teex_image_file *f = &img->files[img->nfiles];
      if (n > TEEX_IMAGE_PATH_MAX || memchr(v, 0, n) != NULL) {
        rc = TEEX_EFORMAT;
        break;
      }
      f->path = malloc(n + 1);
      if (f->path == NULL) {
        rc = TEEX_ENOMEM;
        break;
      }
      memcpy(f->path, v, n);
      f->path[n] = 0;
      img->nfiles++;
      if (!path_ok(f->path)) {
        rc = teex_err_set(err, TEEX_EFORMAT, "image: unsafe file path");
        goto fail;
      }
      want_data = 1;
      break;
    }
    case TEEX_XT_FILE_DATA: {
      struct teex_image_file *f = &img->files[img->nfiles - 1];
      want_data = 0;
      if (n > TEEX_IMAGE_FILE_SIZE_MAX || total + n > TEEX_IMAGE_TOTAL_MAX) {
        rc = TEEX_ETOOBIG;
        break;
      }
      total += n;
      f->data = malloc(n ? n : 1);
      if (f->data == NULL) {
        rc = TEEX_ENOMEM;
        break;
      }
      if (n > 0)
        memcpy(f->data, v, n);
      f->len = n;
      break;
    }
    default:
      rc = TEEX_EFORMAT;
    }
    if (rc != 0) {
      rc = teex_err_set(err, rc, "image: bad field %u", tag);
      goto fail;
    }
  }
  if (rc < 0) {
    rc = teex_err_set(err, rc, "image: truncated field");
    goto fail;
  }
  if (want_data) {
    rc = teex_err_set(err, TEEX_EFORMAT, "image: file without data");
    goto fail;
  }
  if (img->nfiles > 1)
    qsort(img->files, img->nfiles, sizeof *img->files, cmp_files);
  for (size_t i = 1; i < img->nfiles; i++) {
    if (strcmp(img->files[i - 1].path, img->files[i].path) == 0) {
      rc = teex_err_set(err, TEEX_EFORMAT, "image: duplicate file path");
      goto fail;
    }
  }
  if (m->entry[0] == 0 || teex_image_find(img, m->entry) == NULL) {
    rc = teex_err_set(err, TEEX_EFORMAT, "image: entry file missing");
    goto fail;
  }
  *out = img;
  return 0;
fail:
  teex_image_free(img);
  return rc;
}

/* ---- KV / KV_REPLY ---- */

static int field_u64(const uint8_t *v, uint32_t n, uint64_t *out) {
  if (n != 8)
    return TEEX_EFORMAT;
  *out = (uint64_t)get_be32(v) << 32 | get_be32(v + 4);
  return 0;
}

int teex_xmsg_kv_writes(unsigned op) {
  return op == TEEX_DS_SET || op == TEEX_DS_DEL || op == TEEX_DS_CAS ||
         op == TEEX_DS_INCR;
}

#define KV_FLAGS_ALL                                                           \
  (TEEX_DS_IF_ABSENT | TEEX_DS_IF_PRESENT | TEEX_DS_KEEP_TTL |                 \
   TEEX_DS_EXPECT_ABSENT)

/* The bounds both sides check: see msg.h. */
static int kv_check(const struct teex_ds_cmd *c) {
  if (c->op != TEEX_DS_GET && c->op != TEEX_DS_SCAN &&
      !teex_xmsg_kv_writes(c->op))
    return TEEX_EINVAL;
  if ((c->flags & ~KV_FLAGS_ALL) != 0)
    return TEEX_EINVAL;
  if (c->key_len > TEEX_EXEC_KV_KEY_MAX ||
      c->after_len > TEEX_EXEC_KV_KEY_MAX ||
      c->val_len > TEEX_EXEC_KV_VALUE_MAX ||
      c->expect_len > TEEX_EXEC_KV_VALUE_MAX)
    return TEEX_ETOOBIG;
  if (c->key_len == 0 && c->op != TEEX_DS_SCAN)
    return TEEX_EINVAL;
  if (c->ttl_ms > TEEX_DS_TTL_MAX_MS)
    return TEEX_EINVAL;
  if (c->op == TEEX_DS_SCAN &&
      (c->limit == 0 || c->limit > TEEX_EXEC_KV_SCAN_MAX))
    return TEEX_EINVAL;
  return 0;
}

int teex_xmsg_encode_kv(struct teex_buf *b, const struct teex_ds_cmd *c) {
  int rc = kv_check(c);
  if (rc == 0)
    rc = teex_xmsg_begin(b, TEEX_XMSG_KV);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_KV_OP, c->op);
  if (rc == 0 && c->flags)
    rc = teex_xmsg_put_u32(b, TEEX_XT_KV_FLAGS, c->flags);
  if (rc == 0)
    rc = teex_xmsg_put(b, TEEX_XT_KV_KEY, c->key, c->key_len);
  if (rc == 0 && (c->op == TEEX_DS_SET || c->op == TEEX_DS_CAS))
    rc = teex_xmsg_put(b, TEEX_XT_KV_VALUE, c->val, c->val_len);
  if (rc == 0 && c->op == TEEX_DS_CAS)
    rc = teex_xmsg_put(b, TEEX_XT_KV_EXPECT, c->expect, c->expect_len);
  if (rc == 0 && c->op == TEEX_DS_INCR)
    rc = teex_xmsg_put_u64(b, TEEX_XT_KV_DELTA, (uint64_t)c->delta);
  if (rc == 0 && c->ttl_ms)
    rc = teex_xmsg_put_u64(b, TEEX_XT_KV_TTL, c->ttl_ms);
  if (rc == 0 && c->op == TEEX_DS_SCAN) {
    rc = teex_xmsg_put(b, TEEX_XT_KV_AFTER, c->after, c->after_len);
    if (rc == 0)
      rc = teex_xmsg_put_u32(b, TEEX_XT_KV_LIMIT, c->limit);
  }
  if (rc == 0)
    rc = teex_xmsg_end(b);
  return rc;
}

int teex_xmsg_decode_kv(const uint8_t *body, size_t len, struct teex_ds_cmd *c,
                        struct teex_err *err) {
  memset(c, 0, sizeof *c);
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  uint64_t seen = 0, u64 = 0;
  uint32_t u = 0;
  unsigned tag;
  const uint8_t *v;
  uint32_t n;
  int rc, have_op = 0, have_key = 0;
  while ((rc = teex_xmsg_next(&it, &tag, &v, &n)) == 1) {
    if (seen_once(&seen, tag) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "kv: repeated field %u", tag);
    rc = 0;
    switch (tag) {
    case TEEX_XT_KV_OP:
      rc = field_u32(v, n, &u);
      if (rc == 0 && u > 255)
        rc = TEEX_EINVAL;
      c->op = (uint8_t)u;
      have_op = 1;
      break;
    case TEEX_XT_KV_FLAGS:
      rc = field_u32(v, n, &u);
      if (rc == 0 && u > 255)
        rc = TEEX_EINVAL;
      c->flags = (uint8_t)u;
      break;
    case TEEX_XT_KV_KEY:
      c->key = v;
      c->key_len = n;
      have_key = 1;
      break;
    case TEEX_XT_KV_VALUE:
      c->val = v;
      c->val_len = n;
      break;
    case TEEX_XT_KV_EXPECT:
      c->expect = v;
      c->expect_len = n;
      break;
    case TEEX_XT_KV_DELTA:
      rc = field_u64(v, n, &u64);
      c->delta = (int64_t)u64;
      break;
    case TEEX_XT_KV_TTL:
      rc = field_u64(v, n, &c->ttl_ms);
      break;
    case TEEX_XT_KV_AFTER:
      c->after = v;
      c->after_len = n;
      break;
    case TEEX_XT_KV_LIMIT:
      rc = field_u32(v, n, &c->limit);
      break;
    default:
      rc = TEEX_EFORMAT;
    }
    if (rc != 0)
      return teex_err_set(err, rc, "kv: bad field %u", tag);
  }
  if (rc < 0)
    return teex_err_set(err, rc, "kv: truncated field");
  if (!have_op || !have_key)
    return teex_err_set(err, TEEX_EFORMAT, "kv: no operation or key");
  rc = kv_check(c);
  if (rc != 0)
    return teex_err_set(err, rc, "kv: operation %u out of bounds", c->op);
  return 0;
}

int teex_xmsg_encode_kv_reply(struct teex_buf *b, int call_rc,
                              const struct teex_ds_result *res,
                              const char *text) {
  int rc = teex_xmsg_begin(b, TEEX_XMSG_KV_REPLY);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_KV_STATUS, (uint32_t)(int32_t)call_rc);
  if (rc == 0 && call_rc != 0 && text != NULL)
    rc = teex_xmsg_put(b, TEEX_XT_TEXT, text, strnlen(text, 255));
  if (rc != 0 || call_rc != 0 || res == NULL)
    return rc != 0 ? rc : teex_xmsg_end(b);
  /* The command's outcome travels as a second status beside the call's. */
  rc = teex_xmsg_put_u32(b, TEEX_XT_KV_RESULT, (uint32_t)(int32_t)res->status);
  if (rc == 0)
    rc = teex_xmsg_put_u32(b, TEEX_XT_KV_FOUND, res->found ? 1 : 0);
  if (rc == 0 && res->val != NULL)
    rc = res->val_len > TEEX_EXEC_KV_VALUE_MAX
             ? TEEX_ETOOBIG
             : teex_xmsg_put(b, TEEX_XT_KV_VALUE, res->val, res->val_len);
  if (rc == 0)
    rc = teex_xmsg_put_u64(b, TEEX_XT_KV_NUM, (uint64_t)res->num);
  int more = res->more;
  for (size_t i = 0; rc == 0 && i < res->n_items; i++) {
    const struct teex_ds_pair *p = &res->items[i];
    size_t mark = b->len;
    if (i >= TEEX_EXEC_KV_SCAN_MAX || p->key_len > TEEX_DS_KEY_MAX ||
        p->val_len > TEEX_EXEC_KV_VALUE_MAX) {
      more = 1; /* the rest on the next page, from the last key sent */
      break;
    }
    rc = teex_xmsg_put(b, TEEX_XT_KV_ITEM_KEY, p->key, p->key_len);
    if (rc == 0)
      rc = teex_xmsg_put(b, TEEX_XT_KV_ITEM_VALUE, p->val, p->val_len);
    if (rc == TEEX_ETOOBIG && i > 0) {
      b->len = mark;
      more = 1;
      rc = 0;
      break;
    }
  }
  if (rc == 0 && more)
    rc = teex_xmsg_put_u32(b, TEEX_XT_KV_MORE, 1);
  if (rc == 0)
    rc = teex_xmsg_end(b);
  return rc;
}

int teex_xmsg_decode_kv_reply(const uint8_t *body, size_t len,
                              struct teex_xkv_reply *r, struct teex_err *err) {
  memset(r, 0, sizeof *r);
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  uint64_t seen = 0, u64 = 0;
  uint32_t u = 0;
  unsigned tag;
  const uint8_t *v;
  uint32_t n;
  int rc, have_status = 0, want_value = 0;
  while ((rc = teex_xmsg_next(&it, &tag, &v, &n)) == 1) {
    if (tag != TEEX_XT_KV_ITEM_KEY && tag != TEEX_XT_KV_ITEM_VALUE &&
        seen_once(&seen, tag) != 0)
      return teex_err_set(err, TEEX_EFORMAT, "kv reply: repeated field %u",
                          tag);
    rc = 0;
    switch (tag) {
    case TEEX_XT_KV_STATUS:
      rc = field_u32(v, n, &u);
      r->rc = (int32_t)u;
      if (rc == 0 && (r->rc > 0 || r->rc < -1000))
        rc = TEEX_EFORMAT;
      have_status = 1;
      break;
    case TEEX_XT_TEXT:
      rc = field_str(v, n, r->text, sizeof r->text);
      break;
    case TEEX_XT_KV_FOUND:
      rc = field_u32(v, n, &u);
      r->found = u != 0;
      break;
    case TEEX_XT_KV_RESULT:
      rc = field_u32(v, n, &u);
      r->status = (int32_t)u;
      if (rc == 0 && (r->status > 0 || r->status < -1000))
        rc = TEEX_EFORMAT;
      break;
    case TEEX_XT_KV_VALUE:
      if (n > TEEX_EXEC_KV_VALUE_MAX)
        rc = TEEX_ETOOBIG;
      r->val = v;
      r->val_len = n;
      break;
    case TEEX_XT_KV_NUM:
      rc = field_u64(v, n, &u64);
      r->num = (int64_t)u64;
      break;
    case TEEX_XT_KV_MORE:
      rc = field_u32(v, n, &u);
      r->more = u != 0;
      break;
    case TEEX_XT_KV_ITEM_KEY:
      if (want_value || r->n_items == TEEX_EXEC_KV_SCAN_MAX)
        rc = TEEX_EFORMAT;
      else if (n > TEEX_DS_KEY_MAX)
        rc = TEEX_ETOOBIG;
      else {
        r->items[r->n_items].key = v;
        r->items[r->n_items].key_len = n;
        want_value = 1;
      }
      break;
    case TEEX_XT_KV_ITEM_VALUE:
      if (!want_value)
        rc = TEEX_EFORMAT;
      else if (n > TEEX_EXEC_KV_VALUE_MAX)
        rc = TEEX_ETOOBIG;
      else {
        r->items[r->n_items].val = v;
        r->items[r->n_items++].val_len = n;
        want_value = 0;
      }
      break;
    default:
      rc = TEEX_EFORMAT;
    }
    if (rc != 0)
      return teex_err_set(err, rc, "kv reply: bad field %u", tag);
  }
  if (rc < 0)
    return teex_err_set(err, rc, "kv reply: truncated field");
  if (!have_status || want_value)
    return teex_err_set(err, TEEX_EFORMAT, "kv reply: incomplete");
  return 0;
}

int teex_xmsg_decode_u32(const uint8_t *body, size_t len, unsigned tag,
                         uint32_t *out) {
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  unsigned t;
  const uint8_t *v;
  uint32_t n;
  int rc;
  while ((rc = teex_xmsg_next(&it, &t, &v, &n)) == 1)
    if (t == tag)
      return field_u32(v, n, out);
  return rc < 0 ? rc : TEEX_ENOTFOUND;
}

int teex_xmsg_decode_text(const uint8_t *body, size_t len, unsigned tag,
                          char *out, size_t cap) {
  struct teex_xmsg_it it;
  teex_xmsg_it_init(&it, body, len);
  unsigned t;
  const uint8_t *v;
  uint32_t n;
  int rc;
  if (cap == 0)
    return TEEX_EINVAL;
  out[0] = 0;
  while ((rc = teex_xmsg_next(&it, &t, &v, &n)) == 1) {
    if (t != tag)
      continue;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(out, v, k);
    out[k] = 0;
    /* Text from a less trusted process: keep it printable, one line. */
    for (size_t i = 0; i < k; i++)
      if ((unsigned char)out[i] < 0x20 && out[i] != '\n')
        out[i] = '?';
    return 0;
  }
  return rc < 0 ? rc : TEEX_ENOTFOUND;
}

/* ---- blocking I/O with a deadline ---- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int t = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0)
        return TEEX_ETIMEDOUT;
      t = left > 1000000 ? 1000000 : (int)left;
    }
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, t);
    if (r > 0)
      return 0;
    if (r == 0)
      continue;
    if (errno != EINTR)
      return TEEX_EIO;
  }
}

int teex_xmsg_send(int fd, const uint8_t *frame, size_t len, int timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  size_t off = 0;
  while (off < len) {
    /* MSG_NOSIGNAL: a peer that went away is an error, not SIGPIPE. */
    ssize_t w = send(fd, frame + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK)
      w = write(fd, frame + off, len - off);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(fd, POLLOUT, deadline);
      if (rc != 0)
        return rc;
      continue;
    }
    return w < 0 && errno == EPIPE ? TEEX_ECLOSED : TEEX_EIO;
  }
  return 0;
}

static int read_full(int fd, uint8_t *p, size_t n, int64_t deadline,
                     int *got_any) {
  size_t off = 0;
  while (off < n) {
    int rc = wait_fd(fd, POLLIN, deadline);
    if (rc != 0)
      return rc;
    ssize_t r = read(fd, p + off, n - off);
    if (r > 0) {
      off += (size_t)r;
      *got_any = 1;
      continue;
    }
    if (r == 0)
      return TEEX_ECLOSED;
    if (errno != EINTR && errno != EAGAIN)
      return TEEX_EIO;
  }
  return 0;
}

int teex_xmsg_recv(int fd, unsigned *type, struct teex_buf *body,
                   int timeout_ms, struct teex_err *err) {
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  uint8_t hdr[TEEX_XMSG_HDR];
  int any = 0;
  int rc = read_full(fd, hdr, sizeof hdr, deadline, &any);
  if (rc == TEEX_ECLOSED && any)
    rc = TEEX_ETRUNC;
  if (rc != 0)
    return teex_err_set(err, rc, "channel: %s", teex_strerror(rc));
  uint32_t len;
  rc = teex_xmsg_header_parse(hdr, type, &len);
  if (rc != 0)
    return teex_err_set(err, rc, "channel: bad frame header: %s",
                        teex_strerror(rc));
  teex_buf_reset(body);
  body->max = teex_xmsg_body_max(*type);
  rc = teex_buf_reserve(body, len);
  if (rc != 0)
    return teex_err_set(err, rc, "channel: %s", teex_strerror(rc));
  rc = read_full(fd, body->data, len, deadline, &any);
  if (rc == TEEX_ECLOSED)
    rc = TEEX_ETRUNC;
  if (rc != 0)
    return teex_err_set(err, rc, "channel: %s", teex_strerror(rc));
  body->len = len;
  body->data[len] = 0;
  return 0;
}
