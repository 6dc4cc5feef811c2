/* A blocking RPC client: one connection on its own private libuv loop, for
 * command-line clients and tests that make a few calls in sequence (the
 * daemons use the asynchronous API of include/teex/rpc.h). */
#ifndef TEEX_RPC_SYNC_H
#define TEEX_RPC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "teex/buf.h"
#include "teex/error.h"
#include "teex/tls.h"

struct teex_rpc_sync;

/* Connects to addr with client context ctx (which must outlive the client)
 * and completes the TLS handshake, including the peer check, within
 * timeout_ms. *out is owned by the caller. TEEX_ECONN / TEEX_ETIMEDOUT /
 * the verifier's code, with the reason in err. */
int teex_rpc_sync_connect(const char *addr, struct teex_tls_ctx *ctx,
                          uint32_t timeout_ms, struct teex_rpc_sync **out,
                          struct teex_err *err);

/* Calls method and waits for the answer (at most timeout_ms, 0: default).
 * On success the response payload is in resp (reset first; its maximum
 * bounds it). Otherwise the server's (or the transport's) code, with its
 * message in err. */
int teex_rpc_sync_call(struct teex_rpc_sync *c, const char *method,
                       const uint8_t *payload, size_t len, uint32_t timeout_ms,
                       struct teex_buf *resp, struct teex_err *err);

/* The TLS connection (for the exporter and the peer's identity); NULL once
 * closed. */
struct teex_tls_conn *teex_rpc_sync_conn(struct teex_rpc_sync *c);

/* Closes and frees. NULL-safe. */
void teex_rpc_sync_close(struct teex_rpc_sync *c);

#endif
