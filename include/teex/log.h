/* Levelled, structured logging that never prints key material.
 *
 * A log line is logfmt: `ts=... level=info comp=tee msg="quote issued"
 * role=worker`. Before a line is written it is checked against every live
 * secret registered in include/teex/mem.h (raw bytes, lower/upper hex,
 * base64): a line that contains one is replaced by a redaction notice, so a
 * mistaken `%s` of a key cannot reach a log file. Logs go to stderr unless
 * teex_log_set_fd is called. */
#ifndef TEEX_LOG_H
#define TEEX_LOG_H

enum teex_log_level {
  TEEX_LOG_DEBUG = 0,
  TEEX_LOG_INFO = 1,
  TEEX_LOG_WARN = 2,
  TEEX_LOG_ERROR = 3,
  TEEX_LOG_OFF = 4,
};

/* Lines below level are dropped. Default: TEEX_LOG_INFO, or TEEX_LOG_LEVEL
 * from the environment (debug|info|warn|error|off) at the first log call. */
void teex_log_set_level(enum teex_log_level level);
enum teex_log_level teex_log_get_level(void);

/* Parses "debug", "info", "warn", "error", "off". Returns -1 if unknown. */
int teex_log_level_parse(const char *s);

/* Writes log lines to fd (not owned). */
void teex_log_set_fd(int fd);

/* Emits one line. kv_fmt is a printf format for extra `key=value` fields
 * (may be NULL). Lines are cut at 2 KiB. */
void teex_log(enum teex_log_level level, const char *component, const char *msg,
              const char *kv_fmt, ...) __attribute__((format(printf, 4, 5)));

/* Number of lines replaced because they contained a secret (for tests). */
unsigned long teex_log_redacted_count(void);

#define TEEX_DEBUG(comp, msg, ...)                                             \
  teex_log(TEEX_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define TEEX_INFO(comp, msg, ...)                                              \
  teex_log(TEEX_LOG_INFO, comp, msg, __VA_ARGS__)
#define TEEX_WARN(comp, msg, ...)                                              \
  teex_log(TEEX_LOG_WARN, comp, msg, __VA_ARGS__)
#define TEEX_ERROR(comp, msg, ...)                                             \
  teex_log(TEEX_LOG_ERROR, comp, msg, __VA_ARGS__)

#endif
