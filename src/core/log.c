/* Structured logging with secret redaction (see include/teex/log.h). */
#include "teex/log.h"

#include "teex/mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define SECRET_WINDOW 8 /* raw leaks of any 8 consecutive secret bytes */

static int log_level = -1;
static int log_fd = 2;
static unsigned long log_redacted;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

int teex_log_level_parse(const char *s) {
  static const char *names[] = {"debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 5; i++)
    if (strcasecmp(s, names[i]) == 0)
      return i;
  return -1;
}

void teex_log_set_level(enum teex_log_level level) {
  log_level = (int)level;
}

enum teex_log_level teex_log_get_level(void) {
  if (log_level < 0) {
    const char *env = getenv("TEEX_LOG_LEVEL");
    int l = env ? teex_log_level_parse(env) : -1;
    log_level = l >= 0 ? l : TEEX_LOG_INFO;
  }
  return (enum teex_log_level)log_level;
}

void teex_log_set_fd(int fd) {
  log_fd = fd;
}

unsigned long teex_log_redacted_count(void) {
  return log_redacted;
}

struct scan_ctx {
  const char *line;
  size_t len;
  int hit;
};

static void hex_encode(const uint8_t *p, size_t n, char *out, int upper) {
  const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
}

static size_t b64_encode(const uint8_t *p, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63];
    out[o++] = t[v & 63];
  }
  /* The unpadded tail is left out: a prefix match of the body suffices. */
  return o;
}

static void scan_secret(const uint8_t *s, size_t n, void *arg) {
  struct scan_ctx *c = arg;
  if (c->hit || n < SECRET_WINDOW)
    return;
  /* Raw: any window of SECRET_WINDOW bytes. */
  for (size_t off = 0; off + SECRET_WINDOW <= n && !c->hit; off++)
    if (memmem(c->line, c->len, s + off, SECRET_WINDOW) != NULL)
      c->hit = 1;
  /* Hex (both cases) and base64 of the first bytes of the secret. */
  size_t k = n < 64 ? n : 64;
  char enc[256];
  for (int upper = 0; upper < 2 && !c->hit; upper++) {
    hex_encode(s, SECRET_WINDOW, enc, upper);
    if (memmem(c->line, c->len, enc, 2 * SECRET_WINDOW) != NULL)
      c->hit = 1;
  }
  if (!c->hit && k >= 12) {
    size_t m = b64_encode(s, 12, enc);
    if (memmem(c->line, c->len, enc, m) != NULL)
      c->hit = 1;
  }
}

static const char *level_name(enum teex_log_level l) {
  switch (l) {
  case TEEX_LOG_DEBUG:
    return "debug";
  case TEEX_LOG_INFO:
    return "info";
  case TEEX_LOG_WARN:
    return "warn";
  case TEEX_LOG_ERROR:
    return "error";
  default:
    return "off";
  }
}

/* Appends msg quoted for logfmt (quotes and backslashes escaped, control
 * characters turned into spaces). */
static size_t put_quoted(char *out, size_t cap, size_t o, const char *s) {
  if (o < cap)
    out[o++] = '"';
  for (; *s && o + 2 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else {
      out[o++] = (ch >= 0x20 && ch != 0x7f) ? (char)ch : ' ';
    }
  }
  if (o < cap)
    out[o++] = '"';
  return o;
}

void teex_log(enum teex_log_level level, const char *component, const char *msg,
              const char *kv_fmt, ...) {
  if (level < teex_log_get_level() || level >= TEEX_LOG_OFF)
    return;
  char line[LOG_LINE_MAX];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s "
                   "msg=",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   level_name(level), component ? component : "-");
  size_t o = n > 0 ? (size_t)n : 0;
  if (o >= sizeof line)
    o = sizeof line - 1;
  o = put_quoted(line, sizeof line - 2, o, msg ? msg : "");
  if (kv_fmt != NULL && kv_fmt[0] != '\0' && o + 2 < sizeof line) {
    line[o++] = ' ';
    va_list ap;
    va_start(ap, kv_fmt);
    int k = vsnprintf(line + o, sizeof line - o - 1, kv_fmt, ap);
    va_end(ap);
    if (k > 0)
      o += (size_t)k < sizeof line - o - 1 ? (size_t)k : sizeof line - o - 2;
  }
  /* Newlines inside fields would forge extra lines. */
  for (size_t i = 0; i < o; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';

  struct scan_ctx c = {line, o, 0};
  teex_secret_foreach(scan_secret, &c);
  if (c.hit) {
    __atomic_add_fetch(&log_redacted, 1, __ATOMIC_RELAXED);
    n = snprintf(line, sizeof line,
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s "
                 "msg=\"[redacted: line contained key material]\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_name(level),
                 component ? component : "-");
    o = n > 0 && (size_t)n < sizeof line ? (size_t)n : sizeof line - 2;
  }
  line[o++] = '\n';
  pthread_mutex_lock(&log_lock);
  size_t off = 0;
  while (off < o) {
    ssize_t w = write(log_fd, line + off, o - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  pthread_mutex_unlock(&log_lock);
}
