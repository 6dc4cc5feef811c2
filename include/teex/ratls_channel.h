/* RA-TLS channels: the glue between the TLS transport (include/teex/tls.h)
 * and RA-TLS certificates (include/teex/ratls.h). Pass
 * teex_ratls_channel_verify as a teex_tls_config's verify_peer with a
 * struct teex_ratls_verifier as its argument: every handshake then verifies
 * the peer's evidence in full against the policy (no resumption, no cache),
 * and the peer's attested identity stays attached to the connection. */
#ifndef TEEX_RATLS_CHANNEL_H
#define TEEX_RATLS_CHANNEL_H

#include <uv.h>

#include "teex/error.h"
#include "teex/ratls.h"
#include "teex/tee.h"
#include "teex/tee_policy.h"
#include "teex/tls.h"

struct teex_ratls_verifier {
  const struct teex_tee_policy *policy; /* borrowed; outlives the ctx */
};

/* A teex_tls_verify_fn: teex_ratls_verify_cert(peer, policy) and, on
 * success, attaches a copy of the verified identity to c. Errors are those
 * of teex_ratls_verify_cert (TEEX_EATTEST, TEEX_EPOLICY, TEEX_EEXPIRED...). */
int teex_ratls_channel_verify(void *verifier, struct teex_tls_conn *c,
                              X509 *peer, struct teex_err *err);

/* The peer's verified identity on c (borrowed, valid until on_close), or
 * NULL when c was not verified by teex_ratls_channel_verify. */
const struct teex_tee_identity *
teex_ratls_channel_peer(const struct teex_tls_conn *c);

/* ---- renewing a daemon's RA-TLS certificate ----
 * A certificate's evidence is issued once; peers refuse it when it is
 * older than their policy's max_age (24 h by default). A refresher makes a
 * new RA-TLS identity (new TLS key, evidence issued now, binding the same
 * component keys) every interval and installs it on the daemon's contexts
 * (teex_tls_ctx_set_identity), so connections made afterwards present it. */

/* A quarter of the default policy max_age. */
#define TEEX_RATLS_REFRESH_DEFAULT_S (6u * 3600u)
#define TEEX_RATLS_REFRESH_MAX_CTXS 4

struct teex_ratls_refresher;

/* Starts a refresher on loop: every interval_s seconds (0: the default), a
 * new identity from tee and keys (copied; its nonce must be NULL) goes to
 * every *ctxs[i] that is not NULL then (the addresses of the daemon's
 * context pointers, so a context made later is covered). The current
 * identity (the first one is key/cert: the refresher takes references) is
 * at teex_ratls_refresher_current. *out is owned by the caller
 * (teex_ratls_refresher_close). A failed renewal is logged and retried at
 * the next interval; the old identity stays. */
int teex_ratls_refresher_start(uv_loop_t *loop, struct teex_tee *tee,
                               const struct teex_ratls_keys *keys,
                               EVP_PKEY *key, X509 *cert, unsigned interval_s,
                               struct teex_tls_ctx **const *ctxs, size_t nctx,
                               struct teex_ratls_refresher **out,
                               struct teex_err *err);
/* The identity installed now (borrowed, valid until the next renewal). */
void teex_ratls_refresher_current(const struct teex_ratls_refresher *r,
                                  EVP_PKEY **key, X509 **cert);
/* Renewals so far (for tests and logs). */
unsigned long teex_ratls_refresher_count(const struct teex_ratls_refresher *r);
/* Stops the timer; the memory is freed once libuv has closed it (run the
 * loop). NULL-safe. */
void teex_ratls_refresher_close(struct teex_ratls_refresher *r);

#endif
