/* teex error codes and error messages.
 *
 * Every fallible function returns 0 on success or a negative TEEX_E* code,
 * and may fill a caller-provided struct teex_err with a one-line human
 * message. Each layer wraps the message with its own context, so a user sees
 * "deploy service: upload image: connection refused", never a bare code. */
#ifndef TEEX_ERROR_H
#define TEEX_ERROR_H

#include <stddef.h>

/* X(name, value, text). Values are stable: they travel in RPC frames. */
#define TEEX_ERRORS(X)                                                         \
  X(OK, 0, "success")                                                          \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(EIO, -3, "input/output error")                                             \
  X(ETOOBIG, -4, "size limit exceeded")                                        \
  X(ETRUNC, -5, "truncated input")                                             \
  X(EFORMAT, -6, "malformed input")                                            \
  X(EVERSION, -7, "unsupported version")                                       \
  X(EAUTH, -8, "authentication failed (tampered or foreign data)")             \
  X(EBADSIG, -9, "bad signature")                                              \
  X(EATTEST, -10, "attestation evidence invalid")                              \
  X(EPOLICY, -11, "refused by policy")                                         \
  X(EEXPIRED, -12, "expired")                                                  \
  X(ENOTFOUND, -13, "not found")                                               \
  X(EEXIST, -14, "already exists")                                             \
  X(ETIMEDOUT, -15, "timed out")                                               \
  X(ECONN, -16, "connection failed")                                           \
  X(ECLOSED, -17, "connection closed")                                         \
  X(EPROTO, -18, "protocol error")                                             \
  X(ECRYPTO, -19, "cryptographic operation failed")                            \
  X(EPERM, -20, "permission denied")                                           \
  X(ESTATE, -21, "invalid state")                                              \
  X(ENOSPC, -22, "no space left on device")                                    \
  X(ECANCELED, -23, "canceled")                                                \
  X(EREPLAY, -24, "replayed message")                                          \
  X(EROLLBACK, -25, "stale state (rollback detected)")                         \
  X(ECHAIN, -26, "blockchain request failed")                                  \
  X(ESANDBOX, -27, "sandbox violation")                                        \
  X(EBUSY, -28, "busy")                                                        \
  X(EAGAIN, -29, "try again")                                                  \
  X(EUNSUPPORTED, -30, "not supported")                                        \
  X(ECONFIG, -31, "bad configuration")                                         \
  X(EFUNDS, -32, "insufficient funds")                                         \
  X(EREMOTE, -33, "remote error")                                              \
  X(EINTERNAL, -34, "internal error")                                          \
  X(EMOVED, -35, "moved to another group")

enum teex_error_code {
#define TEEX_X_ENUM(name, value, text) TEEX_##name = (value),
  TEEX_ERRORS(TEEX_X_ENUM)
#undef TEEX_X_ENUM
};

/* Size of the message buffer; longer messages are cut, never overflowed. */
#define TEEX_ERRMSG_SIZE 512

struct teex_err {
  int code;                   /* last TEEX_E* code set, 0 if none */
  char msg[TEEX_ERRMSG_SIZE]; /* "context: context: cause" */
};

/* The fixed text of a code ("bad signature"); "unknown error" if unknown. */
const char *teex_strerror(int code);

/* The symbolic name of a code without prefix ("EBADSIG"). */
const char *teex_err_name(int code);

/* Resets err to "no error". err may be NULL. */
void teex_err_clear(struct teex_err *err);

/* Sets err to code with a printf-style message (when fmt is NULL, the code's
 * text). err may be NULL. Returns code, so callers can `return
 * teex_err_set(...)`. */
int teex_err_set(struct teex_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err's message with context ("context: previous message"). When
 * code is nonzero it replaces err->code. Returns err->code (or code when err
 * is NULL). */
int teex_err_wrap(struct teex_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message to show a user: err->msg, or the code's text if msg is empty. */
const char *teex_err_msg(const struct teex_err *err);

#endif
