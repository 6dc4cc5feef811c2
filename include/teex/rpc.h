/* RPC over teex frames: calls by method name with correlation ids, many
 * concurrent calls per connection, deadlines, chunked streaming of large
 * payloads, and error responses carrying a teex error code and message.
 *
 * Two layers. struct teex_rpc_session is the I/O-free state machine of one
 * connection: bytes and the time go in (teex_rpc_session_feed/_tick), bytes
 * to send (session->out) and callbacks come out; it is what the unit tests
 * and the fuzzer drive. teex_rpc_server / teex_rpc_client run sessions over
 * TLS connections (include/teex/tls.h) on a libuv loop. The wire format is
 * docs/protocol.md. */
#ifndef TEEX_RPC_H
#define TEEX_RPC_H

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/frame.h"
#include "teex/tls.h"

#include <stddef.h>
#include <stdint.h>

#define TEEX_RPC_MAX_METHOD 128                  /* bytes of a method name */
#define TEEX_RPC_CHUNK_SIZE (256u << 10)         /* payload bytes per frame */
#define TEEX_RPC_DEFAULT_MAX_MESSAGE (64u << 20) /* a whole payload */
#define TEEX_RPC_DEFAULT_MAX_INFLIGHT 1024u      /* calls per connection */
#define TEEX_RPC_DEFAULT_TIMEOUT_MS 30000u
#define TEEX_RPC_MAX_TIMEOUT_MS (24u * 3600u * 1000u)

enum teex_rpc_role { TEEX_RPC_CLIENT = 0, TEEX_RPC_SERVER = 1 };

struct teex_rpc_limits {
  size_t max_message;          /* 0: TEEX_RPC_DEFAULT_MAX_MESSAGE */
  size_t max_buffered;         /* payload bytes held in partly received
                                  messages, all calls together; 0: twice
                                  max_message (never below it) */
  unsigned max_inflight;       /* 0: TEEX_RPC_DEFAULT_MAX_INFLIGHT */
  uint32_t default_timeout_ms; /* 0: TEEX_RPC_DEFAULT_TIMEOUT_MS */
  unsigned max_conns; /* server: connections open at once; more are closed
                         at accept with a logged reason. 0: 4096 */
};

/* Client: the end of a call. code 0 with the response payload (borrowed for
 * the call; NULL/0 when the call streamed it to on_chunk), or a TEEX_E* code
 * and a one-line message: the server's error, TEEX_ETIMEDOUT at the
 * deadline, TEEX_ECLOSED when the connection went away. Fires exactly once
 * for a call that was accepted. */
typedef void (*teex_rpc_done_fn)(void *arg, int code, const char *msg,
                                 const uint8_t *payload, size_t len);
/* Client: one piece of a streamed response, in order (borrowed). */
typedef void (*teex_rpc_chunk_fn)(void *arg, const uint8_t *p, size_t n);

struct teex_rpc_session_cbs {
  /* Server: a complete request. payload is borrowed for the call. Answer
   * with teex_rpc_session_respond/_stream, now or later. deadline_ms is
   * absolute, on the clock given to feed/tick. */
  void (*on_request)(void *arg, uint64_t id, const char *method,
                     const uint8_t *payload, size_t len, uint64_t deadline_ms);
  /* Server: call id is over without an answer from us (the client canceled,
   * or its deadline passed and the session answered TEEX_ETIMEDOUT, or the
   * session is closing). A later respond for it returns TEEX_ENOTFOUND. */
  void (*on_call_gone)(void *arg, uint64_t id, int why);
};

struct rpc_entry;

struct teex_rpc_session {
  enum teex_rpc_role role;
  struct teex_rpc_limits lim;
  struct teex_frame_reader reader;
  struct teex_buf out; /* bytes to send; the owner drains and resets it */
  struct teex_rpc_session_cbs cbs;
  void *arg;
  uint64_t next_id;
  struct rpc_entry *entries;
  unsigned n_entries;
  struct rpc_entry **buckets; /* the entries by id (hash table) */
  unsigned n_buckets;         /* a power of two, or 0 */
  uint64_t min_deadline;      /* <= every entry's deadline */
  size_t buffered;            /* bytes held in partly received payloads */
  int failed;      /* a protocol error was seen: close the connection */
  int in_delivery; /* re-entrancy guard depth */
};

/* Initialises a session. lim may be NULL. */
void teex_rpc_session_init(struct teex_rpc_session *s, enum teex_rpc_role role,
                           const struct teex_rpc_limits *lim,
                           const struct teex_rpc_session_cbs *cbs, void *arg);

/* Ends every call still open (client: done(TEEX_ECLOSED, why); server:
 * on_call_gone) and frees everything. */
void teex_rpc_session_close(struct teex_rpc_session *s, const char *why);

/* Feeds received bytes at time now_ms. Returns 0, or a negative code with a
 * one-line reason when the peer broke the protocol (bad frame, bad message,
 * a duplicate id, a message in the wrong direction): the connection must be
 * closed. Per-call problems (too big, unknown method, too many calls) are
 * answered with an error response instead. */
int teex_rpc_session_feed(struct teex_rpc_session *s, const uint8_t *p,
                          size_t n, uint64_t now_ms, struct teex_err *err);

/* Expires calls whose deadline is <= now_ms. */
void teex_rpc_session_tick(struct teex_rpc_session *s, uint64_t now_ms);

/* The earliest deadline of an open call, or UINT64_MAX. */
uint64_t teex_rpc_session_next_deadline(const struct teex_rpc_session *s);

/* Client: starts a call. timeout_ms 0 means the default. on_chunk NULL means
 * the whole response payload is gathered (up to max_message) and handed to
 * done. Returns 0 and the call id in *id_out (may be NULL), or TEEX_EINVAL
 * (method), TEEX_ETOOBIG (payload), TEEX_EBUSY (too many open calls), and
 * then done never fires. */
int teex_rpc_session_call(struct teex_rpc_session *s, const char *method,
                          const uint8_t *payload, size_t len,
                          uint32_t timeout_ms, uint64_t now_ms,
                          teex_rpc_done_fn done, teex_rpc_chunk_fn on_chunk,
                          void *arg, uint64_t *id_out, struct teex_err *err);

/* Client: gives up on a call: done fires with TEEX_ECANCELED and a Cancel
 * goes to the server. TEEX_ENOTFOUND if the call is already over. */
int teex_rpc_session_cancel(struct teex_rpc_session *s, uint64_t id);

/* Server: answers call id with code (0 or TEEX_E*), a message for errors and
 * a payload (split into chunks when large). TEEX_ENOTFOUND when the call is
 * over (canceled, expired). */
int teex_rpc_session_respond(struct teex_rpc_session *s, uint64_t id, int code,
                             const char *msg, const uint8_t *payload,
                             size_t len);

/* Server: streams a response piece by piece; last ends it. A nonzero code
 * with last aborts the stream with that error. */
int teex_rpc_session_stream(struct teex_rpc_session *s, uint64_t id,
                            const uint8_t *data, size_t len, int last, int code,
                            const char *msg);

/* ---- over TLS on a libuv loop ---- */

struct teex_rpc_server;
struct teex_rpc_call; /* one request a handler is answering */

/* A method handler: answer with teex_rpc_call_respond (now or later, from
 * the loop thread). payload is borrowed for the call. */
typedef void (*teex_rpc_handler)(struct teex_rpc_call *call,
                                 const uint8_t *payload, size_t len, void *arg);

/* Starts an RPC server on addr with TLS context ctx (server side; ctx must
 * outlive the server). lim may be NULL. The caller owns *out. */
int teex_rpc_server_new(uv_loop_t *loop, struct teex_tls_ctx *ctx,
                        const char *addr, const struct teex_rpc_limits *lim,
                        struct teex_rpc_server **out, struct teex_err *err);
int teex_rpc_server_port(const struct teex_rpc_server *srv);
/* Registers handler for method (copied). TEEX_EEXIST, TEEX_EINVAL. */
int teex_rpc_server_register(struct teex_rpc_server *srv, const char *method,
                             teex_rpc_handler handler, void *arg);
/* Stops listening and closes every connection; calls still unanswered are
 * dropped (their handles stay valid until answered, which then does
 * nothing). The server is freed when the last connection has closed. */
void teex_rpc_server_close(struct teex_rpc_server *srv);
/* Number of connections currently open (for tests and stats). */
unsigned teex_rpc_server_conn_count(const struct teex_rpc_server *srv);

/* Answers a call and frees it (exactly one respond per call). Answering a
 * call whose connection closed or whose deadline passed does nothing. */
void teex_rpc_call_respond(struct teex_rpc_call *call, int code,
                           const char *msg, const uint8_t *payload, size_t len);
/* Streams a piece of the answer; with last it also frees the call. Returns
 * TEEX_ECLOSED / TEEX_ENOTFOUND when nobody listens any more (the call is
 * then freed whatever last says). */
int teex_rpc_call_stream(struct teex_rpc_call *call, const uint8_t *data,
                         size_t len, int last);
const char *teex_rpc_call_method(const struct teex_rpc_call *call);
/* The TLS connection of a call (NULL once it closed): peer certificate,
 * exporter. */
struct teex_tls_conn *teex_rpc_call_conn(const struct teex_rpc_call *call);
uint64_t teex_rpc_call_deadline_ms(const struct teex_rpc_call *call);

struct teex_rpc_client;

/* The client's connection is usable (ok = 0) or failed/closed (ok = a
 * TEEX_E* code with a reason). Fires once with 0 at most, and once more with
 * the close. */
typedef void (*teex_rpc_client_state_fn)(struct teex_rpc_client *c, int code,
                                         const char *reason, void *arg);

/* Connects to addr with client context ctx. state fires when ready and when
 * closed; after the close callback the client is freed. */
int teex_rpc_client_connect(uv_loop_t *loop, struct teex_tls_ctx *ctx,
                            const char *addr, const struct teex_rpc_limits *lim,
                            teex_rpc_client_state_fn state, void *arg,
                            struct teex_rpc_client **out, struct teex_err *err);
/* Calls method; see teex_rpc_session_call. Allowed once ready. */
int teex_rpc_client_call(struct teex_rpc_client *c, const char *method,
                         const uint8_t *payload, size_t len,
                         uint32_t timeout_ms, teex_rpc_done_fn done,
                         teex_rpc_chunk_fn on_chunk, void *arg,
                         struct teex_err *err);
struct teex_tls_conn *teex_rpc_client_conn(const struct teex_rpc_client *c);
/* Closes; open calls end with TEEX_ECLOSED; state fires with the close. */
void teex_rpc_client_close(struct teex_rpc_client *c);

/* Milliseconds on the loop's monotonic clock (uv_now). */
uint64_t teex_rpc_now(uv_loop_t *loop);

#endif
