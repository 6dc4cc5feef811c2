/* Error table and message buffers (see include/teex/error.h). */
#include "teex/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *teex_strerror(int code) {
  switch (code) {
#define TEEX_X_TEXT(name, value, text)                                         \
  case value:                                                                  \
    return text;
    TEEX_ERRORS(TEEX_X_TEXT)
#undef TEEX_X_TEXT
  default:
    return "unknown error";
  }
}

const char *teex_err_name(int code) {
  switch (code) {
#define TEEX_X_NAME(name, value, text)                                         \
  case value:                                                                  \
    return #name;
    TEEX_ERRORS(TEEX_X_NAME)
#undef TEEX_X_NAME
  default:
    return "EUNKNOWN";
  }
}

void teex_err_clear(struct teex_err *err) {
  if (err == NULL)
    return;
  err->code = 0;
  err->msg[0] = '\0';
}

int teex_err_set(struct teex_err *err, int code, const char *fmt, ...) {
  if (err == NULL)
    return code;
  err->code = code;
  if (fmt == NULL) {
    snprintf(err->msg, sizeof err->msg, "%s", teex_strerror(code));
    return code;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return code;
}

int teex_err_wrap(struct teex_err *err, int code, const char *fmt, ...) {
  if (err == NULL)
    return code;
  if (code != 0)
    err->code = code;
  char prefix[TEEX_ERRMSG_SIZE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  char old[TEEX_ERRMSG_SIZE];
  memcpy(old, err->msg, sizeof old);
  old[sizeof old - 1] = '\0';
  if (old[0] == '\0')
    snprintf(old, sizeof old, "%s", teex_strerror(err->code));
  snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
  return err->code;
}

const char *teex_err_msg(const struct teex_err *err) {
  if (err == NULL)
    return "";
  if (err->msg[0] != '\0')
    return err->msg;
  return teex_strerror(err->code);
}
