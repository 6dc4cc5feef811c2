/* RESP2 (the Redis protocol) codec for the TEE-DS proxy: an incremental
 * parser of client requests and an encoder of replies. No I/O: the proxy
 * feeds bytes as they arrive (in any split) and takes whole commands out;
 * replies are appended to a bounded buffer the proxy writes.
 *
 * Requests are arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
 * or inline commands (a line of words, with Redis's quoting rules) as
 * telnet and `redis-cli` send them. Every length is checked against the
 * named maxima below before anything is buffered for it. */
#ifndef TEEX_DS_RESP_H
#define TEEX_DS_RESP_H

#include "teex/buf.h"
#include "teex/ds.h"

#include <stddef.h>
#include <stdint.h>

/* Arguments in one command (an MSET of TEEX_DS_MSET_MAX pairs needs 129;
 * DEL/EXISTS/MGET of many keys more). */
#define TEEX_RESP_ARGS_MAX 1024
/* One bulk argument. Larger than a value can be, so that a value just over
 * TEEX_DS_VALUE_MAX gets a clear "value too large" reply instead of a
 * protocol error that closes the connection. */
#define TEEX_RESP_BULK_MAX (2 * TEEX_DS_VALUE_MAX)
/* One inline command line (Redis's PROTO_INLINE_MAX_SIZE). */
#define TEEX_RESP_INLINE_MAX (64 * 1024)
/* One whole request: the bulk lengths it declares plus its framing. A full
 * MSET (64 pairs of the largest key and value) fits. */
#define TEEX_RESP_REQUEST_MAX (TEEX_DS_CMD_MAX + 64 * 1024)
/* A "*N" or "$N" header line. */
#define TEEX_RESP_HEADER_MAX 32

struct teex_resp_arg {
  const uint8_t *p;
  size_t len;
};

/* One parsed command; argv points into the parser's buffer and is valid
 * until the next teex_resp_parser_feed (or _free). */
struct teex_resp_cmd {
  size_t argc;
  struct teex_resp_arg argv[TEEX_RESP_ARGS_MAX];
};

struct teex_resp_parser {
  uint8_t *buf; /* owned: bytes received and not yet consumed */
  size_t len, cap;
  size_t off; /* start of the first unparsed request */
  int failed; /* a protocol error was reported: the stream is unusable */
  struct resp_progress *prog; /* owned: progress through a partial request */
  char err[128];
};

void teex_resp_parser_init(struct teex_resp_parser *p);
/* NULL-safe; wipes the buffered bytes (they may hold values). */
void teex_resp_parser_free(struct teex_resp_parser *p);

/* Appends received bytes. Drops the consumed prefix first (so every argv
 * handed out before is invalid). TEEX_ENOMEM; TEEX_ETOOBIG when the
 * unparsed bytes would exceed TEEX_RESP_REQUEST_MAX + n (the caller should
 * stop reading while teex_resp_parser_pending is large instead). */
int teex_resp_parser_feed(struct teex_resp_parser *p, const uint8_t *data,
                          size_t n);

/* Bytes received but not yet returned as commands. */
size_t teex_resp_parser_pending(const struct teex_resp_parser *p);

/* Takes the next whole command out of the buffer:
 *   1  a command is in *cmd (argc >= 1; empty requests are skipped);
 *   0  more bytes are needed;
 *   TEEX_EPROTO  malformed input: p->err holds the reply text in Redis's
 *      wording ("Protocol error: invalid bulk length"); every later call
 *      returns TEEX_EPROTO too (the connection must be closed). */
int teex_resp_parser_next(struct teex_resp_parser *p,
                          struct teex_resp_cmd *cmd);

/* ---- replies (appended to a bounded buffer) ----
 * Each returns 0, TEEX_ETOOBIG (out's maximum reached) or TEEX_ENOMEM.
 * Simple strings and errors must not contain CR or LF: those bytes are
 * replaced by spaces. */
int teex_resp_simple(struct teex_buf *out, const char *s);
int teex_resp_error(struct teex_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int teex_resp_int(struct teex_buf *out, int64_t v);
int teex_resp_bulk(struct teex_buf *out, const void *p, size_t n);
int teex_resp_bulk_str(struct teex_buf *out, const char *s);
int teex_resp_null(struct teex_buf *out);            /* null bulk string: $-1 */
int teex_resp_array(struct teex_buf *out, size_t n); /* header of n items */

#endif
