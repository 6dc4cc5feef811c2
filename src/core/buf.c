/* Bounded growable buffers (see include/teex/buf.h). */
#include "teex/buf.h"

#include "teex/error.h"
#include "teex/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void teex_buf_init(struct teex_buf *b, size_t max, unsigned flags) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
  b->flags = flags;
}

int teex_buf_reserve(struct teex_buf *b, size_t extra) {
  if (extra > b->max || b->len > b->max - extra)
    return TEEX_ETOOBIG;
  size_t need = b->len + extra + 1; /* room for a trailing NUL */
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  uint8_t *p;
  if (b->flags & TEEX_BUF_SECRET) {
    /* realloc could leave a copy of the secret in freed memory. */
    p = malloc(cap);
    if (p == NULL)
      return TEEX_ENOMEM;
    if (b->data != NULL) {
      memcpy(p, b->data, b->len);
      teex_wipe(b->data, b->cap);
      free(b->data);
    }
  } else {
    p = realloc(b->data, cap);
    if (p == NULL)
      return TEEX_ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int teex_buf_append(struct teex_buf *b, const void *p, size_t n) {
  int rc = teex_buf_reserve(b, n);
  if (rc != 0)
    return rc;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int teex_buf_append_str(struct teex_buf *b, const char *s) {
  return teex_buf_append(b, s, strlen(s));
}

int teex_buf_putc(struct teex_buf *b, uint8_t c) {
  return teex_buf_append(b, &c, 1);
}

int teex_buf_printf(struct teex_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return TEEX_EINVAL;
  int rc = teex_buf_reserve(b, (size_t)n);
  if (rc != 0)
    return rc;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void teex_buf_consume(struct teex_buf *b, size_t n) {
  if (n >= b->len) {
    teex_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  if (b->flags & TEEX_BUF_SECRET)
    teex_wipe(b->data + b->len - n, n);
  b->len -= n;
  b->data[b->len] = 0;
}

void teex_buf_reset(struct teex_buf *b) {
  if (b->data != NULL && (b->flags & TEEX_BUF_SECRET))
    teex_wipe(b->data, b->cap);
  b->len = 0;
  if (b->data != NULL)
    b->data[0] = 0;
}

void teex_buf_free(struct teex_buf *b) {
  if (b == NULL)
    return;
  if (b->data != NULL && (b->flags & TEEX_BUF_SECRET))
    teex_wipe(b->data, b->cap);
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

uint8_t *teex_buf_steal(struct teex_buf *b, size_t *len) {
  uint8_t *p = b->data;
  if (len != NULL)
    *len = b->len;
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  return p;
}
