/* RA-TLS channels: the glue between the TLS transport (include/teex/tls.h)
 * and RA-TLS certificates (include/teex/ratls.h). Pass
 * teex_ratls_channel_verify as a teex_tls_config's verify_peer with a
 * struct teex_ratls_verifier as its argument: every handshake then verifies
 * the peer's evidence in full against the policy (no resumption, no cache),
 * and the peer's attested identity stays attached to the connection. */
#ifndef TEEX_RATLS_CHANNEL_H
#define TEEX_RATLS_CHANNEL_H

#include "teex/error.h"
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

#endif
