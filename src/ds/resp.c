/* RESP2 codec (see resp.h). The parser keeps its progress through a
 * partly received request (how many arguments are parsed, where the next
 * one starts), so bytes trickling in one at a time cost no re-parsing. */
#include "ds/resp.h"

#include "teex/mem.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Argument offsets are relative to the start of the request (p->off), so
 * dropping the consumed prefix of the buffer does not move them. */
struct resp_progress {
  int in_mb;       /* inside a multibulk request */
  size_t mb_total; /* arguments it declared */
  size_t mb_argc;  /* arguments parsed so far */
  size_t mb_pos;   /* where the next argument's header starts (relative) */
  size_t declared; /* bytes declared so far (bulk lengths and framing) */
  size_t off[TEEX_RESP_ARGS_MAX];
  size_t len[TEEX_RESP_ARGS_MAX];
};

/* The progress lives beside the parser; allocated on first use. */
static struct resp_progress *progress(struct teex_resp_parser *p);

void teex_resp_parser_init(struct teex_resp_parser *p) {
  memset(p, 0, sizeof(*p));
}

void teex_resp_parser_free(struct teex_resp_parser *p) {
  if (p == NULL)
    return;
  if (p->buf != NULL) {
    teex_wipe(p->buf, p->len);
    free(p->buf);
  }
  free(p->prog);
  memset(p, 0, sizeof(*p));
}

static struct resp_progress *progress(struct teex_resp_parser *p) {
  if (p->prog == NULL)
    p->prog = calloc(1, sizeof(struct resp_progress));
  return p->prog;
}

size_t teex_resp_parser_pending(const struct teex_resp_parser *p) {
  return p->len - p->off;
}

int teex_resp_parser_feed(struct teex_resp_parser *p, const uint8_t *data,
                          size_t n) {
  if (p->off > 0) {
    memmove(p->buf, p->buf + p->off, p->len - p->off);
    p->len -= p->off;
    p->off = 0;
  }
  if (p->len > TEEX_RESP_REQUEST_MAX)
    return TEEX_ETOOBIG;
  if (p->len + n > p->cap) {
    size_t nc = p->cap ? p->cap : 4096;
    while (nc < p->len + n)
      nc *= 2;
    uint8_t *nb = malloc(nc);
    if (nb == NULL)
      return TEEX_ENOMEM;
    if (p->len) {
      memcpy(nb, p->buf, p->len);
      teex_wipe(p->buf, p->len);
    }
    free(p->buf);
    p->buf = nb;
    p->cap = nc;
  }
  if (n)
    memcpy(p->buf + p->len, data, n);
  p->len += n;
  return 0;
}

static int proto_error(struct teex_resp_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int proto_error(struct teex_resp_parser *p, const char *fmt, ...) {
  va_list ap;
  int n = snprintf(p->err, sizeof(p->err), "Protocol error: ");
  va_start(ap, fmt);
  vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
  va_end(ap);
  p->failed = 1;
  return TEEX_EPROTO;
}

/* A decimal integer, optionally negative, with nothing else (Redis's
 * string2ll: no '+', no spaces, no leading zeros but "0"). */
static int parse_ll(const uint8_t *s, size_t n, long long *out) {
  size_t i = 0;
  int neg = 0;
  if (n == 0 || n > 20)
    return -1;
  if (s[0] == '-') {
    neg = 1;
    i = 1;
    if (n == 1)
      return -1;
  }
  if (s[i] == '0' && n - i > 1)
    return -1;
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (ULLONG_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (v > (unsigned long long)LLONG_MAX)
    return -1;
  *out = neg ? -(long long)v : (long long)v;
  return 0;
}

/* Finds "\r\n" in [s, s+n): its offset, or -1. */
static long find_crlf(const uint8_t *s, size_t n) {
  for (size_t i = 0; i + 1 < n; i++)
    if (s[i] == '\r' && s[i + 1] == '\n')
      return (long)i;
  return -1;
}

/* A header line "<c><number>\r\n" at s (n bytes available).
 * 1: parsed (*v, *used); 0: need more; TEEX_EPROTO. */
static int header(struct teex_resp_parser *p, const uint8_t *s, size_t n,
                  const char *what, long long *v, size_t *used) {
  size_t lim = n < TEEX_RESP_HEADER_MAX ? n : TEEX_RESP_HEADER_MAX;
  long e = find_crlf(s, lim);
  if (e < 0) {
    if (n >= TEEX_RESP_HEADER_MAX)
      return proto_error(p, "too big %s count string", what);
    return 0;
  }
  if (parse_ll(s + 1, (size_t)e - 1, v) != 0)
    return proto_error(p, "invalid %s length", what);
  *used = (size_t)e + 2;
  return 1;
}

static void emit(struct teex_resp_parser *p, struct teex_resp_cmd *cmd) {
  struct resp_progress *g = p->prog;
  const uint8_t *base = p->buf + p->off;
  cmd->argc = g->mb_argc;
  for (size_t i = 0; i < g->mb_argc; i++) {
    cmd->argv[i].p = base + g->off[i];
    cmd->argv[i].len = g->len[i];
  }
}

/* Continues a multibulk request: 1 complete, 0 need more, TEEX_EPROTO. */
static int multibulk(struct teex_resp_parser *p, struct teex_resp_cmd *cmd,
                     size_t *used) {
  struct resp_progress *g = p->prog;
  const uint8_t *base = p->buf + p->off;
  size_t avail = p->len - p->off;
  if (!g->in_mb) {
    long long n;
    size_t hl;
    int rc = header(p, base, avail, "multibulk", &n, &hl);
    if (rc <= 0)
      return rc;
    if (n > TEEX_RESP_ARGS_MAX)
      return proto_error(p, "invalid multibulk length");
    if (n <= 0) { /* an empty request: skipped, as Redis does */
      *used = hl;
      g->mb_argc = 0;
      return 1;
    }
    g->in_mb = 1;
    g->mb_total = (size_t)n;
    g->mb_argc = 0;
    g->mb_pos = hl;
    g->declared = hl;
  }
  while (g->mb_argc < g->mb_total) {
    const uint8_t *s = base + g->mb_pos;
    size_t left = avail - g->mb_pos;
    if (left == 0)
      return 0;
    if (s[0] != '$') {
      if (s[0] >= 0x20 && s[0] < 0x7f)
        return proto_error(p, "expected '$', got '%c'", s[0]);
      return proto_error(p, "expected '$', got byte 0x%02x", s[0]);
    }
    long long bl;
    size_t hl;
    int rc = header(p, s, left, "bulk", &bl, &hl);
    if (rc <= 0)
      return rc;
    if (bl < 0 || bl > TEEX_RESP_BULK_MAX)
      return proto_error(p, "invalid bulk length");
    /* Checked before waiting for (and buffering) the bytes it announces. */
    if (g->declared + hl + (size_t)bl + 2 > TEEX_RESP_REQUEST_MAX)
      return proto_error(p, "request larger than %d bytes",
                         TEEX_RESP_REQUEST_MAX);
    if (left < hl + (size_t)bl + 2)
      return 0;
    if (s[hl + (size_t)bl] != '\r' || s[hl + (size_t)bl + 1] != '\n')
      return proto_error(p, "bulk string not followed by CRLF");
    g->off[g->mb_argc] = g->mb_pos + hl;
    g->len[g->mb_argc] = (size_t)bl;
    g->mb_argc++;
    g->mb_pos += hl + (size_t)bl + 2;
    g->declared += hl + (size_t)bl + 2;
  }
  emit(p, cmd);
  *used = g->mb_pos;
  g->in_mb = 0;
  return 1;
}

static int is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Splits the line s[0..n) into arguments in place (unescaping never makes
 * an argument longer), with Redis's rules (sdssplitargs): words separated
 * by spaces; "double quotes" with \n \r \t \b \a \xHH and \<char>;
 * 'single quotes' with \'; a closing quote must end the word. */
static int split_inline(struct teex_resp_parser *p, uint8_t *s, size_t n) {
  struct resp_progress *g = p->prog;
  size_t r = 0, w = 0;
  g->mb_argc = 0;
  for (;;) {
    while (r < n && is_space(s[r]))
      r++;
    if (r == n)
      return 0;
    if (g->mb_argc == TEEX_RESP_ARGS_MAX)
      return proto_error(p, "too many arguments in inline request");
    size_t start = w;
    int dq = 0, sq = 0, done = 0;
    while (!done) {
      if (dq) {
        if (r == n)
          return proto_error(p, "unbalanced quotes in request");
        if (s[r] == '\\' && r + 3 < n && s[r + 1] == 'x' &&
            hexval(s[r + 2]) >= 0 && hexval(s[r + 3]) >= 0) {
          s[w++] = (uint8_t)(hexval(s[r + 2]) * 16 + hexval(s[r + 3]));
          r += 4;
        } else if (s[r] == '\\' && r + 1 < n) {
          uint8_t c = s[r + 1];
          s[w++] = c == 'n'   ? '\n'
                   : c == 'r' ? '\r'
                   : c == 't' ? '\t'
                   : c == 'b' ? '\b'
                   : c == 'a' ? '\a'
                              : c;
          r += 2;
        } else if (s[r] == '"') {
          if (r + 1 < n && !is_space(s[r + 1]))
            return proto_error(p, "unbalanced quotes in request");
          r++;
          done = 1;
        } else {
          s[w++] = s[r++];
        }
      } else if (sq) {
        if (r == n)
          return proto_error(p, "unbalanced quotes in request");
        if (s[r] == '\\' && r + 1 < n && s[r + 1] == '\'') {
          s[w++] = '\'';
          r += 2;
        } else if (s[r] == '\'') {
          if (r + 1 < n && !is_space(s[r + 1]))
            return proto_error(p, "unbalanced quotes in request");
          r++;
          done = 1;
        } else {
          s[w++] = s[r++];
        }
      } else if (r == n || is_space(s[r])) {
        done = 1;
      } else if (s[r] == '"') {
        dq = 1;
        r++;
      } else if (s[r] == '\'') {
        sq = 1;
        r++;
      } else {
        s[w++] = s[r++];
      }
    }
    g->off[g->mb_argc] = (size_t)(s - (p->buf + p->off)) + start;
    g->len[g->mb_argc] = w - start;
    g->mb_argc++;
  }
}

/* An inline request: 1 complete (argc may be 0), 0 need more, EPROTO. */
static int inline_cmd(struct teex_resp_parser *p, struct teex_resp_cmd *cmd,
                      size_t *used) {
  uint8_t *base = p->buf + p->off;
  size_t avail = p->len - p->off;
  size_t lim = avail < TEEX_RESP_INLINE_MAX ? avail : TEEX_RESP_INLINE_MAX;
  uint8_t *nl = memchr(base, '\n', lim);
  if (nl == NULL) {
    if (avail >= TEEX_RESP_INLINE_MAX)
      return proto_error(p, "too big inline request");
    return 0;
  }
  size_t n = (size_t)(nl - base);
  *used = n + 1;
  if (n > 0 && base[n - 1] == '\r')
    n--;
  int rc = split_inline(p, base, n);
  if (rc != 0)
    return rc;
  emit(p, cmd);
  return 1;
}

int teex_resp_parser_next(struct teex_resp_parser *p,
                          struct teex_resp_cmd *cmd) {
  if (p->failed)
    return TEEX_EPROTO;
  struct resp_progress *g = progress(p);
  if (g == NULL)
    return proto_error(p, "out of memory");
  for (;;) {
    if (p->off == p->len)
      return 0;
    size_t used = 0;
    int rc;
    if (g->in_mb || p->buf[p->off] == '*')
      rc = multibulk(p, cmd, &used);
    else
      rc = inline_cmd(p, cmd, &used);
    if (rc <= 0)
      return rc;
    p->off += used;
    if (g->mb_argc > 0)
      return 1;
    /* an empty request: nothing to run, look at the next one */
  }
}

/* ---- replies ---- */

/* Appends s with CR and LF replaced by spaces (a simple string is one line). */
static int append_line(struct teex_buf *out, const char *s, size_t n) {
  size_t at = out->len;
  int rc = teex_buf_append(out, s, n);
  if (rc != 0)
    return rc;
  for (size_t i = at; i < out->len; i++)
    if (out->data[i] == '\r' || out->data[i] == '\n')
      out->data[i] = ' ';
  return 0;
}

/* All or nothing: a reply that does not fit leaves out unchanged. */
static int finish(struct teex_buf *out, size_t at, int rc) {
  if (rc != 0)
    out->len = at;
  return rc;
}

int teex_resp_simple(struct teex_buf *out, const char *s) {
  size_t at = out->len;
  int rc = teex_buf_putc(out, '+');
  if (rc == 0)
    rc = append_line(out, s, strlen(s));
  if (rc == 0)
    rc = teex_buf_append(out, "\r\n", 2);
  return finish(out, at, rc);
}

int teex_resp_error(struct teex_buf *out, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  size_t ml = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
  size_t at = out->len;
  int rc = teex_buf_putc(out, '-');
  if (rc == 0)
    rc = append_line(out, msg, ml);
  if (rc == 0)
    rc = teex_buf_append(out, "\r\n", 2);
  return finish(out, at, rc);
}

int teex_resp_int(struct teex_buf *out, int64_t v) {
  return teex_buf_printf(out, ":%" PRId64 "\r\n", v);
}

int teex_resp_bulk(struct teex_buf *out, const void *p, size_t n) {
  size_t at = out->len;
  int rc = teex_buf_printf(out, "$%zu\r\n", n);
  if (rc == 0)
    rc = teex_buf_append(out, p, n);
  if (rc == 0)
    rc = teex_buf_append(out, "\r\n", 2);
  return finish(out, at, rc);
}

int teex_resp_bulk_str(struct teex_buf *out, const char *s) {
  return teex_resp_bulk(out, s, strlen(s));
}

int teex_resp_null(struct teex_buf *out) {
  return teex_buf_append(out, "$-1\r\n", 5);
}

int teex_resp_array(struct teex_buf *out, size_t n) {
  return teex_buf_printf(out, "*%zu\r\n", n);
}
